import assert from "node:assert/strict";
import {
  E2eImagesError,
  bastionPlatform,
  e2eImagesCacheFile,
  entryNameIn,
  layerHolding,
  parseListImagesOutput,
  parseTransportReference,
  transportString,
} from "../../../core/images/e2e-images";

const E2E = "usr/local/bin/e2e.test";

describe("the conformance image's e2e.test", function () {
  it("parses skopeo's docker:// and oci:DIR:TAG references, normalising the image", function () {
    const docker = parseTransportReference("docker://registry.k8s.io/conformance:v1.33.4");
    assert.deepEqual(docker, {
      transport: "docker",
      reference: { registry: "registry.k8s.io", repository: "conformance", tag: "v1.33.4" },
    });
    assert.equal(transportString(docker), "docker://registry.k8s.io/conformance:v1.33.4");
    assert.equal(
      transportString(parseTransportReference("docker://busybox")),
      "docker://docker.io/library/busybox:latest",
    );
    assert.deepEqual(parseTransportReference("oci:/srv/archive:v1.33.4"), {
      transport: "oci",
      directory: "/srv/archive",
      refName: "v1.33.4",
    });
    // An archive's ref names are upstream references, colons included.
    const archived = parseTransportReference(
      "oci:/srv/archive:registry.k8s.io/conformance:v1.33.4",
    );
    assert.deepEqual(archived, {
      transport: "oci",
      directory: "/srv/archive",
      refName: "registry.k8s.io/conformance:v1.33.4",
    });
    assert.equal(transportString(archived), "oci:/srv/archive:registry.k8s.io/conformance:v1.33.4");
    for (const [text, reason] of [
      ["registry.k8s.io/conformance:v1.33.4", /has no transport; use docker:\/\/REGISTRY/],
      ["oci:/srv/archive", /names no image in the layout/],
      ["docker://registry.k8s.io/Conformance:v1", /--conformance-image: .*uppercase/],
    ] as const) {
      assert.throws(
        () => parseTransportReference(text),
        (error: unknown) => error instanceof E2eImagesError && reason.test(error.message),
        text,
      );
    }
  });

  it("reads e2e.test for the machine that runs it, Linux only", function () {
    assert.equal(bastionPlatform("linux", "x64"), "linux/amd64");
    assert.equal(bastionPlatform("linux", "arm64"), "linux/arm64");
    assert.throws(
      () => bastionPlatform("darwin", "arm64"),
      /Linux binary .*darwin\/arm64.*imagesListFiles/,
    );
  });

  it("finds the topmost layer with e2e.test, honouring whiteouts", function () {
    assert.equal(layerHolding([["usr/", E2E], ["etc/hosts"]], E2E), 0);
    assert.equal(layerHolding([[E2E], [`./${E2E}`]], E2E), 1, "a later layer replaces it");
    assert.equal(layerHolding([[E2E], ["usr/local/bin/.wh.e2e.test"]], E2E), undefined);
    assert.equal(layerHolding([[E2E], ["usr/local/bin/.wh..wh..opq"]], E2E), undefined);
    assert.equal(layerHolding([[E2E], ["usr/local/.wh.bin"]], E2E), undefined);
    assert.equal(layerHolding([[E2E], ["usr/local/.wh.bin"], [`/${E2E}`]], E2E), 2);
    assert.equal(layerHolding([["usr/local/bin/ginkgo"]], E2E), undefined);
    assert.equal(entryNameIn(["a", `./${E2E}`], E2E), `./${E2E}`);
  });

  it("caches by digest and platform", function () {
    assert.equal(
      e2eImagesCacheFile("/c", `sha256:${"ab".repeat(32)}`, "linux/amd64"),
      `/c/${"ab".repeat(32)}-linux-amd64.txt`,
    );
    assert.throws(() => e2eImagesCacheFile("/c", "md5:00", "linux/amd64"), /not a sha256 digest/);
  });

  it("normalises, sorts and deduplicates what --list-images printed", function () {
    assert.deepEqual(
      parseListImagesOutput(
        "registry.k8s.io/etcd:3.5.21-0\nnginx:1.27\n\nregistry.k8s.io/etcd:3.5.21-0\n",
        "oci:/a:b",
      ),
      ["docker.io/library/nginx:1.27", "registry.k8s.io/etcd:3.5.21-0"],
    );
    assert.throws(() => parseListImagesOutput("", "oci:/a:b"), /printed no image/);
    assert.throws(
      () => parseListImagesOutput("Usage of e2e.test:\n  -flag", "oci:/a:b"),
      /oci:\/a:b e2e\.test --list-images:1: .*is this a conformance image\?/,
    );
  });
});
