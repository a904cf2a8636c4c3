/**
 * The verdict of a run and the one-line report the run action prints on stdout, which the
 * component turns into stack outputs. Pure.
 */

import type { JunitFailure, JunitSummary } from "./junit";

/**
 * passed: every spec that ran passed; failed: a spec or a suite node failed, or the suite exited
 * non-zero; no-tests: no spec ran (a focus that matches no spec); dry-run: specs listed, none run.
 */
export type Verdict = "passed" | "failed" | "no-tests" | "dry-run";

export interface RunReport {
  readonly verdict: Verdict;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly total: number;
  readonly durationSeconds: number;
  readonly failedTests: readonly string[];
  /** Each failed spec with the first lines of its failure message. */
  readonly failures: readonly JunitFailure[];
  /** Suite nodes (e.g. `[SynchronizedBeforeSuite]`) that failed, with their messages. */
  readonly suiteFailures: readonly JunitFailure[];
  readonly resultsDirectory: string;
  readonly conformanceImage: string;
  /** Exit code of the conformance container. */
  readonly exitCode: number;
  /**
   * Label values of the namespaces the tests created (`e2e-run`), one per Ginkgo process, for
   * cleanup.
   */
  readonly e2eRunIds: readonly string[];
}

/** Prefix of the report line on the run action's stdout. */
export const REPORT_MARKER = "CONFORMANCE_REPORT ";

export function decideVerdict(junit: JunitSummary, exitCode: number, dryRun: boolean): Verdict {
  if (junit.failed > 0 || junit.suiteFailures.length > 0 || exitCode !== 0) return "failed";
  if (dryRun || junit.dryRun) return "dry-run";
  if (junit.passed === 0) return "no-tests";
  return "passed";
}

/** What fails `pulumi up`: failed tests and a run where no spec ran, each its own setting. */
export interface FailurePolicy {
  readonly failOnTestFailures: boolean;
  readonly failOnNoTests: boolean;
}

/** Whether the verdict fails `pulumi up` under the policy. */
export function isFailingVerdict(verdict: Verdict, policy: FailurePolicy): boolean {
  if (verdict === "failed") return policy.failOnTestFailures;
  if (verdict === "no-tests") return policy.failOnNoTests;
  return false;
}

/**
 * The e2e-run ids of a report, also from a report written before ids were kept per Ginkgo
 * process (a single `e2eRunId`).
 */
export function reportE2eRunIds(report: RunReport): readonly string[] {
  const legacy = (report as { e2eRunId?: unknown }).e2eRunId;
  const ids = Array.isArray(report.e2eRunIds) ? [...report.e2eRunIds] : [];
  if (typeof legacy === "string" && !ids.includes(legacy)) ids.push(legacy);
  return ids;
}

/** Failures as lines a user reads: the name, then its message indented under it. */
export function describeFailures(failures: readonly JunitFailure[]): string {
  return failures
    .map((failure) => {
      const message = failure.message
        .split("\n")
        .map((line) => `    ${line}`)
        .join("\n");
      return (
        `  ${failure.name}${failure.state === "failed" ? "" : ` [${failure.state}]`}` +
        (failure.message === "" ? "" : `\n${message}`)
      );
    })
    .join("\n");
}

export function formatReportLine(report: RunReport): string {
  return `${REPORT_MARKER}${JSON.stringify(report)}`;
}

/** The last report line of the action's stdout; undefined when there is none (e.g. preview). */
export function parseReportOutput(stdout: string): RunReport | undefined {
  const line = stdout
    .split(/\r?\n/)
    .reverse()
    .find((candidate) => candidate.startsWith(REPORT_MARKER));
  if (line === undefined) return undefined;
  return JSON.parse(line.slice(REPORT_MARKER.length)) as RunReport;
}

/** A short human summary, e.g. "failed: 400 passed, 2 failed, 7000 skipped of 7402 in 95m". */
export function describeReport(report: RunReport): string {
  const minutes = Math.round(report.durationSeconds / 60);
  return (
    `${report.verdict}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} ` +
    `skipped of ${report.total} in ${minutes}m (exit ${report.exitCode}); results in ${report.resultsDirectory}`
  );
}
