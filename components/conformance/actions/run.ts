import { accessSync, appendFileSync, constants, mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  ConformanceRunError,
  ResultsParseError,
  decideVerdict,
  decideWait,
  deletePodArgs,
  deleteSuiteNamespacesArgs,
  describeProgress,
  describeStartup,
  getPodArgs,
  parseE2eProgress,
  parseJunit,
  podRunState,
  readResultArgs,
  type ConformanceRunPlan,
  type PodStatusJson,
  type RunReport,
} from "../../../core/conformance";
import { kubectlError, runKubectl } from "./kubectl";

export const E2E_LOG = "e2e.log";
export const JUNIT = "junit_01.xml";
/** Every progress line of the run with its time, so a multi-hour run's timeline survives. */
export const PROGRESS_LOG = "progress.log";
/** kubectl failures in a row tolerated while waiting (API server restarts, network blips). */
const TRANSIENT_FAILURES = 5;

export interface RunOptions {
  log: (line: string) => void;
  /** Seconds since an arbitrary origin; injectable so tests need not wait. */
  now?: () => number;
  sleep?: (seconds: number) => Promise<void>;
}

/**
 * Creates the results directory, or fails naming resultsDirectory.
 */
export function prepareResultsDirectory(directory: string): void {
  try {
    mkdirSync(directory, { recursive: true });
    accessSync(directory, constants.W_OK);
  } catch (error) {
    throw new ConformanceRunError(
      `resultsDirectory: cannot write ${directory}: ${(error as Error).message}; choose a writable directory`,
    );
  }
}

/**
 * Waits for the run pod, reports progress, downloads e2e.log and junit_01.xml from the output
 * container and summarises them. Every exit path leaves what it has in the results directory.
 */
export async function waitAndCollect(
  plan: ConformanceRunPlan,
  options: RunOptions,
): Promise<RunReport> {
  const now = options.now ?? (() => performance.now() / 1000);
  const sleep =
    options.sleep ?? ((seconds: number) => new Promise((r) => setTimeout(r, seconds * 1000)));
  const target = plan.kubectl;
  const directory = plan.resultsDirectory;
  prepareResultsDirectory(directory);
  const save = (file: string, text: string) => writeFileSync(path.join(directory, file), text);
  const progressLine = (line: string) => {
    options.log(line);
    appendFileSync(path.join(directory, PROGRESS_LOG), `${new Date().toISOString()} ${line}\n`);
  };

  const readResult = async (file: string) =>
    runKubectl(target.binary, readResultArgs(target, plan.namespace, plan.podName, file));

  const start = now();
  let runningSince: number | undefined;
  let lastProgressAt = Number.NEGATIVE_INFINITY;
  let lastLog = "";
  let failuresInRow = 0;
  let lastPod: PodStatusJson | undefined;

  const fail = async (message: string, readable: boolean, stopPod = false): Promise<never> => {
    let partialJunit = false;
    if (readable) {
      const latest = await readResult(E2E_LOG);
      if (latest.code === 0) lastLog = latest.stdout;
      // A suite past its own timeout may have written its report already.
      const junit = await readResult(JUNIT);
      if (junit.code === 0 && junit.stdout.trim() !== "") {
        save(`${JUNIT}.partial`, junit.stdout);
        partialJunit = true;
      }
    }
    if (lastLog !== "") save(`${E2E_LOG}.partial`, lastLog);
    if (lastPod !== undefined) save("pod.json", JSON.stringify(lastPod, null, 2));
    if (stopPod) {
      const deleted = await runKubectl(
        target.binary,
        deletePodArgs(target, plan.namespace, plan.podName),
      );
      options.log(
        deleted.code === 0
          ? `conformance: deleted pod ${plan.namespace}/${plan.podName} (timeoutMinutes reached)`
          : `could not delete pod ${plan.namespace}/${plan.podName}: ${kubectlError(deleted)}`,
      );
    }
    // The suite's namespaces of this run would outlive it: nothing in Pulumi's state knows them.
    const e2eRunIds = parseE2eProgress(lastLog).e2eRunIds;
    if (e2eRunIds.length > 0) {
      const deleted = await runKubectl(target.binary, deleteSuiteNamespacesArgs(target, e2eRunIds));
      if (deleted.code !== 0) {
        options.log(
          `could not delete the suite's namespaces (e2e-run in ${e2eRunIds.join(", ")}): ${kubectlError(deleted)}`,
        );
      }
    }
    const files = [
      lastLog === "" ? undefined : `${E2E_LOG}.partial`,
      partialJunit ? `${JUNIT}.partial` : undefined,
    ].filter((file) => file !== undefined);
    const kept =
      files.length === 0 ? "no log was read yet" : `${files.join(" and ")} kept in ${directory}`;
    throw new ConformanceRunError(`${plan.namespace}/${plan.podName}: ${message} (${kept})`);
  };

  for (;;) {
    const got = await runKubectl(target.binary, getPodArgs(target, plan.namespace, plan.podName));
    const elapsed = now() - start;
    if (got.code !== 0) {
      failuresInRow++;
      if (failuresInRow >= TRANSIENT_FAILURES) {
        await fail(`kubectl cannot read the pod: ${kubectlError(got)}`, false);
      }
      await sleep(plan.timeouts.pollSeconds);
      continue;
    }
    failuresInRow = 0;
    const pod = got.stdout.trim() === "" ? undefined : (JSON.parse(got.stdout) as PodStatusJson);
    if (pod !== undefined) lastPod = pod;
    const state = podRunState(pod);
    if (state.kind === "running" && runningSince === undefined) runningSince = elapsed;

    if (elapsed - lastProgressAt >= plan.timeouts.progressSeconds) {
      if (state.kind === "running") {
        lastProgressAt = elapsed;
        const read = await readResult(E2E_LOG);
        // Before the suite has written anything the file does not exist yet.
        if (read.code === 0) lastLog = read.stdout;
        progressLine(
          describeProgress(parseE2eProgress(lastLog), elapsed, elapsed - (runningSince ?? elapsed)),
        );
      } else {
        const startup = describeStartup(state, plan.podName, elapsed);
        if (startup !== undefined) {
          lastProgressAt = elapsed;
          progressLine(startup);
        }
      }
    }

    const decision = decideWait(
      state,
      {
        elapsedSeconds: elapsed,
        ...(runningSince === undefined ? {} : { runningSinceSeconds: runningSince }),
      },
      { startupSeconds: plan.timeouts.startupSeconds, runSeconds: plan.timeouts.runSeconds },
    );
    if (decision.action === "fail") {
      await fail(decision.message, decision.readable, decision.stopPod === true);
    }
    if (decision.action === "collect") return collect(plan, decision.exitCode, lastPod, options);
    await sleep(plan.timeouts.pollSeconds);
  }
}

async function collect(
  plan: ConformanceRunPlan,
  exitCode: number,
  pod: PodStatusJson | undefined,
  options: RunOptions,
): Promise<RunReport> {
  const target = plan.kubectl;
  const directory = plan.resultsDirectory;
  const save = (file: string, text: string) => writeFileSync(path.join(directory, file), text);
  if (pod !== undefined) save("pod.json", JSON.stringify(pod, null, 2));

  const logRead = await runKubectl(
    target.binary,
    readResultArgs(target, plan.namespace, plan.podName, E2E_LOG),
  );
  if (logRead.code === 0) save(E2E_LOG, logRead.stdout);
  const junitRead = await runKubectl(
    target.binary,
    readResultArgs(target, plan.namespace, plan.podName, JUNIT),
  );
  if (junitRead.code !== 0) {
    throw new ConformanceRunError(
      `${plan.namespace}/${plan.podName}: the suite ended (exit ${exitCode}) without a readable ` +
        `${JUNIT}: ${kubectlError(junitRead)} (${logRead.code === 0 ? `${E2E_LOG} kept in ${directory}` : `${E2E_LOG} unreadable too`})`,
    );
  }
  save(JUNIT, junitRead.stdout);
  let junit;
  try {
    junit = parseJunit(junitRead.stdout, path.join(directory, JUNIT));
  } catch (error) {
    if (error instanceof ResultsParseError) throw new ConformanceRunError(error.message);
    throw error;
  }
  const progress = parseE2eProgress(logRead.code === 0 ? logRead.stdout : "");
  const report: RunReport = {
    verdict: decideVerdict(junit, exitCode, plan.dryRun),
    passed: junit.passed,
    failed: junit.failed,
    skipped: junit.skipped,
    total: junit.total,
    durationSeconds: junit.durationSeconds,
    failedTests: junit.failedTests,
    failures: junit.failures,
    suiteFailures: junit.suiteFailures,
    resultsDirectory: directory,
    conformanceImage: plan.conformanceImage.mirrorReference,
    exitCode,
    e2eRunIds: progress.e2eRunIds,
  };
  save("report.json", `${JSON.stringify(report, null, 2)}\n`);
  options.log(`conformance: collected ${E2E_LOG} and ${JUNIT} into ${directory}`);
  return report;
}
