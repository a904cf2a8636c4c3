import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from "node:fs";
import * as path from "node:path";
import { parseCatalogFile } from "../../core/images/catalog";
import { run } from "../lab/exec";
import { labDir, projectRoot } from "../lab/paths";
import { scratchDir } from "../scratch";

/**
 * scripts/regenerate-catalog.sh runs on a connected machine against the real conformance image;
 * here a stand-in `docker` on PATH answers pull / inspect / run the way Docker does, so the
 * script's own work (validation, header, sorting, atomic write) runs for real.
 */
describe("scripts/regenerate-catalog.sh", function () {
  const digest = `sha256:${"e".repeat(64)}`;
  let dir: string;

  function fakeDocker(list: string): Record<string, string> {
    const bin = path.join(dir, "bin");
    writeFileSync(path.join(dir, "list.txt"), list);
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      path.join(bin, "docker"),
      `#!/bin/sh
case "$1" in
  pull) exit 0 ;;
  image) echo "registry.k8s.io/conformance@${digest}" ;;
  run) [ "$4" = /usr/local/bin/e2e.test ] && [ "$6" = --list-images ] && cat "${path.join(dir, "list.txt")}" ;;
  *) exit 1 ;;
esac
`,
    );
    chmodSync(path.join(bin, "docker"), 0o755);
    return { PATH: `${bin}:${process.env.PATH}` };
  }

  beforeEach(function () {
    dir = scratchDir("catalog-script-", labDir);
  });

  it("writes a sorted, de-duplicated list with a provenance header the catalog accepts", async function () {
    const env = fakeDocker(
      "registry.k8s.io/pause:3.10\nregistry.k8s.io/e2e-test-images/agnhost:2.52\nregistry.k8s.io/pause:3.10\n\n",
    );
    const output = path.join(dir, "kubernetes-v1.31.4.txt");
    const result = await run(
      "bash",
      [path.join(projectRoot, "scripts/regenerate-catalog.sh"), "v1.31.4", output],
      { env },
    );
    assert.match(
      result.stdout,
      /wrote .*kubernetes-v1\.31\.4\.txt: 2 images from registry\.k8s\.io\/conformance@sha256:e{64}/,
    );
    const text = readFileSync(output, "utf8");
    const lines = text.split("\n").filter((line) => line && !line.startsWith("#"));
    assert.deepEqual(lines, [
      "registry.k8s.io/e2e-test-images/agnhost:2.52",
      "registry.k8s.io/pause:3.10",
    ]);
    const entry = parseCatalogFile(text, {
      kubernetesVersion: "1.31",
      file: "kubernetes-v1.31.4.txt",
      kind: "release",
      note: "regenerated",
    });
    assert.equal(
      entry.provenance.source,
      `e2e.test --list-images of registry.k8s.io/conformance@${digest}`,
    );
    assert.equal(entry.images.length, 2);
  });

  it("refuses a list with a line that is no image reference, writing nothing", async function () {
    const env = fakeDocker("registry.k8s.io/pause:3.10\nW1124 warning: something odd\n");
    const output = path.join(dir, "out.txt");
    const result = await run(
      "bash",
      [path.join(projectRoot, "scripts/regenerate-catalog.sh"), "1.31.4", output],
      { env, allowFailure: true },
    );
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /out\.txt:\d+/);
    assert.equal(existsSync(output), false);
    assert.deepEqual(
      readdirSync(dir).filter((name) => name.startsWith("out.txt")),
      [],
    );
  });

  it("insists on a full version", async function () {
    const result = await run(
      "bash",
      [path.join(projectRoot, "scripts/regenerate-catalog.sh"), "1.31"],
      { allowFailure: true },
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /MAJOR\.MINOR\.PATCH/);
  });
});
