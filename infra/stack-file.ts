import { readFileSync } from "node:fs";
import { parse } from "yaml";

/**
 * Reads a `Pulumi.<stack>.yaml` into the flat `project:key -> string` map the Pulumi engine hands
 * a program: scalars as their string form, lists and maps as JSON. Secure values (encrypted by
 * Pulumi) cannot be decrypted here and are reported by key, so callers can supply them.
 */
export function readStackFile(file: string): {
  config: Record<string, string>;
  secureKeys: string[];
} {
  const document = parse(readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
  const config: Record<string, string> = {};
  const secureKeys: string[] = [];
  for (const [key, value] of Object.entries(document?.config ?? {})) {
    if (value && typeof value === "object" && !Array.isArray(value) && "secure" in value) {
      secureKeys.push(key);
    } else if (typeof value === "string") {
      config[key] = value;
    } else if (typeof value === "number" || typeof value === "boolean") {
      config[key] = String(value);
    } else {
      config[key] = JSON.stringify(value);
    }
  }
  return { config, secureKeys };
}
