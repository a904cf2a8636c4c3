import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { mirrorPasswordVariable, runArchiveCli } from "../../cli/airgap";
import { readLock, writeLock, type LockedImage } from "../../components/mirror/actions/archive";
import { writeDifferentialArchive } from "../../components/mirror/actions/archive-diff";
import {
  checkImages,
  RegistryClient,
  type RegistryAccess,
} from "../../components/mirror/actions/registry-client";
import { copyImage } from "../../components/mirror/actions/skopeo";
import { planImageCopies } from "../../components/mirror/plan";
import { scratchDir } from "../scratch";
import { run } from "../lab/exec";
import { labDir } from "../lab/paths";
import { registryAccessOf, startLabRegistry, type LabRegistry } from "../lab/registries";
import {
  makeManifest,
  makeRandomLayer,
  multiPlatformImage,
  singlePlatformImage,
  writeOciLayout,
  type Layer,
  type SyntheticImage,
} from "../lab/synthetic-images";

const root = path.resolve(__dirname, "..", "..");
const amd64 = { os: "linux" as const, architecture: "amd64" };
const arm64 = { os: "linux" as const, architecture: "arm64" };
const upstreamPrefixes = { "docker.io": "dockerhub" };

const pause = "registry.k8s.io/pause:3.10";
const busybox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
const nginx = "docker.io/library/nginx:1.27";
const agnhost = "registry.k8s.io/e2e-test-images/agnhost:2.53";
const agnhostNext = "registry.k8s.io/e2e-test-images/agnhost:2.54";
const pauseAlias = "registry.k8s.io/pause-alias:3.10";

/** A full export: the OCI layout and the lock file the export stack writes beside it. */
function writeArchive(images: Record<string, SyntheticImage>): string {
  const directory = path.join(scratchDir("diff-mirror-full-", labDir), "images");
  writeOciLayout(directory, images);
  writeLock(
    directory,
    Object.entries(images).map(([source, image]) => ({ source, digest: image.top.digest })),
  );
  return directory;
}

/** The mirror path of each image, as the import path places it (docker.io under its prefix). */
function importPlan(archive: string, mirror: LabRegistry, images: string[]) {
  return planImageCopies({
    images,
    source: { kind: "archive", directory: archive },
    destination: {
      kind: "registry",
      access: registryAccessOf(mirror),
      nodeEndpoint: mirror.endpoint,
    },
    upstreamPrefixes,
    lock: readLock(archive),
  });
}

function mirrorTarget(copy: ReturnType<typeof importPlan>["copies"][number]) {
  const to = copy.request.to;
  assert.equal(to.transport, "docker");
  return { repository: to.repository, reference: to.reference };
}

function blobHexes(directory: string): Set<string> {
  return new Set(readdirSync(path.join(directory, "blobs", "sha256")));
}

describe("a differential archive applied straight onto a mirror registry (TLS + htpasswd)", function () {
  const password = "diff-mirror-pw-4417";
  let mirror: LabRegistry;
  let access: RegistryAccess;
  let archiveA: string;
  let archiveB: string;
  let lockB: LockedImage[];
  let base: Layer;
  let agnhostLayer: Layer;

  before(async function () {
    mirror = await startLabRegistry({
      name: "lab-diff-mirror",
      tls: true,
      auth: { username: "mirror", password },
    });
    access = registryAccessOf(mirror);
    base = await makeRandomLayer("base", 96 * 1024);
    const [pauseLayer, busyboxAmd, busyboxArm, nginxLayer, nginxNew, agnhostNextLayer] =
      await Promise.all(
        ["pause", "busybox-amd64", "busybox-arm64", "nginx", "nginx-new", "agnhost-next"].map(
          (name) => makeRandomLayer(name, 8 * 1024),
        ),
      );
    agnhostLayer = await makeRandomLayer("agnhost", 32 * 1024);
    const pauseImage = singlePlatformImage(makeManifest([base, pauseLayer], amd64));
    const busyboxImage = multiPlatformImage([
      makeManifest([base, busyboxAmd], amd64),
      makeManifest([busyboxArm], arm64),
    ]);
    const setA: Record<string, SyntheticImage> = {
      [pause]: pauseImage,
      [busybox]: busyboxImage,
      [nginx]: singlePlatformImage(makeManifest([base, nginxLayer], amd64)),
    };
    // B: A, nginx's tag moved to a new image, two new agnhost images on the base layer, and a
    // new name for pause's very image (nothing of it carried: its manifest too stays behind).
    const setB: Record<string, SyntheticImage> = {
      ...setA,
      [nginx]: singlePlatformImage(makeManifest([base, nginxNew], amd64)),
      [agnhost]: multiPlatformImage([
        makeManifest([base, agnhostLayer], amd64),
        makeManifest([busyboxArm, agnhostLayer], arm64),
      ]),
      [agnhostNext]: singlePlatformImage(
        makeManifest([base, agnhostLayer, agnhostNextLayer], amd64),
      ),
      [pauseAlias]: pauseImage,
    };
    archiveA = writeArchive(setA);
    archiveB = writeArchive(setB);
    lockB = readLock(archiveB).images;

    // The air-gapped mirror holds set A, imported as an imagesSource: archive stack does.
    for (const copy of importPlan(archiveA, mirror, Object.keys(setA)).copies) {
      assert.equal(await copyImage(copy.request, { retries: 0 }), copy.expectedDigest);
    }
  });
  after(async () => {
    await mirror.stop();
  });

  const cliAccess = () => [
    "--onto-registry",
    `https://${mirror.endpoint}`,
    "--ca-file",
    mirror.caFile!,
    "--username",
    "mirror",
    "--upstream-prefix",
    "docker.io=dockerhub",
  ];
  const cliEnv = () => ({ [mirrorPasswordVariable]: password });

  /** What the mirror's tags of `images` point to now. */
  async function tagsNow(images: string[]): Promise<(string | undefined)[]> {
    const client = new RegistryClient(access);
    try {
      return await Promise.all(
        importPlan(archiveB, mirror, images).copies.map((copy) => {
          const { repository, reference } = mirrorTarget(copy);
          return client.manifestDigest(repository, reference);
        }),
      );
    } finally {
      client.close();
    }
  }

  it("refuses a differential made against another lock, naming the blob and the image, and writes nothing", async function () {
    // The other lock says agnhost:2.53 is there already; this mirror never got it.
    const otherLock = path.join(scratchDir("diff-mirror-other-", labDir), "images.lock.json");
    writeLock(path.dirname(otherLock), [
      ...readLock(archiveA).images,
      lockB.find((image) => image.source === agnhost)!,
    ]);
    const diff = path.join(scratchDir("diff-mirror-wrong-", labDir), "diff");
    const manifest = writeDifferentialArchive(archiveB, otherLock, diff);
    assert.ok(!manifest.images.some((image) => image.source === agnhost));
    const carried = manifest.images.map((image) => image.source);
    const before = await tagsNow(carried);

    const result = await runArchiveCli(
      ["archive-apply", diff, ...cliAccess()],
      () => undefined,
      cliEnv(),
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(
        `lacks blob ${agnhostLayer.digest} that ${agnhostNext.replace(/\./g, "\\.")} needs .*made against another lock file or another mirror`,
      ),
    );
    assert.doesNotMatch(result.stderr, new RegExp(password));
    assert.deepEqual(await tagsNow(carried), before);
    // Not even a blob went in: no carried blob is in the repositories of the carried images.
    const client = new RegistryClient(access);
    try {
      for (const repository of ["dockerhub/library/nginx", "e2e-test-images/agnhost"]) {
        for (const hex of blobHexes(diff)) {
          assert.equal(await client.hasBlob(repository, `sha256:${hex}`), false, repository);
        }
      }
    } finally {
      client.close();
    }
  });

  it("refuses a differential with a tampered blob before anything is written", async function () {
    const diff = path.join(scratchDir("diff-mirror-tampered-", labDir), "diff");
    const manifest = writeDifferentialArchive(
      archiveB,
      path.join(archiveA, "images.lock.json"),
      diff,
    );
    const victim = path.join(diff, "blobs", "sha256", agnhostLayer.digest.slice("sha256:".length));
    const bytes = readFileSync(victim);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(victim, bytes);
    const carried = manifest.images.map((image) => image.source);
    const before = await tagsNow(carried);
    const result = await runArchiveCli(
      ["archive-apply", diff, ...cliAccess()],
      () => undefined,
      cliEnv(),
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(`blob ${agnhostLayer.digest} is corrupt or tampered with .*nothing was written`),
    );
    assert.deepEqual(await tagsNow(carried), before);
    const client = new RegistryClient(access);
    try {
      for (const hex of blobHexes(diff)) {
        assert.equal(await client.hasBlob("dockerhub/library/nginx", `sha256:${hex}`), false);
      }
    } finally {
      client.close();
    }
  });

  it("refuses a differential made against images the mirror does not hold, naming one, and writes nothing", async function () {
    // The other lock says pause's image is there under its second name too; this mirror never
    // got that name. Every blob the carried images leave out is on the mirror all the same.
    const otherLock = path.join(scratchDir("diff-mirror-kept-", labDir), "images.lock.json");
    writeLock(path.dirname(otherLock), [
      ...readLock(archiveA).images,
      lockB.find((image) => image.source === pauseAlias)!,
    ]);
    const diff = path.join(scratchDir("diff-mirror-kept-diff-", labDir), "diff");
    const manifest = writeDifferentialArchive(archiveB, otherLock, diff);
    assert.ok(manifest.kept!.some((image) => image.source === pauseAlias));
    const carried = manifest.images.map((image) => image.source);
    const before = await tagsNow(carried);

    const result = await runArchiveCli(
      ["archive-apply", diff, ...cliAccess()],
      () => undefined,
      cliEnv(),
    );
    assert.equal(result.code, 1);
    const alias = pauseAlias.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    assert.match(
      result.stderr,
      new RegExp(
        `is missing, but the differential was made against a lock where ${alias} is sha256:[0-9a-f]{64}: this mirror does not hold what the differential was made against.*Nothing was written`,
      ),
    );
    assert.deepEqual(await tagsNow(carried), before);
    const client = new RegistryClient(access);
    try {
      for (const hex of blobHexes(diff)) {
        assert.equal(await client.hasBlob("dockerhub/library/nginx", `sha256:${hex}`), false);
      }
    } finally {
      client.close();
    }
  });

  it("carries only what the mirror lacks, applies it with the CLI, and the mirror then serves every image of the new lock", async function () {
    const diff = path.join(scratchDir("diff-mirror-", labDir), "diff");
    const manifest = writeDifferentialArchive(
      archiveB,
      path.join(archiveA, "images.lock.json"),
      diff,
    );
    assert.deepEqual(
      manifest.images.map((image) => image.source).sort(),
      [nginx, agnhost, agnhostNext, pauseAlias].sort(),
    );
    // The shared base layer and busybox's arm64 layer stay behind; the carried ones travel.
    const carried = blobHexes(diff);
    for (const shared of [base.digest, lockB.find((image) => image.source === pause)!.digest]) {
      assert.ok(!carried.has(shared.slice("sha256:".length)), `${shared} is left out`);
    }
    assert.ok(carried.has(agnhostLayer.digest.slice("sha256:".length)));
    const baseEntry = manifest.requiredBlobs.find((blob) => blob.digest === base.digest)!;
    // Held by the images the mirror keeps as they are (nginx is carried: its tag moved).
    assert.deepEqual(baseEntry.heldBy, [busybox, pause]);

    // The command as a user runs it: its own process, the password only in the environment.
    const result = await run(
      path.join(root, "node_modules", ".bin", "ts-node"),
      [
        "--transpile-only",
        path.join(root, "cli", "airgap.ts"),
        "archive-apply",
        diff,
        ...cliAccess(),
      ],
      { env: cliEnv(), allowFailure: true },
    );
    assert.equal(result.code, 0, result.stderr);
    const counts =
      /: (\d+) blobs pushed \(.*\), (\d+) mounted, (\d+) already there, (\d+) manifests;/.exec(
        result.stdout,
      );
    assert.ok(counts, result.stdout);
    // 16 blobs in all go into the carried images' repositories. Pushed: the configs and new
    // layers of nginx (2), agnhost (2 configs + its layer) and agnhost:2.54 (2; the agnhost layer
    // it shares is pushed once). Mounted from kept repositories: agnhost's base and busybox's
    // arm64 layer, pause's config and layers under its new name (5). Already there: nginx's base
    // (its repository kept it), the agnhost layer's second and third use, and agnhost:2.54's base
    // once agnhost has mounted it (or a sixth mount, when both ask at the same moment).
    const [pushed, mounted, present, manifests] = counts.slice(1).map(Number);
    assert.equal(pushed, 7, result.stdout);
    assert.ok(mounted >= 5, result.stdout);
    assert.equal(pushed + mounted + present, 16, result.stdout);
    // Manifests by digest: nginx 1, agnhost index + 2, agnhost:2.54 1, pause's under its new name 1.
    assert.equal(manifests, 6, result.stdout);
    assert.doesNotMatch(result.stdout + result.stderr, new RegExp(password));

    // Every image of B's lock, at the lock's digest, by the tag nodes pull.
    const plan = importPlan(
      archiveB,
      mirror,
      lockB.map((image) => image.source),
    );
    const served = await checkImages(
      access,
      plan.copies.map((copy) => ({ ...mirrorTarget(copy), expectedDigest: copy.expectedDigest })),
    );
    assert.deepEqual(
      served.map((entry) => [entry.repository, entry.reference, entry.state]),
      plan.copies.map((copy) => [
        mirrorTarget(copy).repository,
        mirrorTarget(copy).reference,
        "present",
      ]),
    );
    // And pullable whole by an independent client: skopeo copies each one out of the mirror.
    const pulled = scratchDir("diff-mirror-pulled-", labDir);
    for (const copy of plan.copies) {
      const { repository, reference } = mirrorTarget(copy);
      await run("skopeo", [
        "copy",
        "--all",
        `--src-cert-dir=${mirror.certDir}`,
        `--src-authfile=${mirror.authFile}`,
        `docker://${mirror.endpoint}/${repository}:${reference}`,
        `oci:${path.join(pulled, "layout")}:${copy.source}`,
      ]);
      const inspected = await run("skopeo", [
        "inspect",
        "--raw",
        `--cert-dir=${mirror.certDir}`,
        `--authfile=${mirror.authFile}`,
        `docker://${mirror.endpoint}/${repository}:${reference}`,
      ]);
      assert.ok(inspected.stdout.length > 0);
    }
    assert.ok(existsSync(path.join(pulled, "layout", "index.json")));
  });
});
