import assert from "node:assert/strict";
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { scratchDir } from "../../scratch";
import { readLock, verifyArchivedImage } from "../../../components/mirror/actions/archive";
import {
  applyDifferentialArchive,
  writeDifferentialArchive,
} from "../../../components/mirror/actions/archive-diff";
import { bytesOf, writeLayout, type LayoutImage } from "./oci-layout";

const base = bytesOf("base", 5000);
const pause: LayoutImage = {
  name: "registry.k8s.io/pause:3.10",
  platforms: [{ platform: "linux/amd64", layers: [base, bytesOf("pause", 700)] }],
};
const busybox: LayoutImage = {
  name: "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
  platforms: [{ platform: "linux/amd64", layers: [base, bytesOf("busybox", 900)] }],
};
const agnhost: LayoutImage = {
  name: "registry.k8s.io/e2e-test-images/agnhost:2.53",
  platforms: [
    { platform: "linux/amd64", layers: [base, bytesOf("agnhost", 3000)] },
    { platform: "linux/arm64", layers: [bytesOf("agnhost arm", 3000)] },
  ],
};

function temp(prefix: string): string {
  return scratchDir(prefix);
}

function blobNames(directory: string): string[] {
  const dir = path.join(directory, "blobs", "sha256");
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

describe("differential archives", function () {
  // The other side holds pause and an older busybox; the new export has a new busybox and agnhost.
  const theirs = path.join(temp("theirs-"), "images");
  const full = path.join(temp("full-"), "images");
  before(function () {
    writeLayout(theirs, [
      pause,
      {
        ...busybox,
        platforms: [{ platform: "linux/amd64", layers: [base, bytesOf("old busybox", 900)] }],
      },
    ]);
    writeLayout(full, [pause, busybox, agnhost]);
  });

  it("carries only the images and blobs the other side lacks", function () {
    const diff = path.join(temp("diff-"), "images");
    const manifest = writeDifferentialArchive(full, path.join(theirs, "images.lock.json"), diff);
    assert.deepEqual(manifest.unchanged, ["registry.k8s.io/pause:3.10"]);
    assert.deepEqual(
      manifest.images.map((image) => image.source),
      [
        "registry.k8s.io/e2e-test-images/agnhost:2.53",
        "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
      ],
    );
    // The shared base layer is pause's: the other side has it, so it stays behind.
    const baseDigest = blobNames(full).find((hex) =>
      readFileSync(path.join(full, "blobs", "sha256", hex)).equals(base),
    )!;
    assert.ok(!blobNames(diff).includes(baseDigest));
    assert.deepEqual(
      manifest.requiredBlobs.map((blob) => blob.digest),
      [`sha256:${baseDigest}`],
    );
    // The kept image holding it is named: an apply onto a mirror mounts it from its repository.
    assert.deepEqual(manifest.requiredBlobs[0].heldBy, ["registry.k8s.io/pause:3.10"]);
    const written = JSON.parse(readFileSync(path.join(diff, "differential.json"), "utf8")) as {
      requiredBlobs: { heldBy: string[] }[];
    };
    assert.deepEqual(written.requiredBlobs[0].heldBy, ["registry.k8s.io/pause:3.10"]);
    // Nothing of pause (manifest, config, layers) is carried.
    const pauseDigest = readLock(full).images.find((image) => image.source === pause.name)!.digest;
    // The kept images with the digests the other side's lock pins: what a mirror must serve.
    assert.deepEqual(manifest.kept, [{ source: pause.name, digest: pauseDigest }]);
    const pauseManifest = JSON.parse(
      readFileSync(path.join(full, "blobs", "sha256", pauseDigest.slice(7)), "utf8"),
    ) as { config: { digest: string }; layers: { digest: string }[] };
    const pauseBlobs = [
      pauseDigest,
      pauseManifest.config.digest,
      ...pauseManifest.layers.map((l) => l.digest),
    ];
    for (const digest of pauseBlobs) assert.ok(!blobNames(diff).includes(digest.slice(7)), digest);
    assert.equal(blobNames(diff).length, manifest.blobCount);
    assert.equal(blobNames(full).length - blobNames(diff).length, pauseBlobs.length);
    assert.deepEqual(readLock(diff).images, manifest.images);
  });

  it("applies on top of the other side's archive: the result equals the full export", async function () {
    const diff = path.join(temp("diff-"), "images");
    writeDifferentialArchive(full, path.join(theirs, "images.lock.json"), diff);
    const target = path.join(temp("target-"), "images");
    cpSync(theirs, target, { recursive: true });
    applyDifferentialArchive(diff, target);
    assert.deepEqual(readLock(target), readLock(full));
    for (const image of readLock(target).images) {
      await verifyArchivedImage(target, image.source, image.digest);
    }
    const names = (dir: string) =>
      (
        JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8")) as {
          manifests: { annotations: Record<string, string> }[];
        }
      ).manifests
        .map((entry) => entry.annotations["org.opencontainers.image.ref.name"])
        .sort();
    assert.deepEqual(names(target), names(full));
  });

  it("refuses an archive it was not made against, naming the blob and the image, and changes nothing", function () {
    const diff = path.join(temp("diff-"), "images");
    writeDifferentialArchive(full, path.join(theirs, "images.lock.json"), diff);
    const stranger = path.join(temp("stranger-"), "images");
    writeLayout(stranger, [busybox]);
    const before = readFileSync(path.join(stranger, "index.json"), "utf8");
    // Remove the shared base layer the differential relies on.
    const dir = path.join(stranger, "blobs", "sha256");
    for (const hex of readdirSync(dir)) {
      if (readFileSync(path.join(dir, hex)).equals(base)) rmSync(path.join(dir, hex));
    }
    assert.throws(
      () => applyDifferentialArchive(diff, stranger),
      /lacks blob sha256:[0-9a-f]{64} that registry\.k8s\.io\/e2e-test-images\/(agnhost|busybox)\S* needs: this differential was made against another lock file/,
    );
    assert.equal(readFileSync(path.join(stranger, "index.json"), "utf8"), before);
  });

  it("refuses a tampered blob before the index or the lock change", function () {
    const diff = path.join(temp("diff-"), "images");
    const manifest = writeDifferentialArchive(full, path.join(theirs, "images.lock.json"), diff);
    const dir = path.join(diff, "blobs", "sha256");
    const largest = readdirSync(dir).sort(
      (a, b) => readFileSync(path.join(dir, b)).length - readFileSync(path.join(dir, a)).length,
    )[0];
    const bytes = readFileSync(path.join(dir, largest));
    bytes[10] ^= 0xff;
    writeFileSync(path.join(dir, largest), bytes);
    const target = path.join(temp("target-"), "images");
    cpSync(theirs, target, { recursive: true });
    const lockBefore = readFileSync(path.join(target, "images.lock.json"), "utf8");
    assert.throws(() => applyDifferentialArchive(diff, target), /is corrupt or tampered with/);
    assert.equal(readFileSync(path.join(target, "images.lock.json"), "utf8"), lockBefore);
    assert.equal(manifest.images.length, 2);
    assert.deepEqual(
      readdirSync(target).filter((name) => name.includes(".tmp-")),
      [],
    );
  });

  it("will not write into a directory that holds something", function () {
    const diff = temp("diff-");
    writeFileSync(path.join(diff, "x"), "");
    assert.throws(
      () => writeDifferentialArchive(full, path.join(theirs, "images.lock.json"), diff),
      /is not empty/,
    );
  });
});
