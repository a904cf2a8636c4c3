/** Deterministic ordering helpers shared by the image modules. Pure. */

/**
 * Orders strings by UTF-16 code units: stable across locales and Node versions, unlike
 * `localeCompare`, so generated files and plans never reorder between machines.
 */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
