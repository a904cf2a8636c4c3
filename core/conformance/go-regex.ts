/**
 * Focus and skip patterns are Go regular expressions (RE2, compiled by ginkgo inside the pod).
 * A pattern that does not compile fails the run an hour later, after the images are pulled, so
 * it is checked at preview. Pure.
 */

import { ConformanceArgsError } from "./errors";

/** RE2 constructs that JavaScript accepts but Go rejects: lookaround and backreferences. */
const RE2_UNSUPPORTED: ReadonlyArray<{ pattern: RegExp; what: string }> = [
  { pattern: /\(\?<?[=!]/, what: "lookahead/lookbehind ((?=, (?!, (?<=, (?<!)" },
  { pattern: /\\[1-9]/, what: "backreferences (\\1 ... \\9)" },
  { pattern: /\\k</, what: "named backreferences (\\k<name>)" },
];

/** Go's leading flag group, e.g. `(?i)`; JavaScript has no inline flags, so it becomes a flag. */
const LEADING_FLAGS = /^\(\?([imsU]+)\)/;

/** Removes escaped characters so `\(?=` is not mistaken for a lookahead. */
function withoutEscapes(pattern: string): string {
  return pattern.replace(/\\\\/g, "").replace(/\\[()[\]]/g, "");
}

/**
 * Checks a ginkgo focus/skip pattern.
 *
 * @throws ConformanceArgsError naming `arg` when JavaScript cannot compile the pattern or it uses
 *   a construct RE2 rejects.
 */
export function assertGoRegex(arg: string, pattern: string): void {
  const unescaped = withoutEscapes(pattern);
  for (const { pattern: construct, what } of RE2_UNSUPPORTED) {
    if (construct.test(unescaped)) {
      throw new ConformanceArgsError(
        arg,
        `${JSON.stringify(pattern)} uses ${what}, which Go's RE2 (used by ginkgo) does not support; ` +
          `rewrite it without them, e.g. list the names to skip as alternatives a|b`,
      );
    }
  }
  let body = pattern;
  let flags = "";
  const leading = LEADING_FLAGS.exec(pattern);
  if (leading) {
    body = pattern.slice(leading[0].length);
    // U (ungreedy) has no JavaScript equivalent; it does not change whether a pattern compiles.
    flags = leading[1].replace(/U/g, "");
  }
  // Go's (?P<name>...) is the same group as JavaScript's (?<name>...).
  body = body.replace(/\(\?P</g, "(?<");
  try {
    new RegExp(body, [...new Set(flags)].join(""));
  } catch (error) {
    throw new ConformanceArgsError(
      arg,
      `${JSON.stringify(pattern)} is not a valid regular expression (${(error as Error).message}); ` +
        `ginkgo matches it against the full spec text, e.g. "\\[Conformance\\]"`,
    );
  }
}
