import assert from "node:assert/strict";
import {
  copyRegistryImage,
  emptyCopyStats,
  platformBytes,
} from "../../components/mirror/actions/registry-copy";
import { ImageCopyError, type CopyRequest } from "../../components/mirror/actions/skopeo";
import { planImageCopies } from "../../components/mirror/plan";
import { mirroredImageProviderModule } from "../../components/mirror/provider";
import type {
  CheckedMirroredImageInputs,
  MirroredImageInputs,
} from "../../components/mirror/provider-runtime";
import { callProvider, writeProviderModule } from "../lab/dynamic-provider";
import { run } from "../lab/exec";
import { freePort, registryAccessOf, startLabRegistry, type LabRegistry } from "../lab/registries";
import { labUpstreams, type LabUpstreams } from "../lab/upstreams";
import { describeUpstreamKilledMidCopy } from "../lab/upstream-killed";

/** What a registry stores under a reference, read by skopeo (an independent client). */
async function rawManifest(registry: LabRegistry, reference: string) {
  const raw = await run("skopeo", [
    "inspect",
    "--raw",
    ...(registry.certDir ? [`--cert-dir=${registry.certDir}`] : ["--tls-verify=false"]),
    ...(registry.authFile ? [`--authfile=${registry.authFile}`] : []),
    `docker://${registry.endpoint}/${reference}`,
  ]);
  return JSON.parse(raw.stdout);
}

describe("the in-process registry copier against real registries", function () {
  let upstreams: LabUpstreams;
  let mirror: LabRegistry;
  let secureMirror: LabRegistry;
  const busybox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";

  before(async function () {
    upstreams = await labUpstreams();
    [mirror, secureMirror] = await Promise.all([
      startLabRegistry({ name: "lab-copier-plain" }),
      startLabRegistry({
        name: "lab-copier-secure",
        tls: true,
        auth: { username: "mirror", password: "copier-pw-789" },
      }),
    ]);
  });
  after(async () => {
    await Promise.all([mirror.stop(), secureMirror.stop()]);
  });

  function plan(destination: LabRegistry, images: string[], platforms?: string[]) {
    return planImageCopies({
      images,
      source: {
        kind: "upstream",
        registries: Object.fromEntries(
          Object.entries(upstreams.registries).map(([name, registry]) => [
            name,
            registryAccessOf(registry),
          ]),
        ),
      },
      destination: {
        kind: "registry",
        access: registryAccessOf(destination),
        nodeEndpoint: "mirror.lab:5000",
      },
      platforms,
    });
  }

  const upstreamDigest = (name: string) =>
    upstreams.images.find((image) => name.startsWith(image.name))!.digest;

  it("copies a whole multi-arch index, keeping the upstream digest and every platform", async function () {
    const [copy] = plan(mirror, [busybox]).copies;
    const digest = await copyRegistryImage(copy.request, { retries: 0 });
    assert.equal(digest, upstreamDigest(busybox));
    const index = await rawManifest(mirror, `e2e-test-images/busybox@${digest}`);
    assert.deepEqual(
      index.manifests.map(
        (entry: { platform: { architecture: string } }) => entry.platform.architecture,
      ),
      ["amd64", "arm64"],
    );
    // Every platform image is complete: skopeo can read each one's config from the mirror.
    for (const entry of index.manifests as { digest: string }[]) {
      const config = await run("skopeo", [
        "inspect",
        "--config",
        "--tls-verify=false",
        `docker://${mirror.endpoint}/e2e-test-images/busybox@${entry.digest}`,
      ]);
      assert.equal(JSON.parse(config.stdout).os, "linux");
    }
  });

  it("sends a blob shared by several images once, and mounts it into the other repositories", async function () {
    const fresh = await startLabRegistry({ name: "lab-copier-mounts" });
    try {
      const copies = plan(
        fresh,
        upstreams.images.map((image) => image.name),
      ).copies;
      const stats = emptyCopyStats();
      const digests = await Promise.all(
        copies.map((copy) => copyRegistryImage(copy.request, { retries: 0, stats })),
      );
      assert.deepEqual(
        digests,
        copies.map((copy) => upstreamDigest(copy.source)),
      );
      // busybox amd64, pause and nginx share the base layer: uploaded once, mounted twice.
      assert.equal(stats.blobsMounted, 2);
      const blobs = new Set<string>();
      for (const copy of copies) {
        const to = copy.request.to as Extract<CopyRequest["to"], { transport: "docker" }>;
        const top = await rawManifest(fresh, `${to.repository}:${to.reference}`);
        const images = top.manifests
          ? await Promise.all(
              (top.manifests as { digest: string }[]).map((entry) =>
                rawManifest(fresh, `${to.repository}@${entry.digest}`),
              ),
            )
          : [top];
        for (const image of images) {
          for (const blob of [image.config, ...image.layers]) blobs.add(blob.digest);
        }
      }
      assert.equal(stats.blobsUploaded, blobs.size, "every unique blob uploaded exactly once");
      // A second copy of everything finds it all in place and moves no bytes.
      const again = emptyCopyStats();
      await Promise.all(copies.map((copy) => copyRegistryImage(copy.request, { stats: again })));
      assert.equal(again.blobsUploaded, 0);
      assert.equal(again.bytesUploaded, 0);
    } finally {
      await fresh.stop();
    }
  });

  it("copies several platforms as a smaller index under the tag, one platform as its manifest", async function () {
    const [both] = plan(mirror, [busybox], ["linux/arm64", "linux/amd64"]).copies;
    both.request.to = { ...both.request.to, reference: "two-platforms" } as CopyRequest["to"];
    const digest = await copyRegistryImage(both.request, { retries: 0 });
    const index = await rawManifest(mirror, "e2e-test-images/busybox:two-platforms");
    assert.equal(index.manifests.length, 2);
    assert.equal(
      digest,
      upstreamDigest(busybox),
      "both platforms of a two-platform index: the same index, so the same digest",
    );

    const [one] = plan(mirror, [busybox], ["linux/arm64", "linux/amd64"]).copies;
    one.request = { ...one.request, platforms: undefined, platform: "linux/arm64" };
    one.request.to = { ...one.request.to, reference: "arm64-only" } as CopyRequest["to"];
    const armDigest = await copyRegistryImage(one.request, { retries: 0 });
    const manifest = await rawManifest(mirror, "e2e-test-images/busybox:arm64-only");
    assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    const upstreamIndex = await rawManifest(
      upstreams.registries["registry.k8s.io"],
      "e2e-test-images/busybox:1.36.1-1",
    );
    assert.equal(
      armDigest,
      upstreamIndex.manifests.find(
        (entry: { platform: { architecture: string } }) => entry.platform.architecture === "arm64",
      ).digest,
    );
    const bytes = await platformBytes(one.request);
    assert.ok(bytes && bytes.chosen > 0 && bytes.chosen < bytes.all, JSON.stringify(bytes));

    await assert.rejects(
      copyRegistryImage({ ...one.request, platform: "linux/s390x" }, { retries: 0 }),
      (error: Error) => {
        assert.ok(error instanceof ImageCopyError);
        assert.match(
          error.message,
          /busybox:1\.36\.1-1: has no linux\/s390x image; it offers linux\/amd64, linux\/arm64/,
        );
        return true;
      },
    );
  });

  it("shows at preview (the provider's check) how many bytes the chosen platforms save", async function () {
    const providerFile = writeProviderModule("copier-check", mirroredImageProviderModule);
    const [copy] = plan(mirror, [busybox], ["linux/arm64"]).copies;
    const inputs: MirroredImageInputs = {
      source: copy.source,
      request: copy.request,
      mirrorReference: copy.mirrorReference,
      retries: 0,
      deleteOnDestroy: false,
      credentials: {},
    };
    const checked = await callProvider<{ inputs: CheckedMirroredImageInputs }>(
      providerFile,
      "check",
      [{}, inputs],
    );
    const bytes = checked.inputs.platformBytes!;
    assert.ok(bytes.saved > 0 && bytes.chosen > 0, JSON.stringify(bytes));
    assert.equal(bytes.chosen + bytes.saved, bytes.all);
    // Once recorded, it is carried over without reading the source again.
    const unreachable = {
      ...inputs,
      request: {
        ...inputs.request,
        from: { ...inputs.request.from, access: { host: "127.0.0.1:9", scheme: "http" } },
      },
    } as MirroredImageInputs;
    const again = await callProvider<{ inputs: CheckedMirroredImageInputs }>(
      providerFile,
      "check",
      [checked.inputs, unreachable],
    );
    assert.deepEqual(again.inputs.platformBytes, bytes);
    const whole = await callProvider<{ inputs: CheckedMirroredImageInputs }>(
      providerFile,
      "check",
      [{}, { ...inputs, request: plan(mirror, [busybox]).copies[0].request }],
    );
    assert.equal(whole.inputs.platformBytes, undefined);
  });

  it("keeps the whole index of a tag+digest reference when platforms are chosen", async function () {
    const pinned = `${busybox}@${upstreamDigest(busybox)}`;
    const [copy] = plan(mirror, [pinned], ["linux/amd64"]).copies;
    assert.equal(copy.request.platform, undefined);
    copy.request.to = { ...copy.request.to, reference: "pinned" } as CopyRequest["to"];
    assert.equal(await copyRegistryImage(copy.request, { retries: 0 }), copy.expectedDigest);
    const index = await rawManifest(mirror, "e2e-test-images/busybox:pinned");
    assert.equal(index.manifests.length, 2);
  });

  it("pushes to a TLS + auth mirror, and refuses wrong credentials without echoing them", async function () {
    const copies = plan(
      secureMirror,
      upstreams.images.map((image) => image.name),
    ).copies;
    const digests = await Promise.all(
      copies.map((copy) => copyRegistryImage(copy.request, { retries: 0 })),
    );
    assert.deepEqual(
      digests,
      copies.map((copy) => upstreamDigest(copy.source)),
    );
    const [pause] = plan(secureMirror, ["registry.k8s.io/pause:3.10"]).copies;
    const wrong = {
      ...pause.request,
      to: {
        ...pause.request.to,
        access: { ...registryAccessOf(secureMirror), password: "wrong-pw-456" },
      },
    } as CopyRequest;
    await assert.rejects(copyRegistryImage(wrong, { retries: 0 }), (error: Error) => {
      assert.ok(error instanceof ImageCopyError);
      assert.equal(error.kind, "unauthorized");
      assert.match(error.message, /registry\.k8s\.io\/pause:3\.10: credentials were refused/);
      assert.ok(!error.message.includes("wrong-pw-456"));
      assert.ok(!error.message.includes(Buffer.from("mirror:wrong-pw-456").toString("base64")));
      return true;
    });
  });

  it("verifies TLS: a mirror whose CA is not given is refused at once, not retried", async function () {
    const [pause] = plan(secureMirror, ["registry.k8s.io/pause:3.10"]).copies;
    const unverified = {
      ...pause.request,
      to: { ...pause.request.to, access: { ...registryAccessOf(secureMirror), caFile: undefined } },
    } as CopyRequest;
    const started = Date.now();
    await assert.rejects(
      copyRegistryImage(unverified, { retries: 3, backoffMs: 2000 }),
      (error: Error) => {
        assert.ok(error instanceof ImageCopyError);
        assert.match(error.message, /the certificate of registry 127\.0\.0\.1:\d+ did not verify/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 2000, "no retry with backoff happened");
  });

  it("names the image and the registry when the source is unreachable, after retrying", async function () {
    const closedPort = await freePort();
    const [copy] = planImageCopies({
      images: ["registry.k8s.io/pause:3.10"],
      source: {
        kind: "upstream",
        registries: { "registry.k8s.io": { host: `127.0.0.1:${closedPort}`, scheme: "http" } },
      },
      destination: {
        kind: "registry",
        access: registryAccessOf(mirror),
        nodeEndpoint: "mirror.lab:5000",
      },
    }).copies;
    const started = Date.now();
    await assert.rejects(
      copyRegistryImage(copy.request, { retries: 2, backoffMs: 100 }),
      (error: Error) => {
        assert.ok(error instanceof ImageCopyError);
        assert.equal(error.kind, "unreachable");
        assert.match(
          error.message,
          new RegExp(
            `registry\\.k8s\\.io/pause:3\\.10: cannot reach 127\\.0\\.0\\.1:${closedPort}`,
          ),
        );
        return true;
      },
    );
    assert.ok(Date.now() - started >= 300, "two retries with 100 ms and 200 ms backoff happened");
  });
});

describeUpstreamKilledMidCopy(
  "the registry copier when the upstream dies in the middle of a blob",
  { upstream: "lab-copier-upstream-fragile", mirror: "lab-copier-after-kill" },
  copyRegistryImage,
);
