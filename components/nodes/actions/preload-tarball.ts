import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  createReadStream,
} from "node:fs";
import * as path from "node:path";
import {
  DockerArchiveError,
  configMatchesPlatform,
  isImportableLayer,
  isIndexDocument,
  planDockerArchive,
  platformManifestOf,
  repoTagOf,
  tarEnd,
  tarFileHeader,
  tarPadding,
  type ArchiveImage,
  type ManifestDocument,
} from "../../../core/images/docker-archive";

/**
 * Writes the preload tarball on the machine running Pulumi: the chosen platform of every image
 * of an OCI layout archive (the export written by `imagesDestination: archive`) as one
 * docker-archive, each image under its upstream name. Every blob is checked against its digest
 * while it is copied; the file appears (renamed into place) only once it is whole.
 */

const refNameAnnotation = "org.opencontainers.image.ref.name";

export interface PreloadTarballRequest {
  /** The OCI layout directory (with images.lock.json beside index.json). */
  archiveDirectory: string;
  /** The images to put in, by canonical upstream name, with the digest the lock file pins. */
  images: { source: string; digest: string }[];
  /** The nodes' platform, os/arch[/variant]. */
  platform: string;
  /** Where the tarball is written (created if missing). */
  outputDirectory: string;
}

export interface PreloadTarball {
  /** The tarball: `<outputDirectory>/preload-<sha256 prefix>.tar` (relative when the directory is). */
  file: string;
  /** sha256 of the whole tarball (hex). */
  sha256: string;
  size: number;
  /** The names the tarball carries (its RepoTags), sorted. */
  repoTags: string[];
  /** Images left out, with the reason (referenced by digest alone: a docker-archive carries tags). */
  skipped: { image: string; reason: string }[];
}

/** The file name a tarball of this sha256 gets. */
export function preloadTarballName(sha256: string): string {
  return `preload-${sha256.slice(0, 16)}.tar`;
}

function blobFile(directory: string, digest: string): string {
  const [algorithm, hex] = digest.split(":");
  if (algorithm !== "sha256" || !/^[0-9a-f]{64}$/.test(hex ?? "")) {
    throw new DockerArchiveError(`unsupported or malformed digest '${digest}'`);
  }
  return path.join(directory, "blobs", algorithm, hex);
}

/** A small blob (manifest, index, config), checked against its digest. */
function readVerifiedJson<T>(directory: string, digest: string, image: string): T {
  const file = blobFile(directory, digest);
  if (!existsSync(file)) {
    throw new DockerArchiveError(
      `${image}: blob ${digest} is missing from the archive ${directory}`,
    );
  }
  const bytes = readFileSync(file);
  const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  if (actual !== digest) {
    throw new DockerArchiveError(
      `${image}: blob ${digest} is corrupt or tampered with (its content hashes to ${actual}); re-export the archive`,
    );
  }
  return JSON.parse(bytes.toString("utf8")) as T;
}

/** The image of `platform` for each requested name, read from the layout (manifests only). */
export function resolveArchiveImages(request: PreloadTarballRequest): {
  images: ArchiveImage[];
  skipped: PreloadTarball["skipped"];
} {
  const directory = request.archiveDirectory;
  const indexFile = path.join(directory, "index.json");
  if (!existsSync(indexFile)) {
    throw new DockerArchiveError(`${directory} is not an OCI image layout (no index.json)`);
  }
  const index = JSON.parse(readFileSync(indexFile, "utf8")) as ManifestDocument;
  const byName = new Map<string, string>();
  for (const entry of index.manifests ?? []) {
    const name = entry.annotations?.[refNameAnnotation];
    if (name) byName.set(name, entry.digest);
  }
  const images: ArchiveImage[] = [];
  const skipped: PreloadTarball["skipped"] = [];
  for (const { source, digest } of request.images) {
    const repoTag = repoTagOf(source);
    if (repoTag === undefined) {
      skipped.push({
        image: source,
        reason: "referenced by digest alone; a preload tarball names images by tag",
      });
      continue;
    }
    const archived = byName.get(source);
    if (!archived) throw new DockerArchiveError(`${source}: not in the archive ${directory}`);
    if (archived !== digest) {
      throw new DockerArchiveError(
        `${source}: the archive holds ${archived}, its lock file says ${digest}`,
      );
    }
    let document = readVerifiedJson<ManifestDocument>(directory, archived, source);
    if (isIndexDocument(document)) {
      const entry = platformManifestOf(document, request.platform, source);
      document = readVerifiedJson<ManifestDocument>(directory, entry.digest, source);
    }
    if (!document.config || !Array.isArray(document.layers)) {
      throw new DockerArchiveError(`${source}: ${archived} is not an image manifest`);
    }
    const config = readVerifiedJson<{ os?: string; architecture?: string; variant?: string }>(
      directory,
      document.config.digest,
      source,
    );
    if (!configMatchesPlatform(config, request.platform)) {
      throw new DockerArchiveError(
        `${source}: the archive holds a ${[config.os, config.architecture, config.variant].filter(Boolean).join("/")} image, not ${request.platform}; set imagesPlatform to the nodes' platform`,
      );
    }
    for (const layer of document.layers) {
      if (!isImportableLayer(layer.mediaType)) {
        throw new DockerArchiveError(
          `${source}: layer ${layer.digest} is ${layer.mediaType}, which ctr import and podman load do not read from a docker-archive; preload from the mirror instead`,
        );
      }
    }
    images.push({
      repoTag,
      config: { digest: document.config.digest, size: document.config.size },
      layers: document.layers.map((layer) => ({ digest: layer.digest, size: layer.size })),
    });
  }
  return { images, skipped };
}

async function copyBlob(
  out: number,
  file: string,
  blob: { digest: string; size: number },
  tarHash: ReturnType<typeof createHash>,
): Promise<void> {
  const blobHash = createHash("sha256");
  let copied = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    copied += chunk.length;
    if (copied > blob.size) break;
    blobHash.update(chunk);
    tarHash.update(chunk);
    writeSync(out, chunk);
  }
  const actual = `sha256:${blobHash.digest("hex")}`;
  if (copied !== blob.size || actual !== blob.digest) {
    throw new DockerArchiveError(
      `blob ${blob.digest} in the archive is corrupt or tampered with (${copied === blob.size ? `its content hashes to ${actual}` : `its size is not ${blob.size}`}); re-export the archive`,
    );
  }
}

/**
 * Writes the tarball. The same archive, images and platform give the same bytes, and so the
 * same file name and sha256. An existing tarball of the same sha256 is left as it is.
 */
export async function writePreloadTarball(request: PreloadTarballRequest): Promise<PreloadTarball> {
  const { images, skipped } = resolveArchiveImages(request);
  const plan = planDockerArchive(images);
  mkdirSync(request.outputDirectory, { recursive: true });
  const temporary = path.join(
    request.outputDirectory,
    `.preload-${process.pid}-${Date.now()}.tar.tmp`,
  );
  const hash = createHash("sha256");
  const out = openSync(temporary, "w", 0o644);
  let size = 0;
  const write = (bytes: Buffer) => {
    hash.update(bytes);
    writeSync(out, bytes);
    size += bytes.length;
  };
  try {
    const manifest = Buffer.from(plan.manifestJson, "utf8");
    write(tarFileHeader("manifest.json", manifest.length));
    write(manifest);
    write(tarPadding(manifest.length));
    for (const blob of plan.blobs) {
      const file = blobFile(request.archiveDirectory, blob.digest);
      if (!existsSync(file)) {
        throw new DockerArchiveError(
          `blob ${blob.digest} is missing from the archive ${request.archiveDirectory}`,
        );
      }
      write(tarFileHeader(blob.member, blob.size));
      await copyBlob(out, file, blob, hash);
      size += blob.size;
      write(tarPadding(blob.size));
    }
    write(tarEnd());
  } catch (error) {
    closeSync(out);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(out);
  const sha256 = hash.digest("hex");
  const file = path.join(request.outputDirectory, preloadTarballName(sha256));
  renameSync(temporary, file);
  return { file, sha256, size, repoTags: plan.repoTags, skipped };
}

/** Removes a tarball this action wrote (and temporary files a run cut short left beside it). */
export function removePreloadTarball(file: string): void {
  rmSync(file, { force: true });
  const directory = path.dirname(file);
  if (!existsSync(directory)) return;
  for (const name of readdirSync(directory)) {
    if (/^\.preload-\d+-\d+\.tar\.tmp$/.test(name)) {
      const stale = path.join(directory, name);
      // Only leftovers older than an hour: another run may be writing one right now.
      if (Date.now() - statSync(stale).mtimeMs > 3600_000) rmSync(stale, { force: true });
    }
  }
}
