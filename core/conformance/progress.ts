/**
 * Progress of a run from its e2e.log (Ginkgo v2 output, succinct or verbose): how many of the
 * specs that will run are done, which failed so far, and whether the suite reached its end.
 * Pure; a log cut at any byte gives a smaller count, never an error.
 *
 * Ginkgo writes a marker per spec without a newline (`•` passed, `S` skipped, `P` pending,
 * `↺` passed after retries), so klog lines and warnings of the suite continue the same line
 * (`SSS•SSW0509 12:51:54.410345 ...`). Markers are counted wherever they stand on a line.
 */

import type { PodRunState } from "./pod-state";

export interface E2eProgress {
  /**
   * The e2e framework's run ids, one per Ginkgo process, in log order (each labels the
   * namespaces its process creates: `e2e-run=<id>`).
   */
  readonly e2eRunIds: readonly string[];
  /** N of "Will run N of M specs". */
  readonly willRun?: number;
  /** M of "Will run N of M specs". */
  readonly totalSpecs?: number;
  /** Specs that ran to an end so far (passed, flaky or failed; skipped ones are not counted). */
  readonly done: number;
  /** Of `done`, specs that passed only after retries (`↺`, ginkgo --flake-attempts). */
  readonly flaky: number;
  /** Pending specs seen so far (not run, not counted in `done`). */
  readonly pending: number;
  /** Spec texts of the failures so far, in log order. */
  readonly failed: readonly string[];
  /** Whether the "Ran N of M Specs" trailer was seen. */
  readonly finished: boolean;
}

const RUN_ID = /Starting e2e run "([0-9a-f-]{8,})"/;
const WILL_RUN = /Will run (\d+) of (\d+) specs?/;
const RAN = /^Ran (\d+) of (\d+) Specs? in /;
/** A run of markers holding at least one finished spec, anywhere on a line. */
const MARKERS = /[SP]*[•↺][•↺SP]*/g;
/** A line that starts with skip/pending markers only, then ends or turns into other output. */
const LEADING_MARKERS = /^([SP]+)(?=$|\s|-{5,}|[IWEF]\d{4} )/;
/** A failed spec's header: `• [FAILED] [303.2 seconds]`, `• [TIMEDOUT] ...`. */
const FAILED_HEADER = /[•↺] \[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED|ABORTED)\]/;

function count(text: string, marker: string): number {
  let found = 0;
  for (const character of text) if (character === marker) found++;
  return found;
}

/** Reads progress from the text of e2e.log as it stands. */
export function parseE2eProgress(log: string): E2eProgress {
  const e2eRunIds: string[] = [];
  let willRun: number | undefined;
  let totalSpecs: number | undefined;
  let done = 0;
  let flaky = 0;
  let pending = 0;
  let finished = false;
  const failed: string[] = [];
  const lines = log.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim();
    const runId = RUN_ID.exec(line);
    if (runId && !e2eRunIds.includes(runId[1])) e2eRunIds.push(runId[1]);
    if (finished) continue;
    if (willRun === undefined) {
      const will = WILL_RUN.exec(line);
      if (will) {
        willRun = Number(will[1]);
        totalSpecs = Number(will[2]);
      }
      continue;
    }
    if (RAN.test(line)) {
      finished = true;
      continue;
    }
    for (const run of line.match(MARKERS) ?? []) {
      const ended = count(run, "•") + count(run, "↺");
      done += ended;
      flaky += count(run, "↺");
      pending += count(run, "P");
    }
    const leading = LEADING_MARKERS.exec(line);
    if (leading) pending += count(leading[1], "P");
    if (FAILED_HEADER.test(line)) {
      // The spec's text is the next non-empty line; a log cut right here has none yet.
      const text = lines.slice(index + 1).find((next) => next.trim() !== "");
      failed.push(text === undefined ? "(spec name not yet written)" : text.trim());
    }
  }
  return {
    e2eRunIds,
    ...(willRun === undefined ? {} : { willRun, totalSpecs }),
    done,
    flaky,
    pending,
    failed,
    finished,
  };
}

/** "42s", "7m", "2h05m". */
export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

/**
 * Seconds left at the rate so far, or undefined when there is no rate yet (nothing done, no
 * total, or the suite finished).
 */
export function estimateSecondsLeft(
  progress: E2eProgress,
  runningSeconds: number,
): number | undefined {
  if (progress.finished || progress.willRun === undefined || progress.done === 0) return undefined;
  if (runningSeconds <= 0) return undefined;
  const left = Math.max(0, progress.willRun - progress.done);
  return (runningSeconds / progress.done) * left;
}

/**
 * One progress line, e.g.
 * "conformance: 120/402 specs done (29%), 1 failed after 35m; about 1h25m left".
 * `elapsedSeconds` counts from the start of the wait, `runningSeconds` from when the suite
 * was first seen running (the rate is taken over the latter).
 */
export function describeProgress(
  progress: E2eProgress,
  elapsedSeconds: number,
  runningSeconds: number = elapsedSeconds,
): string {
  const of = progress.willRun === undefined ? "?" : String(progress.willRun);
  const percent =
    progress.willRun === undefined || progress.willRun === 0
      ? ""
      : ` (${Math.floor((100 * Math.min(progress.done, progress.willRun)) / progress.willRun)}%)`;
  const details = [
    progress.failed.length === 0 ? "" : `${progress.failed.length} failed`,
    progress.flaky === 0 ? "" : `${progress.flaky} flaky`,
    progress.pending === 0 ? "" : `${progress.pending} pending`,
  ].filter((detail) => detail !== "");
  const secondsLeft = estimateSecondsLeft(progress, runningSeconds);
  const eta = secondsLeft === undefined ? "" : `; about ${formatDuration(secondsLeft)} left`;
  const state = progress.finished ? " (suite finished)" : "";
  return (
    `conformance: ${progress.done}/${of} specs done${percent}` +
    (details.length === 0 ? "" : `, ${details.join(", ")}`) +
    ` after ${formatDuration(elapsedSeconds)}${eta}${state}`
  );
}

/** The line shown while the pod waits for a node or for its images, undefined otherwise. */
export function describeStartup(
  state: PodRunState,
  podName: string,
  elapsedSeconds: number,
): string | undefined {
  const after = ` after ${formatDuration(elapsedSeconds)}`;
  if (state.kind === "scheduling") {
    return (
      `conformance: pod ${podName} waiting for a node${after}` +
      (state.message === undefined ? "" : ` (${state.message})`)
    );
  }
  if (state.kind === "starting") {
    return (
      `conformance: pod ${podName} scheduled, pulling images and starting containers${after}` +
      (state.message === undefined ? "" : ` (${state.message})`)
    );
  }
  return undefined;
}
