/**
 * Entry point of the ConformanceRun actions, run by its local.Command resources as
 * `"$CONFORMANCE_NODE" "$CONFORMANCE_ACTION" <mode>` with everything in the environment
 * (core/conformance/action.ts). Progress and errors go to stderr; the run's report is the one
 * line on stdout that becomes the component's outputs.
 */

import {
  ACTION_ENV,
  ConformanceRunError,
  deleteSuiteNamespacesArgs,
  describeFailures,
  describeReport,
  formatReportLine,
  isFailingVerdict,
  parseReportOutput,
  reportE2eRunIds,
  type ActionMode,
  type ConformanceRunPlan,
  type MirrorAccess,
} from "../../../core/conformance";
import { kubectlError, runKubectl } from "./kubectl";
import { runPreflight } from "./preflight";
import { waitAndCollect } from "./run";

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new ConformanceRunError(`the action's environment lacks ${name}`);
  }
  return value;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

export async function runAction(mode: ActionMode): Promise<number> {
  const plan = JSON.parse(env(ACTION_ENV.plan)) as ConformanceRunPlan;
  switch (mode) {
    case "preflight": {
      const mirror = JSON.parse(env(ACTION_ENV.mirror)) as MirrorAccess;
      const digests = JSON.parse(process.env[ACTION_ENV.digests] || "{}") as Record<string, string>;
      await runPreflight(plan, mirror, digests, process.env[ACTION_ENV.password] || undefined, log);
      return 0;
    }
    case "run": {
      const report = await waitAndCollect(plan, { log });
      process.stdout.write(`${formatReportLine(report)}\n`);
      log(`conformance ${describeReport(report)}`);
      const failures = [...report.suiteFailures, ...report.failures];
      if (failures.length > 0) log(`conformance failures:\n${describeFailures(failures)}`);
      if (isFailingVerdict(report.verdict, plan)) {
        const setting =
          report.verdict === "no-tests"
            ? "no spec ran: check focus and skip (set failOnNoTests: false to keep the up green)"
            : "set failOnTestFailures: false to keep the up green";
        log(
          `conformance run ${report.verdict}` +
            (failures.length > 0 ? `; failed: ${failures.map((f) => f.name).join("; ")}` : "") +
            ` (${setting})`,
        );
        return 1;
      }
      return 0;
    }
    case "cleanup": {
      // On destroy the previous run's report is in PULUMI_COMMAND_STDOUT.
      const report = parseReportOutput(process.env.PULUMI_COMMAND_STDOUT ?? "");
      const ids = report === undefined ? [] : reportE2eRunIds(report);
      if (ids.length === 0) return 0;
      const result = await runKubectl(
        plan.kubectl.binary,
        deleteSuiteNamespacesArgs(plan.kubectl, ids),
      );
      // Best effort: a cluster already gone must not block `pulumi destroy`.
      if (result.code !== 0) {
        log(
          `warning: could not delete the suite's namespaces (e2e-run in ${ids.join(", ")}): ${kubectlError(result)}`,
        );
      } else {
        log(`deleted the suite's namespaces labelled e2e-run in ${ids.join(", ")}`);
      }
      return 0;
    }
  }
}

if (require.main === module) {
  const mode = process.argv[2] as ActionMode;
  if (!["preflight", "run", "cleanup"].includes(mode)) {
    log(`usage: main <preflight|run|cleanup> (got ${JSON.stringify(mode)})`);
    process.exit(2);
  }
  runAction(mode).then(
    (code) => process.exit(code),
    (error: Error) => {
      log(error instanceof ConformanceRunError ? error.message : `${error.name}: ${error.message}`);
      process.exit(1);
    },
  );
}
