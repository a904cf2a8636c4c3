import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { removeScratchDirs, scratchDir } from "../scratch";

const testRoot = path.join(__dirname, "..");

function testSources(dir = testRoot): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "fixtures" ? [] : testSources(full);
    return entry.name.endsWith(".ts") ? [full] : [];
  });
}

describe("test scratch directories", function () {
  it("are removed when the run ends", function () {
    const dirs = [scratchDir("scratch-check-"), scratchDir("scratch-check-")];
    assert.ok(dirs.every((dir) => existsSync(dir)));
    assert.ok(removeScratchDirs() >= 2);
    assert.ok(dirs.every((dir) => !existsSync(dir)));
  });

  it("every mocha config loads the hook that removes them", function () {
    for (const config of readdirSync(testRoot).filter((name) => name.startsWith(".mocharc"))) {
      const { require: required } = JSON.parse(readFileSync(path.join(testRoot, config), "utf8"));
      assert.ok(required.includes("test/scratch.ts"), config);
    }
  });

  it("tests make temporary directories only through scratchDir (or remove them in finally)", function () {
    for (const file of testSources()) {
      const text = readFileSync(file, "utf8");
      const exempt = file === __filename || file.endsWith(path.join("test", "scratch.ts"));
      if (exempt || !text.includes("mkdtempSync(")) continue;
      // The lab's image builders remove their work directory themselves.
      assert.match(
        text,
        /finally \{[\s\S]*rmSync\(/,
        `${path.relative(testRoot, file)}: use scratchDir`,
      );
    }
  });
});
