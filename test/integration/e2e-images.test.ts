import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { deriveE2eImages } from "../../components/mirror/actions/e2e-images";
import { bastionPlatform, parseTransportReference } from "../../core/images/e2e-images";
import { run } from "../lab/exec";
import { labDir } from "../lab/paths";
import { startLabRegistry, type LabRegistry } from "../lab/registries";
import {
  makeLayer,
  makeManifest,
  multiPlatformImage,
  singlePlatformImage,
  writeOciLayout,
  type Platform,
} from "../lab/synthetic-images";

const repoRoot = path.resolve(__dirname, "..", "..");

/** A stand-in for the suite binary: a script that prints its list as e2e.test does. */
function e2eTestScript(images: string[]): string {
  return [
    "#!/bin/sh",
    'if [ "$1" != "--list-images" ]; then echo "unexpected arguments: $*" >&2; exit 2; fi',
    // The real binary remaps through KUBE_TEST_REPO_LIST; the list must be read without it.
    'if [ -n "$KUBE_TEST_REPO_LIST" ]; then echo "remapped" ; fi',
    ...images.map((image) => `echo '${image}'`),
    "",
  ].join("\n");
}

const thisPlatform = bastionPlatform(process.platform, process.arch);
const [, thisArch] = thisPlatform.split("/");
const otherArch = thisArch === "arm64" ? "amd64" : "arm64";

/** What the synthetic e2e.test for this machine prints: unsorted, duplicated, familiar names. */
const printed = [
  "registry.k8s.io/e2e-test-images/agnhost:2.53",
  "registry.k8s.io/etcd:3.5.21-0",
  "nginx:1.27-alpine",
  "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
  "registry.k8s.io/etcd:3.5.21-0",
  "invalid.registry.k8s.io/invalid/alpine:3.1",
];
const expected = [
  "docker.io/library/nginx:1.27-alpine",
  "invalid.registry.k8s.io/invalid/alpine:3.1",
  "registry.k8s.io/e2e-test-images/agnhost:2.53",
  "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
  "registry.k8s.io/etcd:3.5.21-0",
];

/**
 * A synthetic conformance image: for this platform, a base layer with an outdated e2e.test and
 * a top layer replacing it; for another platform, an e2e.test that prints something else. A
 * second image deletes e2e.test in its top layer (an OCI whiteout).
 */
async function writeConformanceLayout(dir: string): Promise<void> {
  const platform = (architecture: string): Platform => ({ os: "linux", architecture });
  const base = await makeLayer({
    "usr/local/bin/e2e.test": e2eTestScript(["registry.k8s.io/etcd:3.5.17-0"]),
    "usr/local/bin/ginkgo": "not a real ginkgo",
  });
  const top = await makeLayer({ "./usr/local/bin/e2e.test": e2eTestScript(printed) });
  const other = await makeLayer({
    "usr/local/bin/e2e.test": e2eTestScript(["registry.k8s.io/wrong-platform:1"]),
  });
  const whiteout = await makeLayer({ "usr/local/bin/.wh.e2e.test": "" });
  writeOciLayout(dir, {
    // Named as an archive names its images: the upstream reference.
    "registry.k8s.io/conformance:v1.33.4": multiPlatformImage([
      makeManifest([base, top], platform(thisArch)),
      makeManifest([other], platform(otherArch)),
    ]),
    deleted: singlePlatformImage(makeManifest([base, whiteout], platform(thisArch))),
  });
}

function cli(args: string[]) {
  return run(
    process.execPath,
    [
      "--require",
      require.resolve("ts-node/register/transpile-only"),
      path.join(repoRoot, "cli", "airgap.ts"),
      ...args,
    ],
    { allowFailure: true },
  );
}

describe("the image set from the conformance image's own e2e.test", function () {
  let layout: string;
  before(async function () {
    layout = mkdtempSync(path.join(labDir, "conformance-layout-"));
    await writeConformanceLayout(layout);
  });

  it("CLI: reads e2e.test of this platform from the top layer, prints the list normalised, then reuses it by digest", async function () {
    const cache = mkdtempSync(path.join(labDir, "e2e-images-cache-"));
    const args = [
      "images",
      "--conformance-image",
      `oci:${layout}:registry.k8s.io/conformance:v1.33.4`,
      "--cache-dir",
      cache,
    ];
    const first = await cli(args);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, `${expected.join("\n")}\n`);
    assert.match(
      first.stderr,
      new RegExp(
        `^# 5 images from e2e.test of oci:.*\\(sha256:[0-9a-f]{64}, ${thisPlatform}\\)\\n$`,
      ),
    );
    const cached = readdirSync(cache);
    assert.equal(cached.length, 1);
    assert.match(cached[0], new RegExp(`^[0-9a-f]{64}-linux-${thisArch}\\.txt$`));
    const second = await cli(args);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
    assert.match(second.stderr, /, cached\)\n$/);
    assert.equal(readFileSync(path.join(cache, cached[0]), "utf8"), `${expected.join("\n")}\n`);
  });

  it("CLI: says so when e2e.test was deleted by a later layer, and rejects a reference without transport", async function () {
    const cache = mkdtempSync(path.join(labDir, "e2e-images-cache-"));
    const deleted = await cli([
      "images",
      "--conformance-image",
      `oci:${layout}:deleted`,
      "--cache-dir",
      cache,
    ]);
    assert.equal(deleted.code, 1);
    assert.match(
      deleted.stderr,
      /no \/usr\/local\/bin\/e2e\.test in the image for linux\/\w+; is it a conformance image\?/,
    );
    assert.equal(deleted.stdout, "");
    const bare = await cli([
      "images",
      "--conformance-image",
      "registry.k8s.io/conformance:v1.33.4",
    ]);
    assert.equal(bare.code, 1);
    assert.match(
      bare.stderr,
      /--conformance-image: .* has no transport; use docker:\/\/REGISTRY\/REPOSITORY:TAG or oci:DIR:TAG/,
    );
  });

  describe("from a registry (docker://)", function () {
    let registry: LabRegistry | undefined;
    before(async function () {
      registry = await startLabRegistry({ name: "lab-e2e-images" });
      await run("skopeo", [
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${layout}:registry.k8s.io/conformance:v1.33.4`,
        `docker://${registry.endpoint}/conformance:v1.33.4`,
      ]);
    });
    after(async () => registry?.stop());

    it("reads the same list through the registry, over plain http when told the registry is insecure", async function () {
      const cache = mkdtempSync(path.join(labDir, "e2e-images-cache-"));
      const derived = await deriveE2eImages(
        parseTransportReference(`docker://${registry!.endpoint}/conformance:v1.33.4`),
        { cacheDirectory: cache, access: { host: registry!.endpoint, scheme: "http" } },
      );
      assert.deepEqual(derived.images, expected);
      assert.equal(derived.cached, false);
      const cli1 = await cli([
        "images",
        "--conformance-image",
        `docker://${registry!.endpoint}/conformance:v1.33.4`,
        "--insecure",
        "--cache-dir",
        cache,
      ]);
      assert.equal(cli1.code, 0, cli1.stderr);
      assert.equal(cli1.stdout, `${expected.join("\n")}\n`);
      // The registry serves the layout's index unchanged: same digest, so the cache answers.
      assert.match(cli1.stderr, new RegExp(`\\(${derived.digest}, ${thisPlatform}, cached\\)`));
    });
  });
});
