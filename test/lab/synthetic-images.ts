import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";

/**
 * Synthetic images written as OCI image layouts (the format skopeo reads with `oci:`), so the
 * lab can seed registries without pulling anything. Layers are real tar files; sharing a base
 * layer between images is expressed by passing the same Layer object.
 */

export interface Blob {
  digest: string;
  size: number;
  bytes: Buffer;
}

export interface Layer extends Blob {
  mediaType: "application/vnd.oci.image.layer.v1.tar+gzip";
  /** Digest of the uncompressed tar (the config's diff_id). */
  diffId: string;
}

export interface Platform {
  os: "linux";
  architecture: string;
}

function blobOf(bytes: Buffer): Blob {
  return {
    digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
    size: bytes.length,
    bytes,
  };
}

/** A gzip tar layer holding files with the given contents (deterministic headers), as real images ship. */
export async function makeLayer(files: Record<string, Buffer | string>): Promise<Layer> {
  const archive = pack();
  for (const [name, content] of Object.entries(files)) {
    archive.entry({ name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, content);
  }
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive) chunks.push(chunk as Buffer);
  const tar = Buffer.concat(chunks);
  // Level 1: random payloads do not compress anyway, and the lab should be quick to build.
  return {
    ...blobOf(gzipSync(tar, { level: 1 })),
    diffId: blobOf(tar).digest,
    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
  };
}

/** A layer of `sizeBytes` random bytes in one file. */
export function makeRandomLayer(name: string, sizeBytes: number): Promise<Layer> {
  return makeLayer({ [name]: randomBytes(sizeBytes) });
}

export interface SyntheticManifest {
  manifest: Blob;
  config: Blob;
  layers: Layer[];
  platform: Platform;
}

/** An image manifest for one platform. */
export function makeManifest(
  layers: Layer[],
  platform: Platform,
  labels: Record<string, string> = {},
): SyntheticManifest {
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: platform.architecture,
        os: platform.os,
        config: { Labels: labels, Cmd: ["/bin/sh"] },
        rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.diffId) },
      }),
    ),
  );
  const manifest = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {
          mediaType: "application/vnd.oci.image.config.v1+json",
          digest: config.digest,
          size: config.size,
        },
        layers: layers.map((layer) => ({
          mediaType: layer.mediaType,
          digest: layer.digest,
          size: layer.size,
        })),
      }),
    ),
  );
  return { manifest, config, layers, platform };
}

export interface SyntheticImage {
  /** The manifest or index the tag points to. */
  top: Blob;
  mediaType:
    "application/vnd.oci.image.manifest.v1+json" | "application/vnd.oci.image.index.v1+json";
  manifests: SyntheticManifest[];
}

export function singlePlatformImage(manifest: SyntheticManifest): SyntheticImage {
  return {
    top: manifest.manifest,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    manifests: [manifest],
  };
}

/** A multi-arch image index over several platform manifests. */
export function multiPlatformImage(manifests: SyntheticManifest[]): SyntheticImage {
  const index = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: manifests.map((entry) => ({
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: entry.manifest.digest,
          size: entry.manifest.size,
          platform: entry.platform,
        })),
      }),
    ),
  );
  return { top: index, mediaType: "application/vnd.oci.image.index.v1+json", manifests };
}

/**
 * Writes images into one OCI layout directory, each under its `org.opencontainers.image.ref.name`
 * (use `oci:<dir>:<refName>` with skopeo).
 */
export function writeOciLayout(dir: string, images: Record<string, SyntheticImage>): void {
  const blobsDir = path.join(dir, "blobs", "sha256");
  mkdirSync(blobsDir, { recursive: true });
  const write = (blob: Blob) =>
    writeFileSync(path.join(blobsDir, blob.digest.slice("sha256:".length)), blob.bytes);
  const entries = [];
  for (const [refName, image] of Object.entries(images)) {
    write(image.top);
    for (const manifest of image.manifests) {
      write(manifest.manifest);
      write(manifest.config);
      manifest.layers.forEach(write);
    }
    entries.push({
      mediaType: image.mediaType,
      digest: image.top.digest,
      size: image.top.size,
      annotations: { "org.opencontainers.image.ref.name": refName },
    });
  }
  writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    path.join(dir, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: entries }),
  );
}
