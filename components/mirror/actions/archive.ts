import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as path from "node:path";

/**
 * The archive carried across the gap: one OCI image layout directory (blobs shared between
 * images are stored once), each image under its canonical upstream name as
 * `org.opencontainers.image.ref.name`, plus a lock file recording each image's digest.
 * Import verifies every blob against its digest before anything is pushed.
 */

export const lockFileName = "images.lock.json";
const refNameAnnotation = "org.opencontainers.image.ref.name";

export interface LockedImage {
  /** Canonical upstream name, e.g. registry.k8s.io/pause:3.10. */
  source: string;
  /** Digest of the manifest or index the name points to. */
  digest: string;
}

export interface LockDocument {
  lockVersion: 1;
  images: LockedImage[];
}

/** The lock document for a set of images, sorted by source. Pure. */
export function lockDocument(images: LockedImage[]): LockDocument {
  const sorted = [...images].sort((a, b) =>
    a.source < b.source ? -1 : a.source > b.source ? 1 : 0,
  );
  return { lockVersion: 1, images: sorted.map(({ source, digest }) => ({ source, digest })) };
}

export function renderLock(images: LockedImage[]): string {
  return `${JSON.stringify(lockDocument(images), null, 2)}\n`;
}

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArchiveError";
  }
}

/** Parses a lock file; the error names the file and what is wrong. Pure. */
export function parseLock(text: string, file: string): LockDocument {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ArchiveError(`${file}: not JSON (${(error as Error).message})`);
  }
  const lock = document as Partial<LockDocument>;
  if (lock?.lockVersion !== 1 || !Array.isArray(lock.images)) {
    throw new ArchiveError(
      `${file}: not an image lock (expected lockVersion 1 and an images list)`,
    );
  }
  for (const [index, image] of lock.images.entries()) {
    if (typeof image?.source !== "string" || !/^sha256:[0-9a-f]{64}$/.test(String(image?.digest))) {
      throw new ArchiveError(`${file}: images[${index}] needs a source and a sha256 digest`);
    }
  }
  return lock as LockDocument;
}

export function readLock(directory: string): LockDocument {
  const file = path.join(directory, lockFileName);
  if (!existsSync(file)) {
    throw new ArchiveError(
      `${directory} has no ${lockFileName}; export the archive with this tool, or pin digests yourself`,
    );
  }
  return parseLock(readFileSync(file, "utf8"), file);
}

/** Writes the lock file atomically (temp file + rename). */
export function writeLock(directory: string, images: LockedImage[]): string {
  const file = path.join(directory, lockFileName);
  const temporary = `${file}.tmp-${process.pid}`;
  writeFileSync(temporary, renderLock(images));
  renameSync(temporary, file);
  return file;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

function blobPath(directory: string, digest: string): string {
  const [algorithm, hex] = digest.split(":");
  if (algorithm !== "sha256" || !/^[0-9a-f]{64}$/.test(hex ?? "")) {
    throw new ArchiveError(`unsupported or malformed digest '${digest}'`);
  }
  return path.join(directory, "blobs", algorithm, hex);
}

function sha256OfFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(`sha256:${hash.digest("hex")}`));
  });
}

/** Digest of the image stored under `refName` in the layout's index.json. */
export function archivedDigest(directory: string, refName: string): string | undefined {
  const indexFile = path.join(directory, "index.json");
  if (!existsSync(indexFile)) return undefined;
  const index = JSON.parse(readFileSync(indexFile, "utf8")) as { manifests?: Descriptor[] };
  return index.manifests?.find((entry) => entry.annotations?.[refNameAnnotation] === refName)
    ?.digest;
}

/**
 * Checks that the image `refName` is in the archive with `expectedDigest` and that every blob it
 * references (index, manifests, configs, layers) is present and hashes to its digest. Blobs
 * already verified in `verified` are not hashed again (shared base layers).
 */
export async function verifyArchivedImage(
  directory: string,
  refName: string,
  expectedDigest: string | undefined,
  verified: Set<string> = new Set(),
): Promise<string> {
  const digest = archivedDigest(directory, refName);
  if (!digest) throw new ArchiveError(`${refName}: not in the archive ${directory}`);
  if (expectedDigest && digest !== expectedDigest) {
    throw new ArchiveError(
      `${refName}: the archive holds ${digest}, the lock says ${expectedDigest}`,
    );
  }
  const pending: Descriptor[] = [{ digest }];
  while (pending.length > 0) {
    const descriptor = pending.pop()!;
    const key = `${path.resolve(directory)}@${descriptor.digest}`;
    if (verified.has(key)) continue;
    const file = blobPath(directory, descriptor.digest);
    if (!existsSync(file)) {
      throw new ArchiveError(`${refName}: blob ${descriptor.digest} is missing from the archive`);
    }
    const actual = await sha256OfFile(file);
    if (actual !== descriptor.digest) {
      throw new ArchiveError(
        `${refName}: blob ${descriptor.digest} is corrupt or tampered with (its content hashes to ${actual}); re-export the archive`,
      );
    }
    verified.add(key);
    const isManifest =
      descriptor.mediaType === undefined || /manifest|index|list/.test(descriptor.mediaType ?? "");
    if (!isManifest) continue;
    const document = JSON.parse(readFileSync(file, "utf8")) as {
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    for (const child of document.manifests ?? []) pending.push(child);
    if (document.config) pending.push({ ...document.config, mediaType: "config" });
    for (const layer of document.layers ?? []) pending.push({ ...layer, mediaType: "layer" });
  }
  return digest;
}
