import assert from "node:assert/strict";
import type { deriveE2eImages } from "../../../components/mirror/actions/e2e-images";
import { buildStackConfig, readTypedConfig, type StackConfig } from "../../../infra/config";
import {
  conformanceImageLocation,
  conformanceImageOf,
  e2eImagesForStack,
  fallbackWarning,
} from "../../../infra/e2e-images";
import { imageSetForStack } from "../../../infra/images";
import { loadProjectSchema } from "../../../infra/schema";

const schema = loadProjectSchema();
function stack(values: Record<string, string> = {}): StackConfig {
  return buildStackConfig(
    readTypedConfig({ "airgap-conformance:kubernetesVersion": "1.33.4", ...values }, schema),
    schema.project,
  );
}

const derivedImages = [
  "registry.k8s.io/e2e-test-images/agnhost:2.53",
  "registry.k8s.io/etcd:3.5.21-0",
];

describe("the suite's image list from the stack's conformance image", function () {
  it("names the conformance image from the version, or the one the stack sets", function () {
    assert.equal(conformanceImageOf(stack()), "registry.k8s.io/conformance:v1.33.4");
    assert.equal(
      conformanceImageOf(
        stack({ "airgap-conformance:imagesConformanceImage": "example.com/c:v1" }),
      ),
      "example.com/c:v1",
    );
    assert.equal(
      conformanceImageOf(stack({ "airgap-conformance:kubernetesVersion": "1.33" })),
      undefined,
    );
  });

  it("reads it upstream, from the source registry at its mirror path, or from the archive", function () {
    const upstream = conformanceImageLocation(stack(), "registry.k8s.io/conformance:v1.33.4");
    assert.deepEqual(upstream.reference, {
      transport: "docker",
      reference: { registry: "registry.k8s.io", repository: "conformance", tag: "v1.33.4" },
    });
    const fromRegistry = conformanceImageLocation(
      stack({
        "airgap-conformance:imagesSource": "registry",
        "airgap-conformance:imagesSourceRegistry": "https://transfer.example.com:5000",
        "airgap-conformance:mirrorUpstreamPrefixes": '["registry.k8s.io=k8s"]',
      }),
      "registry.k8s.io/conformance:v1.33.4",
    );
    assert.deepEqual(fromRegistry.reference, {
      transport: "docker",
      reference: {
        registry: "transfer.example.com:5000",
        repository: "k8s/conformance",
        tag: "v1.33.4",
      },
    });
    assert.equal(fromRegistry.access?.host, "transfer.example.com:5000");
    assert.deepEqual(
      conformanceImageLocation(
        stack({
          "airgap-conformance:imagesSource": "archive",
          "airgap-conformance:imagesArchiveDirectory": "/media/archive",
        }),
        "registry.k8s.io/conformance:v1.33.4",
      ).reference,
      {
        transport: "oci",
        directory: "/media/archive",
        refName: "registry.k8s.io/conformance:v1.33.4",
      },
    );
  });

  it("uses the derived list instead of the shipped one; falls back with one short warning", async function () {
    const derive = (async () => ({
      images: derivedImages,
      digest: `sha256:${"1".repeat(64)}`,
      platform: "linux/amd64",
      cached: false,
    })) as unknown as typeof deriveE2eImages;
    const derived = await e2eImagesForStack(stack(), derive);
    assert.deepEqual(derived, {
      kind: "derived",
      conformanceImage: "registry.k8s.io/conformance:v1.33.4",
      images: derivedImages,
      digest: `sha256:${"1".repeat(64)}`,
    });
    const set = imageSetForStack(stack(), "airgap-conformance", undefined, derived);
    assert.equal(set.catalog, undefined, "no shipped list");
    assert.deepEqual(
      set.images.map((image) => image.canonical).sort(),
      [
        ...derivedImages,
        "registry.k8s.io/conformance:v1.33.4",
        "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
      ].sort(),
    );

    const failing = (async () => {
      throw new Error(
        "registry.k8s.io: cannot read the image (dial tcp: lookup registry.k8s.io: no such host)",
      );
    }) as unknown as typeof deriveE2eImages;
    const fallback = await e2eImagesForStack(stack(), failing);
    assert.equal(fallback.kind, "fallback");
    const withCatalog = imageSetForStack(stack(), "airgap-conformance", undefined, fallback);
    assert.equal(withCatalog.catalog?.kubernetesVersion, "1.33");
    if (fallback.kind !== "fallback") throw new Error("unreachable");
    const warning = fallbackWarning(fallback, "1.33");
    assert.match(
      warning,
      /^using the shipped image list for 1\.33, which can miss images of your patch release: .*no such host\)\. Make the conformance image readable/,
    );
    assert.match(warning, /imagesListFiles/);
    assert.ok(warning.length < 500, `${warning.length} characters`);
    assert.doesNotMatch(warning, /[0-9a-f]{40}|commit|snapshot/);

    assert.deepEqual(
      await e2eImagesForStack(
        stack({ "airgap-conformance:imagesIncludeCatalog": "false" }),
        derive,
      ),
      { kind: "off" },
    );
  });
});
