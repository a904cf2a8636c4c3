import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { renderLock } from "../../../components/mirror/actions/archive";

/**
 * Writes an OCI image layout as skopeo `copy --all` into `oci:DIR:NAME` writes it: blobs under
 * blobs/sha256, index.json naming each image by `org.opencontainers.image.ref.name`, an image
 * index per multi-platform image, and the lock file this tool writes beside it.
 */
export interface LayoutImage {
  name: string;
  /** One entry per platform (`os/arch`); a single entry without `index` is a plain manifest. */
  platforms: { platform: string; layers: Buffer[] }[];
  index?: boolean;
}

export interface WrittenDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export function writeBlob(
  directory: string,
  content: Buffer | string,
  mediaType: string,
): WrittenDescriptor {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content);
  const hex = createHash("sha256").update(bytes).digest("hex");
  mkdirSync(path.join(directory, "blobs", "sha256"), { recursive: true });
  writeFileSync(path.join(directory, "blobs", "sha256", hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

export function writeLayout(directory: string, images: LayoutImage[]): Record<string, string> {
  mkdirSync(directory, { recursive: true });
  writeFileSync(path.join(directory, "oci-layout"), '{"imageLayoutVersion": "1.0.0"}');
  const manifests: object[] = [];
  const digests: Record<string, string> = {};
  for (const image of images) {
    const platformManifests = image.platforms.map(({ platform, layers }) => {
      const [os, architecture] = platform.split("/");
      const config = writeBlob(
        directory,
        JSON.stringify({
          architecture,
          os,
          rootfs: { type: "layers", diff_ids: [] },
          image: image.name,
        }),
        "application/vnd.oci.image.config.v1+json",
      );
      const manifest = writeBlob(
        directory,
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config,
          layers: layers.map((layer) =>
            writeBlob(directory, layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
          ),
        }),
        "application/vnd.oci.image.manifest.v1+json",
      );
      return { ...manifest, platform: { os, architecture } };
    });
    let top: WrittenDescriptor;
    if (image.index === false || (image.index === undefined && image.platforms.length === 1)) {
      const { mediaType, digest, size } = platformManifests[0];
      top = { mediaType, digest, size };
    } else {
      top = writeBlob(
        directory,
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: platformManifests,
        }),
        "application/vnd.oci.image.index.v1+json",
      );
    }
    manifests.push({ ...top, annotations: { "org.opencontainers.image.ref.name": image.name } });
    digests[image.name] = top.digest;
  }
  writeFileSync(
    path.join(directory, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests }),
  );
  writeFileSync(
    path.join(directory, "images.lock.json"),
    renderLock(Object.entries(digests).map(([source, digest]) => ({ source, digest }))),
  );
  return digests;
}

/** Deterministic pseudo-random bytes (incompressible, so sizes are what they say). */
export function bytesOf(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let block = Buffer.alloc(0);
  for (let offset = 0; offset < length; offset += 32) {
    block = createHash("sha256").update(seed).update(block).update(String(offset)).digest();
    block.copy(out, offset, 0, Math.min(32, length - offset));
  }
  return out;
}
