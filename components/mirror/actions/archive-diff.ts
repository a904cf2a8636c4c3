import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as path from "node:path";
import {
  ArchiveError,
  lockDocument,
  lockFileName,
  parseLock,
  readLock,
  renderLock,
  type LockDocument,
  type LockedImage,
} from "./archive";

/**
 * Differential archives for slow links: given the other side's images.lock.json, a full export
 * is cut down to the images the other side lacks (new, or at another digest) and, of their
 * blobs, only those not already held by an image the other side has. Applying it on top of the
 * other side's archive checks that every blob it relies on is there, copies the new blobs in and
 * verifies each new image before the index and the lock change.
 */

export const differentialFileName = "differential.json";
const refNameAnnotation = "org.opencontainers.image.ref.name";

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

export interface RequiredBlob {
  digest: string;
  image: string;
  heldBy?: string[];
}

export interface DifferentialManifest {
  differentialVersion: 1;
  /** sha256 of the other side's lock file the differential was made against. */
  baseLockSha256: string;
  /** Images carried (new or changed), with their digests. */
  images: LockedImage[];
  /** Images the other side keeps as they are. */
  unchanged: string[];
  /** The same images with the digests the other side's lock pins (what a mirror must serve). */
  kept?: LockedImage[];
  /**
   * Blobs the carried images use but the differential leaves out: the other side has them.
   * `image` is the first carried image that needs the blob; `heldBy` names the images the other
   * side keeps that hold it (where an apply onto a mirror mounts it from).
   */
  requiredBlobs: RequiredBlob[];
  /** Blobs carried, and their bytes. */
  blobCount: number;
  blobBytes: number;
}

export function blobFile(directory: string, digest: string): string {
  const [algorithm, hex] = digest.split(":");
  if (algorithm !== "sha256" || !/^[0-9a-f]{64}$/.test(hex ?? "")) {
    throw new ArchiveError(`unsupported or malformed digest '${digest}'`);
  }
  return path.join(directory, "blobs", algorithm, hex);
}

/** Every blob of an image (index, manifests, configs, layers) from the layout. */
function blobsOf(directory: string, digest: string): Map<string, number> {
  const blobs = new Map<string, number>();
  const pending: Descriptor[] = [{ digest, mediaType: "manifest" }];
  while (pending.length > 0) {
    const descriptor = pending.pop()!;
    if (blobs.has(descriptor.digest)) continue;
    const file = blobFile(directory, descriptor.digest);
    if (!existsSync(file)) {
      throw new ArchiveError(`${directory}: blob ${descriptor.digest} is missing`);
    }
    const content = readFileSync(file);
    blobs.set(descriptor.digest, content.length);
    if (!/manifest|index|list/.test(descriptor.mediaType ?? "")) continue;
    const document = JSON.parse(content.toString("utf8")) as {
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    for (const child of document.manifests ?? []) pending.push({ ...child, mediaType: "manifest" });
    if (document.config) pending.push({ ...document.config, mediaType: "config" });
    for (const layer of document.layers ?? []) pending.push({ ...layer, mediaType: "layer" });
  }
  return blobs;
}

export function readIndex(directory: string): { schemaVersion?: number; manifests: Descriptor[] } {
  const file = path.join(directory, "index.json");
  if (!existsSync(file))
    throw new ArchiveError(`${directory} is not an OCI image layout (no index.json)`);
  const index = JSON.parse(readFileSync(file, "utf8")) as { manifests?: Descriptor[] };
  return { ...index, manifests: index.manifests ?? [] };
}

function writeAtomically(file: string, content: string): void {
  writeFileSync(`${file}.tmp-${process.pid}`, content);
  renameSync(`${file}.tmp-${process.pid}`, file);
}

/**
 * Writes into `out` (new or empty) the part of the full archive the other side lacks, judged by
 * its lock file `otherLockFile`.
 */
export function writeDifferentialArchive(
  fullArchive: string,
  otherLockFile: string,
  out: string,
): DifferentialManifest {
  const otherText = readFileSync(otherLockFile, "utf8");
  const other = parseLock(otherText, otherLockFile);
  const full = readLock(fullArchive);
  const index = readIndex(fullArchive);
  const theirs = new Set(other.images.map((image) => `${image.source}@${image.digest}`));
  const carried = full.images.filter((image) => !theirs.has(`${image.source}@${image.digest}`));
  const unchanged = full.images.filter((image) => theirs.has(`${image.source}@${image.digest}`));

  // Blob -> the kept images holding it, by name: the mirror's repositories of those images.
  const held = new Map<string, string[]>();
  for (const image of unchanged) {
    for (const digest of blobsOf(fullArchive, image.digest).keys()) {
      const holders = held.get(digest) ?? [];
      if (!holders.includes(image.source)) holders.push(image.source);
      held.set(digest, holders);
    }
  }

  mkdirSync(out, { recursive: true });
  if (readdirSync(out).length > 0) {
    throw new ArchiveError(
      `${out} is not empty; give a new or empty directory for the differential archive`,
    );
  }
  const written = new Map<string, number>();
  const required = new Map<string, string>();
  for (const image of carried) {
    for (const [digest, size] of blobsOf(fullArchive, image.digest)) {
      if (held.has(digest)) {
        if (!required.has(digest)) required.set(digest, image.source);
        continue;
      }
      if (written.has(digest)) continue;
      const target = blobFile(out, digest);
      mkdirSync(path.dirname(target), { recursive: true });
      copyFileSync(blobFile(fullArchive, digest), target);
      written.set(digest, size);
    }
  }
  const carriedNames = new Set(carried.map((image) => image.source));
  writeFileSync(path.join(out, "oci-layout"), readFileSync(path.join(fullArchive, "oci-layout")));
  writeFileSync(
    path.join(out, "index.json"),
    JSON.stringify({
      ...index,
      manifests: index.manifests.filter((entry) =>
        carriedNames.has(entry.annotations?.[refNameAnnotation] ?? ""),
      ),
    }),
  );
  writeFileSync(path.join(out, lockFileName), renderLock(carried));
  const manifest: DifferentialManifest = {
    differentialVersion: 1,
    baseLockSha256: createHash("sha256").update(otherText).digest("hex"),
    images: lockDocument(carried).images,
    unchanged: unchanged.map((image) => image.source),
    kept: lockDocument(unchanged).images,
    requiredBlobs: [...required].map(([digest, image]) => ({
      digest,
      image,
      heldBy: [...held.get(digest)!].sort(),
    })),
    blobCount: written.size,
    blobBytes: [...written.values()].reduce((sum, size) => sum + size, 0),
  };
  // Written last: a differential without it is incomplete and is refused.
  writeAtomically(path.join(out, differentialFileName), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/**
 * The lock of an archive a stack imports. A differential archive holds only what changed, so it
 * is refused with what to do instead: apply it onto the full archive, or onto the mirror.
 */
export function readImportLock(directory: string): LockDocument {
  if (existsSync(path.join(directory, differentialFileName))) {
    throw new ArchiveError(
      `${directory} is a differential archive (it has ${differentialFileName}): it holds only the images and blobs that changed. ` +
        `Apply it with \`archive-apply ${directory} --onto ARCHIVE_DIR\` onto the archive it was made against and import that, ` +
        `or straight onto the mirror with \`archive-apply ${directory} --onto-registry https://HOST:PORT\``,
    );
  }
  return readLock(directory);
}

/** Reads differential.json; refuses a directory without it (a differential cut short). */
export function readDifferentialManifest(differential: string): DifferentialManifest {
  const manifestFile = path.join(differential, differentialFileName);
  if (!existsSync(manifestFile)) {
    throw new ArchiveError(
      `${differential} has no ${differentialFileName}; it is not a complete differential archive`,
    );
  }
  const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as DifferentialManifest;
  if (manifest.differentialVersion !== 1) {
    throw new ArchiveError(`${manifestFile}: not a differential archive of this tool`);
  }
  return manifest;
}

/**
 * Applies a differential archive on top of the archive it was made against: checks the blobs
 * it relies on are there, copies its blobs in, verifies every carried image, then updates
 * index.json and the lock (each written atomically). Blobs are content-addressed, so a run
 * that stops early leaves the archive as it was, plus unreferenced blobs.
 */
export function applyDifferentialArchive(
  differential: string,
  archive: string,
): DifferentialManifest {
  const manifest = readDifferentialManifest(differential);
  const baseLock = readLock(archive);
  for (const blob of manifest.requiredBlobs) {
    if (!existsSync(blobFile(archive, blob.digest))) {
      throw new ArchiveError(
        `${archive} lacks blob ${blob.digest} that ${blob.image} needs: this differential was made against another lock file (sha256 ${manifest.baseLockSha256})`,
      );
    }
  }
  const blobRoot = path.join(differential, "blobs", "sha256");
  for (const hex of existsSync(blobRoot) ? readdirSync(blobRoot) : []) {
    const target = path.join(archive, "blobs", "sha256", hex);
    if (existsSync(target)) continue;
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(path.join(blobRoot, hex), `${target}.tmp-${process.pid}`);
    renameSync(`${target}.tmp-${process.pid}`, target);
  }
  const incoming = readIndex(differential);
  const index = readIndex(archive);
  const names = new Set(manifest.images.map((image) => image.source));
  const merged = {
    ...index,
    manifests: [
      ...index.manifests.filter(
        (entry) => !names.has(entry.annotations?.[refNameAnnotation] ?? ""),
      ),
      ...incoming.manifests,
    ],
  };
  // Every carried image must be whole in the archive before index.json lists it.
  const stagedIndex = path.join(archive, `index.json.tmp-${process.pid}`);
  writeFileSync(stagedIndex, JSON.stringify(merged));
  const verified = new Set<string>();
  try {
    for (const image of manifest.images) {
      const descriptor = incoming.manifests.find(
        (entry) => entry.annotations?.[refNameAnnotation] === image.source,
      );
      if (descriptor?.digest !== image.digest) {
        throw new ArchiveError(
          `${differential}: ${image.source} is in the lock but not in index.json`,
        );
      }
      verifyImageBlobs(archive, image, verified);
    }
  } catch (error) {
    rmSync(stagedIndex, { force: true });
    throw error;
  }
  renameSync(stagedIndex, path.join(archive, "index.json"));
  const kept = baseLock.images.filter((image) => !names.has(image.source));
  writeAtomically(path.join(archive, lockFileName), renderLock([...kept, ...manifest.images]));
  return manifest;
}

/**
 * Checks that every blob of an image is in the archive and hashes to its digest, without going
 * through index.json (which lists the image only once it is whole).
 */
function verifyImageBlobs(archive: string, image: LockedImage, verified: Set<string>): void {
  for (const digest of blobsOf(archive, image.digest).keys()) {
    if (verified.has(digest)) continue;
    const actual = `sha256:${createHash("sha256")
      .update(readFileSync(blobFile(archive, digest)))
      .digest("hex")}`;
    if (actual !== digest) {
      throw new ArchiveError(
        `${image.source}: blob ${digest} is corrupt or tampered with (its content hashes to ${actual}); make the differential archive again`,
      );
    }
    verified.add(digest);
  }
}
