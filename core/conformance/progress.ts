/**
 * Progress of a run from its e2e.log (ginkgo v2 output, succinct or verbose): how many of the
 * specs that will run are done, which failed so far, and whether the suite reached its end.
 * Pure; a log cut at any byte gives a smaller count, never an error.
 */

export interface E2eProgress {
  /** The e2e framework's run id (labels the namespaces the tests create: `e2e-run=<id>`). */
  readonly e2eRunId?: string;
  /** N of "Will run N of M specs". */
  readonly willRun?: number;
  /** M of "Will run N of M specs". */
  readonly totalSpecs?: number;
  /** Specs that ran to an end so far (passed or failed; skipped ones are not counted). */
  readonly done: number;
  /** Spec texts of the failures so far, in log order. */
  readonly failed: readonly string[];
  /** Whether the "Ran N of M Specs" trailer was seen. */
  readonly finished: boolean;
}

const RUN_ID = /Starting e2e run "([0-9a-f-]{8,})"/;
const WILL_RUN = /^Will run (\d+) of (\d+) specs?\s*$/;
const RAN = /^Ran (\d+) of (\d+) Specs? in /;
/** A line of succinct markers: one `•` per finished spec, `S` per skipped one. */
const SUCCINCT = /^([•S]+)(?:-{5,})?$/;
/** A verbose or failure header: `• [12.3 seconds]`, `• [FAILED] [303.2 seconds]`. */
const SPEC_HEADER =
  /^• (?:\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED|ABORTED)\] )?\[\d+(?:\.\d+)? seconds\]/;

/** Reads progress from the text of e2e.log as it stands. */
export function parseE2eProgress(log: string): E2eProgress {
  let e2eRunId: string | undefined;
  let willRun: number | undefined;
  let totalSpecs: number | undefined;
  let done = 0;
  let finished = false;
  const failed: string[] = [];
  const lines = log.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim();
    if (e2eRunId === undefined) {
      const runId = RUN_ID.exec(line);
      if (runId) e2eRunId = runId[1];
    }
    const will = WILL_RUN.exec(line);
    if (will) {
      willRun = Number(will[1]);
      totalSpecs = Number(will[2]);
      continue;
    }
    if (RAN.test(line)) {
      finished = true;
      continue;
    }
    const succinct = SUCCINCT.exec(line);
    if (succinct) {
      done += [...succinct[1]].filter((marker) => marker === "•").length;
      continue;
    }
    const header = SPEC_HEADER.exec(line);
    if (header) {
      done += 1;
      if (header[1] !== undefined) {
        // The spec's text is the next non-empty line; a log cut right here has none yet.
        const text = lines.slice(index + 1).find((next) => next.trim() !== "");
        failed.push(text === undefined ? "(spec name not yet written)" : text.trim());
      }
    }
  }
  return {
    ...(e2eRunId === undefined ? {} : { e2eRunId }),
    ...(willRun === undefined ? {} : { willRun, totalSpecs }),
    done,
    failed,
    finished,
  };
}

/** One progress line for the Pulumi output, e.g. "conformance: 120/402 specs done, 1 failed". */
export function describeProgress(progress: E2eProgress, elapsedSeconds: number): string {
  const minutes = Math.floor(elapsedSeconds / 60);
  const of = progress.willRun === undefined ? "?" : String(progress.willRun);
  const failed = progress.failed.length === 0 ? "" : `, ${progress.failed.length} failed`;
  const state = progress.finished ? " (suite finished)" : "";
  return `conformance: ${progress.done}/${of} specs done${failed} after ${minutes}m${state}`;
}
