import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";

/**
 * The stack config schema is Pulumi.yaml's typed `config:` block, read at run time so the
 * program, the README's config reference and Pulumi's own checks share one source.
 */
export type ConfigType = "string" | "integer" | "boolean" | "array";

export interface ConfigKeySchema {
  type: ConfigType;
  items?: { type: Exclude<ConfigType, "array"> };
  description: string;
  default?: unknown;
  secret?: boolean;
}

export interface ProjectSchema {
  project: string;
  keys: Record<string, ConfigKeySchema>;
}

export const projectFile = path.resolve(__dirname, "..", "Pulumi.yaml");

/** Parses a Pulumi.yaml text into its project name and config schema. */
export function parseProjectSchema(text: string): ProjectSchema {
  const document = parse(text) as { name?: string; config?: Record<string, ConfigKeySchema> };
  if (!document?.name) throw new Error("Pulumi.yaml has no project name");
  return { project: document.name, keys: document.config ?? {} };
}

export function loadProjectSchema(file = projectFile): ProjectSchema {
  return parseProjectSchema(readFileSync(file, "utf8"));
}
