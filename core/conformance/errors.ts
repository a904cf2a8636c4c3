/** Errors of the conformance run: each names the argument or the file at fault. */

/** An invalid ConformanceRun argument; `arg` names it, the message says what is allowed. */
export class ConformanceArgsError extends Error {
  override readonly name = "ConformanceArgsError";

  constructor(
    readonly arg: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`ConformanceRun: ${arg}: ${message}`, options);
  }
}

/** A fault while the run is under way (image missing, pod evicted, results unreadable). */
export class ConformanceRunError extends Error {
  override readonly name = "ConformanceRunError";
}

/** A results file that cannot be read as what it should be. */
export class ResultsParseError extends Error {
  override readonly name = "ResultsParseError";

  constructor(
    /** The file, e.g. "junit_01.xml". */
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}
