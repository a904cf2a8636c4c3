/**
 * Writes docs/config-reference.md from Pulumi.yaml's typed `config:` block, so the reference
 * cannot drift from what the program accepts (a unit test compares the two).
 *   npm run docs:config
 */
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { loadProjectSchema, type ProjectSchema } from "../infra/schema";

export const referenceFile = path.resolve(__dirname, "..", "docs", "config-reference.md");

function typeOf(schema: ProjectSchema["keys"][string]): string {
  return schema.type === "array" ? `list of ${schema.items?.type ?? "string"}` : schema.type;
}

function defaultOf(schema: ProjectSchema["keys"][string]): string {
  if (schema.secret) return "(secret, no default)";
  if (schema.default === undefined) return "(none)";
  if (schema.default === "") return '`""`';
  return `\`${JSON.stringify(schema.default)}\``;
}

/** The reference document for a project schema. Pure. */
export function renderConfigReference(schema: ProjectSchema): string {
  const rows = Object.entries(schema.keys).map(
    ([key, entry]) =>
      `| \`${schema.project}:${key}\` | ${typeOf(entry)} | ${defaultOf(entry)} | ${entry.description.replace(/\s+/g, " ").replace(/\|/g, "\\|").trim()} |`,
  );
  return [
    "# Stack config reference",
    "",
    "Generated from `Pulumi.yaml` by `npm run docs:config`; do not edit by hand.",
    "Set values with `pulumi config set <key> <value>` (`--secret` for passwords, `--path` for lists).",
    "",
    "| key | type | default | meaning |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

if (require.main === module) {
  writeFileSync(referenceFile, renderConfigReference(loadProjectSchema()));
  console.log(`wrote ${referenceFile}`);
}
