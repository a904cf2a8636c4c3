import { fakeDigest, only, recorded, resourcesOf, settle, valueOf } from "./harness";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { ImageMirror, type ImageMirrorArgs } from "../../components/mirror";
import { writeLock } from "../../components/mirror/actions/archive";
import { planImageCopies } from "../../components/mirror/plan";
import { mirroredImageProviderModule } from "../../components/mirror/provider";
import { renderRepoList } from "../../core/images/repo-list";
import { scratchDir } from "../scratch";

const imageType = "pulumi-nodejs:dynamic/mirror:MirroredImage";
const mirrorAccess = { host: "127.0.0.1:5001", scheme: "http" as const };

function registryArgs(images: string[], extra: Partial<ImageMirrorArgs> = {}): ImageMirrorArgs {
  return {
    images,
    destination: { kind: "registry", access: mirrorAccess, nodeEndpoint: "kind-registry:5000" },
    ...extra,
  };
}

/** Resource suffix (after the component name) -> inputs that matter for a preview diff. */
function declaredImages(componentName: string): Map<string, unknown> {
  return new Map(
    resourcesOf(componentName)
      .filter((resource) => resource.type === imageType)
      .map((resource) => {
        const { __provider: _provider, ...inputs } = resource.inputs;
        return [resource.name.slice(componentName.length + 1), inputs];
      }),
  );
}

describe("ImageMirror (mocks)", function () {
  const images = [
    "registry.k8s.io/pause:3.10",
    "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
    "docker.io/library/nginx:1.27-alpine",
  ];

  describe("into a registry", function () {
    let mirror: ImageMirror;
    before(async function () {
      mirror = new ImageMirror(
        "mirror",
        registryArgs(images, {
          destination: {
            kind: "registry",
            access: { ...mirrorAccess, username: "pusher" },
            nodeEndpoint: "kind-registry:5000",
          },
          mirrorPassword: "mirror-secret-pw",
          sourcePasswords: { "docker.io": "hub-secret-pw" },
        }),
      );
      await valueOf(mirror.mapping);
      await settle();
    });

    it("declares one child resource per image, named after the image and parented", function () {
      const children = resourcesOf("mirror").filter((resource) => resource.type === imageType);
      assert.deepEqual(
        children.map((child) => child.name).sort(),
        images.map((image) => `mirror-${image}`).sort(),
      );
      for (const child of children)
        assert.match(child.parent, /airgap:mirror:ImageMirror::mirror$/);
    });

    it("hands each resource the plan's copy request, with passwords only as secrets", function () {
      const plan = planImageCopies({
        images,
        source: { kind: "upstream" },
        destination: {
          kind: "registry",
          access: { ...mirrorAccess, username: "pusher" },
          nodeEndpoint: "kind-registry:5000",
        },
      });
      for (const copy of plan.copies) {
        const resource = only(resourcesOf(`mirror-${copy.source}`), imageType);
        assert.deepEqual(resource.inputs.request, JSON.parse(JSON.stringify(copy.request)));
        assert.equal(resource.inputs.source, copy.source);
        assert.equal(resource.inputs.mirrorReference, copy.mirrorReference);
        assert.deepEqual(resource.secretPaths, ["credentials"]);
        assert.deepEqual(resource.additionalSecretOutputs, ["credentials"]);
        // The provider module travels along, the same text for every image and every run (the
        // integration tests load it the way the engine's dynamic provider host does).
        assert.equal(resource.inputs.__provider, mirroredImageProviderModule);
        assert.match(mirroredImageProviderModule, /^exports\.handler = /m);
        const expected = copy.source.startsWith("docker.io/")
          ? { fromPassword: "hub-secret-pw", toPassword: "mirror-secret-pw" }
          : { toPassword: "mirror-secret-pw" };
        assert.deepEqual(resource.inputs.credentials, expected);
      }
      const plainText = JSON.stringify(
        recorded
          .filter((resource) => resource.name.startsWith("mirror-"))
          .map(({ inputs: { credentials: _credentials, ...rest } }) => rest),
      );
      assert.ok(!plainText.includes("mirror-secret-pw") && !plainText.includes("hub-secret-pw"));
    });

    it("outputs the mapping with digests, the lock, the repo list and the upstreams", async function () {
      assert.deepEqual(await valueOf(mirror.mapping), {
        "docker.io/library/nginx:1.27-alpine": `kind-registry:5000/library/nginx:1.27-alpine@${fakeDigest("docker.io/library/nginx:1.27-alpine")}`,
        "registry.k8s.io/e2e-test-images/busybox:1.36.1-1": `kind-registry:5000/e2e-test-images/busybox:1.36.1-1@${fakeDigest("registry.k8s.io/e2e-test-images/busybox:1.36.1-1")}`,
        "registry.k8s.io/pause:3.10": `kind-registry:5000/pause:3.10@${fakeDigest("registry.k8s.io/pause:3.10")}`,
      });
      const lock = await valueOf(mirror.lock);
      assert.deepEqual(
        lock.images.map((image) => image.source),
        [...images].sort(),
      );
      assert.equal(
        await valueOf(mirror.repoList),
        renderRepoList({ mirrorHost: "kind-registry:5000" }),
      );
      assert.deepEqual(await valueOf(mirror.upstreamRegistries), ["docker.io", "registry.k8s.io"]);
      assert.equal(await valueOf(mirror.imageCount), 3);
    });
  });

  it("a second config that adds one image and removes another changes exactly those resources", async function () {
    new ImageMirror("before", registryArgs(images));
    new ImageMirror(
      "after",
      registryArgs([images[0], images[1], "registry.k8s.io/e2e-test-images/agnhost:2.52"]),
    );
    await settle();
    const before = declaredImages("before");
    const after = declaredImages("after");
    const added = [...after.keys()].filter((key) => !before.has(key));
    const removed = [...before.keys()].filter((key) => !after.has(key));
    const changed = [...after.keys()].filter(
      (key) =>
        before.has(key) && JSON.stringify(before.get(key)) !== JSON.stringify(after.get(key)),
    );
    assert.deepEqual(added, ["registry.k8s.io/e2e-test-images/agnhost:2.52"]);
    assert.deepEqual(removed, ["docker.io/library/nginx:1.27-alpine"]);
    assert.deepEqual(changed, [], "the images both configs share are declared identically");
  });

  it("exports into an archive and writes the lock only after every image", async function () {
    const directory = path.join(scratchDir("export-"), "images");
    const mirror = new ImageMirror("export", {
      images,
      destination: { kind: "archive", directory },
    });
    await valueOf(mirror.lock);
    await settle();
    const lock = only(resourcesOf("export"), "pulumi-nodejs:dynamic/mirror:ArchiveLock");
    assert.equal(lock.inputs.directory, directory);
    assert.equal((lock.inputs.images as unknown[]).length, 3);
    const imageUrns = resourcesOf("export").filter((resource) => resource.type === imageType);
    assert.equal(lock.dependencies.length, imageUrns.length);
    assert.equal(await valueOf(mirror.repoList), undefined);
  });

  it("logs at preview how many images are there and what is left to copy, with its size", async function () {
    // Source: an OCI layout with two images sharing a 3 MB base layer; destination: an archive
    // that already holds one of them.
    const source = scratchDir("progress-source-");
    const blobs = path.join(source, "blobs", "sha256");
    mkdirSync(blobs, { recursive: true });
    const put = (text: string) => {
      const hex = createHash("sha256").update(text).digest("hex");
      writeFileSync(path.join(blobs, hex), text);
      return { digest: `sha256:${hex}`, size: Buffer.byteLength(text) };
    };
    const base = { digest: `sha256:${"b".repeat(64)}`, size: 3_000_000 };
    const manifestOf = (own: string) =>
      put(
        JSON.stringify({
          schemaVersion: 2,
          config: { digest: `sha256:${own.repeat(64)}`, size: 1_000 },
          layers: [base, { digest: `sha256:${own.repeat(63)}0`, size: 2_000_000 }],
        }),
      );
    const refs = ["registry.k8s.io/pause:3.10", "registry.k8s.io/etcd:3.5.15-0"];
    const manifests = [manifestOf("c"), manifestOf("d")];
    const index = (entries: number[]) =>
      JSON.stringify({
        schemaVersion: 2,
        manifests: entries.map((i) => ({
          ...manifests[i],
          annotations: { "org.opencontainers.image.ref.name": refs[i] },
        })),
      });
    writeFileSync(path.join(source, "index.json"), index([0, 1]));
    writeLock(
      source,
      refs.map((ref, i) => ({ source: ref, digest: manifests[i].digest })),
    );
    const destination = scratchDir("progress-destination-");
    cpSync(source, destination, { recursive: true });
    writeFileSync(path.join(destination, "index.json"), index([0]));

    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => void lines.push(args.join(" "));
    try {
      const mirror = new ImageMirror("progress", {
        images: refs,
        source: { kind: "archive", directory: source },
        destination: { kind: "archive", directory: destination },
      });
      const plan = await valueOf(mirror.transferPlan);
      await settle();
      // Only etcd is copied: its own layer and config, and the base it shares with pause.
      assert.deepEqual(plan, { total: 2, present: 1, toCopy: 1, bytes: 5_001_000, unsized: 0 });
    } finally {
      console.log = log;
    }
    assert.ok(
      lines.some((line) =>
        line.endsWith(`2 images: 1 already in the archive ${destination}, 1 to copy (5.0 MB)`),
      ),
      lines.join("\n"),
    );
  });

  it("imports from an archive pinned by its lock file", async function () {
    const directory = scratchDir("import-");
    const digest = `sha256:${"a".repeat(64)}`;
    writeLock(directory, [{ source: "registry.k8s.io/pause:3.10", digest }]);
    new ImageMirror(
      "import",
      registryArgs(["registry.k8s.io/pause:3.10"], { source: { kind: "archive", directory } }),
    );
    await settle();
    const image = only(resourcesOf("import"), imageType);
    assert.equal(image.inputs.expectedDigest, digest);
    assert.deepEqual((image.inputs.request as { from: unknown }).from, {
      transport: "oci",
      directory,
      refName: "registry.k8s.io/pause:3.10",
    });
  });

  it("chooses platforms for tags, keeps digest-pinned indexes whole, and sums the bytes saved", async function () {
    const pinned = `registry.k8s.io/etcd:3.5.15-0@${fakeDigest("etcd")}`;
    const mirror = new ImageMirror(
      "platforms",
      registryArgs([...images, pinned], { platforms: ["linux/amd64", "linux/arm64"] }),
    );
    assert.equal(await valueOf(mirror.platformBytesSaved), 3 * 100);
    await settle();
    const declared = declaredImages("platforms") as Map<
      string,
      { request: { platforms?: string[] } }
    >;
    assert.deepEqual(declared.get(pinned)?.request.platforms, undefined);
    for (const image of images) {
      assert.deepEqual(declared.get(image)?.request.platforms, ["linux/amd64", "linux/arm64"]);
    }
    const everything = new ImageMirror("all-platforms", registryArgs(images));
    assert.equal(await valueOf(everything.platformBytesSaved), 0);
  });

  describe("bad input fails before anything is created", function () {
    const archiveWithoutLock = scratchDir("no-lock-");
    // A differential archive: a lock of what changed, and differential.json beside it.
    const differential = scratchDir("differential-");
    writeLock(differential, [
      { source: "registry.k8s.io/pause:3.10", digest: `sha256:${"b".repeat(64)}` },
    ]);
    writeFileSync(path.join(differential, "differential.json"), "{}");
    const cases: Array<[string, ImageMirrorArgs, RegExp]> = [
      [
        "a malformed reference",
        registryArgs(["registry.k8s.io/Pause:3.10"]),
        /uppercase letters are not allowed in repository/,
      ],
      [
        "a colliding mapping",
        registryArgs(["docker.io/library/nginx:1.27", "quay.io/library/nginx:1.27"]),
        /library\/nginx/,
      ],
      [
        "two platforms",
        registryArgs(images, { platform: "linux/amd64,linux/arm64" }),
        /platform 'linux\/amd64,linux\/arm64' must be os\/arch/,
      ],
      [
        "an archive without a lock",
        registryArgs(images, { source: { kind: "archive", directory: archiveWithoutLock } }),
        /has no images\.lock\.json/,
      ],
      [
        "a differential archive (it holds only what changed)",
        registryArgs(images, { source: { kind: "archive", directory: differential } }),
        /is a differential archive \(it has differential\.json\).*archive-apply .* --onto ARCHIVE_DIR.*--onto-registry https:\/\/HOST:PORT/,
      ],
      [
        "retries out of range",
        registryArgs(images, { retries: 50 }),
        /retries: 50 must be an integer from 0 to 10/,
      ],
    ];
    for (const [label, args, expected] of cases) {
      it(label, async function () {
        const name = `bad-mirror-${label.replace(/\W+/g, "-")}`;
        assert.throws(() => new ImageMirror(name, args), expected);
        await settle();
        assert.deepEqual(
          resourcesOf(name).filter((resource) => resource.custom),
          [],
        );
      });
    }
  });
});
