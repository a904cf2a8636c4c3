/**
 * The command text and environment of the actions. The text is fixed per mode: every value
 * travels in the environment (the mirror password in its own variable, sent as a secret), so
 * nothing is interpolated into shell text and no secret is in a command string. Pure.
 */

import type { ConformanceRunPlan } from "./plan";

/** preflight: images in the mirror; run: wait and collect; cleanup: the suite's leftovers. */
export type ActionMode = "preflight" | "run" | "cleanup";

/** The command a local.Command runs for a mode. */
export function actionScript(mode: ActionMode): string {
  return ["set -eu", `exec "$CONFORMANCE_NODE" "$CONFORMANCE_ACTION" ${mode}`].join("\n");
}

/** The plan as the actions read it. */
export function planJson(plan: ConformanceRunPlan): string {
  return JSON.stringify(plan);
}

/** How the registry that holds the mirror is reached from the machine running Pulumi. */
export interface MirrorAccess {
  /** host[:port], e.g. 127.0.0.1:5001 on the bastion. */
  readonly host: string;
  readonly scheme: "http" | "https";
  readonly caFile?: string;
  readonly insecureSkipVerify?: boolean;
  readonly username?: string;
}

/** Environment variable names the action reads. */
export const ACTION_ENV = {
  node: "CONFORMANCE_NODE",
  action: "CONFORMANCE_ACTION",
  plan: "CONFORMANCE_PLAN",
  mirror: "CONFORMANCE_MIRROR",
  digests: "CONFORMANCE_IMAGE_DIGESTS",
  password: "CONFORMANCE_MIRROR_PASSWORD",
} as const;

/**
 * The plain (non-secret) environment of an action. `loader` is a module node must `--require`
 * first (ts-node when the program runs from TypeScript sources).
 */
export function actionEnvironment<T = string>(options: {
  /** The plan as JSON ({@link planJson}); a type parameter so the component can pass an Output. */
  planJson: T;
  mirror: MirrorAccess;
  nodeBinary: string;
  actionEntry: string;
  loader?: string;
}): Record<string, T | string> {
  return {
    [ACTION_ENV.node]: options.nodeBinary,
    [ACTION_ENV.action]: options.actionEntry,
    [ACTION_ENV.plan]: options.planJson,
    [ACTION_ENV.mirror]: JSON.stringify(options.mirror),
    ...(options.loader === undefined ? {} : { NODE_OPTIONS: `--require=${options.loader}` }),
  };
}
