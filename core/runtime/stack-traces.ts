/**
 * Runs `declare` without the stack traces the Pulumi SDK captures for every property of every
 * resource it declares: it keeps them only to name a promise still pending when the program
 * exits. Under ts-node each frame of each trace is source-mapped, which makes them the largest
 * part of evaluating a program with hundreds of resources. A resource's source position is not
 * affected: the SDK takes it with a limit of its own.
 *
 * Only resource declarations belong inside: an error thrown in `declare` carries its message but
 * no stack trace.
 */
export function withoutPropertyStackTraces<T>(declare: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return declare();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
