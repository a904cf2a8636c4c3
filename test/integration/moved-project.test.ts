import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as path from "node:path";
import {
  actionScript,
  formatReportLine,
  planConformanceRun,
  planJson,
  type RunReport,
} from "../../core/conformance";
import { lockFileName } from "../../components/mirror/actions/archive";
import { htpasswdMatches } from "../../components/registry/htpasswd";
import type { HtpasswdEntryOutputs } from "../../components/registry/htpasswd-entry";
import type { MirroredImageOutputs } from "../../components/mirror/provider-runtime";
import { callProvider } from "../lab/dynamic-provider";
import { run, runShell } from "../lab/exec";
import { labDir, projectRoot } from "../lab/paths";

/**
 * What Pulumi keeps in state for later (the serialised dynamic providers, the conformance
 * commands' environment) is produced in one project directory, the directory is moved, and
 * destroy/refresh calls are made from the new place exactly as the engine makes them: in the
 * program's working directory (infra/, Pulumi.yaml's `main`), with the old place gone.
 */

// Evaluated in the project's own working directory, as `pulumi up` would: the provider modules
// the resources declare, and the conformance actions' location.
const serializeScript = `
const { mirroredImageProviderModule, archiveLockProviderModule } = require("../components/mirror/provider");
const { htpasswdEntryProviderModule } = require("../components/registry/htpasswd-entry");
const { preloadTarballProviderModule } = require("../components/nodes/preload-provider");
const { actionLocation } = require("../components/conformance");
process.stdout.write(
  JSON.stringify({ mirror: mirroredImageProviderModule, lock: archiveLockProviderModule, htpasswd: htpasswdEntryProviderModule, preload: preloadTarballProviderModule, action: actionLocation() }),
);
`;

describe("state written by one project directory, used after the project has moved", function () {
  const base = path.join(labDir, `run-${process.pid}`, "moved-project");
  const original = path.join(base, "original", "airgap-conformance");
  const moved = path.join(base, "after", "airgap-conformance");
  let stored: {
    mirror: string;
    lock: string;
    htpasswd: string;
    preload: string;
    action: { nodeBinary: string; actionEntry: string; loader?: string };
  };
  const providerFiles = {
    mirror: path.join(base, "mirror.js"),
    lock: path.join(base, "lock.js"),
    htpasswd: path.join(base, "htpasswd.js"),
  };

  before(async function () {
    mkdirSync(path.join(base, "after"), { recursive: true });
    mkdirSync(original, { recursive: true });
    // The project as a user has it: its files and an installed node_modules (hard links: fast).
    await runShell(
      `tar -C "$ROOT" --exclude=./node_modules --exclude=./.lab --exclude=./.git --exclude=./dist -cf - . | tar -C "$COPY" -xf -`,
      { env: { ROOT: projectRoot, COPY: original } },
    );
    await run("cp", ["-al", path.join(projectRoot, "node_modules"), original]);

    const serialized = await run(
      process.execPath,
      ["--require", "ts-node/register/transpile-only", "-e", serializeScript],
      { cwd: path.join(original, "infra") },
    );
    stored = JSON.parse(serialized.stdout);
    writeFileSync(providerFiles.mirror, stored.mirror);
    writeFileSync(providerFiles.lock, stored.lock);
    writeFileSync(providerFiles.htpasswd, stored.htpasswd);
    renameSync(original, moved);
    assert.ok(!existsSync(original), "the old project directory is gone");
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it("stores no path into the project or its node_modules", function () {
    for (const text of [
      stored.mirror,
      stored.lock,
      stored.htpasswd,
      stored.preload,
      JSON.stringify(stored.action),
    ]) {
      assert.ok(!text.includes(original), "no absolute path into the old project directory");
      assert.ok(!text.includes(projectRoot), "no absolute path into the checkout");
    }
    assert.deepEqual(stored.action, {
      nodeBinary: "node",
      actionEntry: "../components/conformance/actions/main.ts",
      loader: "ts-node/register/transpile-only",
    });
  });

  it("refreshes and deletes a mirrored image with the stored provider", async function () {
    const gone = path.join(base, "no-such-archive");
    const props: MirroredImageOutputs = {
      source: "registry.k8s.io/pause:3.10",
      request: {
        source: "registry.k8s.io/pause:3.10",
        from: {
          transport: "docker",
          access: { host: "registry.k8s.io", scheme: "https" },
          repository: "pause",
          reference: "3.10",
        },
        to: { transport: "oci", directory: gone, refName: "registry.k8s.io/pause:3.10" },
      },
      mirrorReference: "registry.k8s.io/pause:3.10",
      retries: 0,
      deleteOnDestroy: false,
      credentials: {},
      digest: `sha256:${"a".repeat(64)}`,
    };
    const read = await callProvider<{ id: string; props: MirroredImageOutputs }>(
      providerFiles.mirror,
      "read",
      ["id-1", props],
      moved,
    );
    assert.equal(read.props.digest, "", "refresh records the image as gone");
    const diff = await callProvider<{ changes: boolean }>(
      providerFiles.mirror,
      "diff",
      ["id-1", props, props],
      moved,
    );
    assert.deepEqual(diff, { changes: true });
    await callProvider(providerFiles.mirror, "delete", ["id-1", props], moved);
  });

  it("deletes an archive's lock file with the stored provider", async function () {
    const archive = path.join(base, "archive");
    mkdirSync(archive, { recursive: true });
    writeFileSync(path.join(archive, lockFileName), "{}");
    await callProvider(
      providerFiles.lock,
      "delete",
      ["lock", { directory: archive, images: [] }],
      moved,
    );
    assert.ok(!existsSync(path.join(archive, lockFileName)), "the lock file is removed");
  });

  it("keeps the registry's htpasswd line (random salt) until the password changes", async function () {
    const credentials = { username: "mirror", password: "first-pw" };
    const created = await callProvider<{ id: string; outs: HtpasswdEntryOutputs }>(
      providerFiles.htpasswd,
      "create",
      [credentials],
      moved,
    );
    assert.ok(htpasswdMatches(created.outs.line, "mirror", "first-pw"));
    const again = await callProvider<{ changes: boolean }>(
      providerFiles.htpasswd,
      "diff",
      [created.id, created.outs, credentials],
      moved,
    );
    assert.deepEqual(again, { changes: false }, "a second up keeps the line (and the container)");
    const rotated = await callProvider<{ changes: boolean }>(
      providerFiles.htpasswd,
      "diff",
      [created.id, created.outs, { ...credentials, password: "second-pw" }],
      moved,
    );
    assert.deepEqual(rotated, { changes: true });
    const updated = await callProvider<{ outs: HtpasswdEntryOutputs }>(
      providerFiles.htpasswd,
      "update",
      [created.id, created.outs, { ...credentials, password: "second-pw" }],
      moved,
    );
    assert.ok(htpasswdMatches(updated.outs.line, "mirror", "second-pw"));
  });

  it("runs the conformance cleanup from the stored environment", async function () {
    const kubectl = path.join(base, "kubectl");
    const calls = path.join(base, "kubectl-calls");
    writeFileSync(kubectl, `#!/bin/sh\nprintf '%s\\n' "$*" >>'${calls}'\n`);
    chmodSync(kubectl, 0o755);
    const plan = planConformanceRun({
      kubernetesVersion: "1.31.4",
      mirror: { endpoint: "10.0.0.5:5000", authenticated: false },
      kubeconfig: "/dev/null",
      kubectl,
      resultsDirectory: path.join(base, "results"),
      stack: "moved",
    });
    const report = {
      e2eRunIds: ["0a1b2c3d-0000-4000-8000-000000000001"],
    } as Partial<RunReport> as RunReport;
    const result = await runShell(actionScript("cleanup"), {
      cwd: path.join(moved, "infra"),
      env: {
        CONFORMANCE_NODE: stored.action.nodeBinary,
        CONFORMANCE_ACTION: stored.action.actionEntry,
        CONFORMANCE_PLAN: planJson(plan),
        CONFORMANCE_MIRROR: JSON.stringify({ host: "10.0.0.5:5000", scheme: "https" }),
        NODE_OPTIONS: `--require=${stored.action.loader}`,
        PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`,
        PULUMI_COMMAND_STDOUT: formatReportLine(report),
      },
      allowFailure: true,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(readFileSync(calls, "utf8"), /delete namespaces --selector e2e-run=0a1b2c3d-/);
  });
});
