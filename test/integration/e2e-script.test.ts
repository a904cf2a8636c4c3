import assert from "node:assert/strict";
import * as path from "node:path";
import { missingTools, requiredTools } from "../../scripts/e2e-kind";
import { run } from "../lab/exec";
import { projectRoot } from "../lab/paths";

describe("scripts/e2e-kind.ts on a machine without the Pulumi CLI", function () {
  it("says what is missing and exits non-zero", async function () {
    const result = await run(
      process.execPath,
      ["-r", "ts-node/register/transpile-only", path.join(projectRoot, "scripts/e2e-kind.ts")],
      { cwd: projectRoot, allowFailure: true },
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /e2e: needs the Pulumi CLI: https:\/\/www\.pulumi\.com\/.* \(pulumi not found or not working\)/,
    );
  });

  it("checks every tool it drives", function () {
    assert.deepEqual(
      missingTools(() => true),
      [],
    );
    assert.deepEqual(
      missingTools((command) => command !== "kind"),
      ["kind"],
    );
    assert.deepEqual(
      requiredTools.map((tool) => tool.name),
      ["pulumi", "docker", "kind", "kubectl"],
    );
  });
});
