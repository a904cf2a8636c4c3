import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";

/** Golden files under test/fixtures/nodes. `UPDATE_GOLDEN=1` rewrites them (review the diff). */
export const goldenDir = path.resolve(__dirname, "..", "..", "fixtures", "nodes");

export function assertGolden(name: string, actual: string): void {
  const file = path.join(goldenDir, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(goldenDir, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  assert.ok(
    existsSync(file),
    `golden file ${file} is missing; run with UPDATE_GOLDEN=1 and review it`,
  );
  assert.equal(actual, readFileSync(file, "utf8"), `differs from golden file ${name}`);
}
