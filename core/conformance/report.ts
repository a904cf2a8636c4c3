/**
 * The verdict of a run and the one-line report the run action prints on stdout, which the
 * component turns into stack outputs. Pure.
 */

import type { JunitSummary } from "./junit";

/**
 * passed: every spec that ran passed; failed: a spec failed or the suite exited non-zero;
 * no-tests: nothing ran (a focus that matches no spec); dry-run: specs listed, none run.
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
  readonly resultsDirectory: string;
  readonly conformanceImage: string;
  /** Exit code of the conformance container. */
  readonly exitCode: number;
  /** Label value of the namespaces the tests created (`e2e-run`), for cleanup. */
  readonly e2eRunId?: string;
}

/** Prefix of the report line on the run action's stdout. */
export const REPORT_MARKER = "CONFORMANCE_REPORT ";

export function decideVerdict(junit: JunitSummary, exitCode: number, dryRun: boolean): Verdict {
  if (junit.failed > 0 || exitCode !== 0) return "failed";
  if (dryRun || junit.dryRun) return "dry-run";
  if (junit.passed === 0) return "no-tests";
  return "passed";
}

/** Whether the verdict fails `pulumi up` when failOnTestFailures is set. */
export function isFailingVerdict(verdict: Verdict): boolean {
  return verdict === "failed" || verdict === "no-tests";
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
