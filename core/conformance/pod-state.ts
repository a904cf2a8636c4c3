/**
 * What the run pod's status means for the wait: keep waiting, collect the results, or stop with
 * an error that names the container and the image. Pure: input is `kubectl get pod -o json`.
 */

import { CONFORMANCE_CONTAINER, OUTPUT_CONTAINER } from "./objects";

/** The subset of a Pod the decision reads. */
export interface PodStatusJson {
  metadata?: { name?: string; deletionTimestamp?: string };
  spec?: { containers?: Array<{ name: string; image?: string }> };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    containerStatuses?: ContainerStatusJson[];
  };
}

interface ContainerStatusJson {
  name: string;
  image?: string;
  ready?: boolean;
  restartCount?: number;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: { startedAt?: string };
    terminated?: { exitCode?: number; reason?: string; message?: string };
  };
}

export type PodRunState =
  /** The pod does not exist (deleted mid-run, or never created). */
  | { kind: "gone" }
  /** Not yet on a node; `message` says why when the scheduler said so. */
  | { kind: "scheduling"; message?: string }
  /** On a node, containers being created (images pulling). */
  | { kind: "starting"; message?: string }
  | { kind: "running" }
  /** The suite ended and the output container still serves the results. */
  | { kind: "finished"; exitCode: number; reason?: string }
  /** Nothing more will happen; `partial` says whether the output container can still be read. */
  | {
      kind: "failed";
      reason: string;
      message: string;
      container?: string;
      image?: string;
      readable: boolean;
    };

/** Waiting reasons that will not resolve by waiting (kubelet's image and container errors). */
const FATAL_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "RegistryUnavailable",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

function statusOf(pod: PodStatusJson, name: string): ContainerStatusJson | undefined {
  return pod.status?.containerStatuses?.find((status) => status.name === name);
}

function imageOf(pod: PodStatusJson, name: string, status?: ContainerStatusJson): string {
  return (
    pod.spec?.containers?.find((container) => container.name === name)?.image ??
    status?.image ??
    "(unknown image)"
  );
}

/**
 * Decides the state of the run from the pod, or `undefined` (no pod: `--ignore-not-found`
 * printed nothing).
 */
export function podRunState(pod: PodStatusJson | undefined): PodRunState {
  if (pod === undefined) return { kind: "gone" };
  const phase = pod.status?.phase ?? "Pending";
  if (pod.status?.reason === "Evicted" || (phase === "Failed" && pod.status?.reason)) {
    return {
      kind: "failed",
      reason: pod.status?.reason ?? "Failed",
      message: `the run pod was ${pod.status?.reason === "Evicted" ? "evicted" : "stopped"}: ${pod.status?.message ?? "no message"}`,
      readable: false,
    };
  }
  if (pod.metadata?.deletionTimestamp !== undefined) {
    return {
      kind: "failed",
      reason: "Deleted",
      message: `the run pod is being deleted (deletionTimestamp ${pod.metadata.deletionTimestamp})`,
      readable: false,
    };
  }

  for (const name of [CONFORMANCE_CONTAINER, OUTPUT_CONTAINER]) {
    const status = statusOf(pod, name);
    const waiting = status?.state?.waiting;
    if (waiting?.reason !== undefined && FATAL_WAITING.has(waiting.reason)) {
      const image = imageOf(pod, name, status);
      return {
        kind: "failed",
        reason: waiting.reason,
        container: name,
        image,
        message:
          `container ${name} (image ${image}) is in ${waiting.reason}` +
          (waiting.message ? `: ${waiting.message}` : "") +
          (waiting.reason.includes("Image") || waiting.reason === "RegistryUnavailable"
            ? "; check that the image is in the mirror and the nodes can pull from it"
            : ""),
        readable: false,
      };
    }
  }

  const suite = statusOf(pod, CONFORMANCE_CONTAINER);
  const output = statusOf(pod, OUTPUT_CONTAINER);
  const outputEnded = output?.state?.terminated;
  if (outputEnded !== undefined) {
    return {
      kind: "failed",
      reason: "OutputContainerEnded",
      container: OUTPUT_CONTAINER,
      image: imageOf(pod, OUTPUT_CONTAINER, output),
      message:
        `container ${OUTPUT_CONTAINER} ended (${outputEnded.reason ?? "terminated"}, exit ` +
        `${outputEnded.exitCode ?? "?"}), so the results can no longer be read from the pod`,
      readable: false,
    };
  }
  const suiteEnded = suite?.state?.terminated;
  if (suiteEnded !== undefined) {
    if (output?.state?.running !== undefined) {
      return {
        kind: "finished",
        exitCode: suiteEnded.exitCode ?? -1,
        ...(suiteEnded.reason ? { reason: suiteEnded.reason } : {}),
      };
    }
    return {
      kind: "failed",
      reason: "OutputContainerNotRunning",
      container: OUTPUT_CONTAINER,
      image: imageOf(pod, OUTPUT_CONTAINER, output),
      message: `the suite ended (exit ${suiteEnded.exitCode ?? "?"}) but ${OUTPUT_CONTAINER} is not running`,
      readable: false,
    };
  }
  if (phase === "Succeeded" || phase === "Failed") {
    return {
      kind: "failed",
      reason: phase,
      message: `the run pod is ${phase} without a result from ${CONFORMANCE_CONTAINER}`,
      readable: false,
    };
  }
  if (suite?.state?.running !== undefined) return { kind: "running" };

  const scheduled = pod.status?.conditions?.find((condition) => condition.type === "PodScheduled");
  if (scheduled === undefined || scheduled.status !== "True") {
    const reason = scheduled?.message ?? scheduled?.reason;
    return reason === undefined ? { kind: "scheduling" } : { kind: "scheduling", message: reason };
  }
  const waitingReason = suite?.state?.waiting?.reason ?? output?.state?.waiting?.reason;
  return waitingReason === undefined
    ? { kind: "starting" }
    : { kind: "starting", message: waitingReason };
}

/** What the wait loop does next. */
export type WaitDecision =
  | { action: "wait" }
  | { action: "collect"; exitCode: number }
  /** `stopPod`: the run's own limit passed, so the pod is deleted after its results are read. */
  | { action: "fail"; message: string; readable: boolean; stopPod?: boolean };

/**
 * The wait loop's decision: the pod state plus the clock. `startedSeconds` is how long the
 * pod has existed in our watch, `runningSince` when the suite was first seen running (seconds
 * on the same clock), or undefined.
 */
export function decideWait(
  state: PodRunState,
  clock: { elapsedSeconds: number; runningSinceSeconds?: number },
  timeouts: { startupSeconds: number; runSeconds: number },
): WaitDecision {
  switch (state.kind) {
    case "gone":
      return {
        action: "fail",
        message: "the run pod was deleted mid-run (it no longer exists)",
        readable: false,
      };
    case "failed":
      return { action: "fail", message: state.message, readable: state.readable };
    case "finished":
      return { action: "collect", exitCode: state.exitCode };
    case "scheduling":
    case "starting":
      if (
        clock.runningSinceSeconds === undefined &&
        clock.elapsedSeconds > timeouts.startupSeconds
      ) {
        return {
          action: "fail",
          message:
            `the run pod did not start within ${timeouts.startupSeconds}s (startupTimeoutMinutes)` +
            (state.message ? `: ${state.message}` : ""),
          readable: false,
        };
      }
      return { action: "wait" };
    case "running": {
      const since = clock.runningSinceSeconds ?? clock.elapsedSeconds;
      if (clock.elapsedSeconds - since > timeouts.runSeconds) {
        return {
          action: "fail",
          message:
            `the suite did not finish within ${timeouts.runSeconds}s (timeoutMinutes); ` +
            `the run pod was deleted`,
          readable: true,
          stopPod: true,
        };
      }
      return { action: "wait" };
    }
  }
}
