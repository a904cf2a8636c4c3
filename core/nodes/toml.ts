/**
 * The little TOML the node files need: basic strings, string arrays, booleans and quoted keys.
 * Hand-rendered (no TOML library is a dependency) and kept tiny so every byte is golden-tested.
 *
 * Pure: no I/O.
 */

/** Raised for a value TOML cannot carry (a lone UTF-16 surrogate is not a Unicode scalar). */
export class TomlValueError extends Error {
  override readonly name = "TomlValueError";
}

const shortEscapes: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\f": "\\f",
  "\r": "\\r",
};

/**
 * A TOML basic string. Escapes what TOML requires (quote, backslash, control characters other
 * than tab, and DEL) and only with escapes JSON shares, so `JSON.parse` reads it back too.
 */
export function tomlString(value: string): string {
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)) {
    throw new TomlValueError(`${JSON.stringify(value)} holds a lone surrogate`);
  }
  // eslint-disable-next-line no-control-regex
  const escaped = value.replace(/["\\\u0000-\u001f\u007f]/g, (character) => {
    return shortEscapes[character] ?? `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
  return `"${escaped}"`;
}

/** An inline array of strings, e.g. `["pull", "resolve"]`. */
export function tomlStringArray(values: readonly string[]): string {
  return `[${values.map(tomlString).join(", ")}]`;
}
