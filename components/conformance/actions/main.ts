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
  describeReport,
  formatReportLine,
  isFailingVerdict,
  parseReportOutput,
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
      if (plan.failOnTestFailures && isFailingVerdict(report.verdict)) {
        log(
          `conformance run ${report.verdict}` +
            (report.failedTests.length > 0 ? `; failed: ${report.failedTests.join("; ")}` : "") +
            ` (set failOnTestFailures: false to keep the up green)`,
        );
        return 1;
      }
      return 0;
    }
    case "cleanup": {
      // On destroy the previous run's report is in PULUMI_COMMAND_STDOUT.
      const report = parseReportOutput(process.env.PULUMI_COMMAND_STDOUT ?? "");
      if (report?.e2eRunId === undefined) return 0;
      const result = await runKubectl(
        plan.kubectl.binary,
        deleteSuiteNamespacesArgs(plan.kubectl, report.e2eRunId),
      );
      // Best effort: a cluster already gone must not block `pulumi destroy`.
      if (result.code !== 0) {
        log(
          `warning: could not delete the suite's namespaces (e2e-run=${report.e2eRunId}): ${kubectlError(result)}`,
        );
      } else {
        log(`deleted the suite's namespaces labelled e2e-run=${report.e2eRunId}`);
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
