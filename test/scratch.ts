import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/**
 * Temporary directories for tests: made with a prefix that says what they are for, removed when
 * the test run ends (a mocha root hook, loaded by every .mocharc), so no run leaves any behind.
 */
const made: string[] = [];

export function scratchDir(prefix: string, base = os.tmpdir()): string {
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(path.join(base, prefix));
  made.push(dir);
  return dir;
}

/** Removes every directory scratchDir made so far; returns how many. */
export function removeScratchDirs(): number {
  const dirs = made.splice(0);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  return dirs.length;
}

export const mochaHooks = {
  afterAll(): void {
    removeScratchDirs();
  },
};
