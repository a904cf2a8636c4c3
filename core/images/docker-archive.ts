/**
 * A multi-image docker-archive (the `docker save` format) built from an OCI image layout: the
 * one tarball that `ctr images import`, `podman load` and k3s/rke2's `agent/images/` all read
 * with the images' names. Pure: no I/O; the caller reads the blobs and writes the bytes.
 *
 * The tarball is deterministic: the same images give the same bytes (fixed header fields, blobs
 * in digest order, `manifest.json` first), so its sha256 identifies its content.
 */

import { entryMatchesPlatform, type IndexEntry } from "./platforms";
import { canonicalImageReference, parseImageReference } from "./reference";

export class DockerArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DockerArchiveError";
  }
}

/** A manifest or index as stored in an OCI layout (only the fields read here). */
export interface ManifestDocument {
  mediaType?: string;
  manifests?: IndexEntry[];
  config?: { mediaType?: string; digest: string; size: number };
  layers?: { mediaType?: string; digest: string; size: number }[];
}

const indexTypes = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
];

/** Whether a manifest document is an index (multi-platform) rather than one image. */
export function isIndexDocument(document: ManifestDocument): boolean {
  return Array.isArray(document.manifests) || indexTypes.includes(document.mediaType ?? "");
}

/**
 * The manifest to take from an index for `platform`: the first entry that matches, as a pull
 * does. The error names the image and the platforms the index offers.
 */
export function platformManifestOf(
  index: ManifestDocument,
  platform: string,
  image: string,
): IndexEntry {
  const entries = index.manifests ?? [];
  const found = entries.find((entry) => entryMatchesPlatform(entry, platform));
  if (found) return found;
  const offered = entries
    .map((entry) => entry.platform)
    .filter((p) => p?.os && p.os !== "unknown")
    .map((p) => [p!.os, p!.architecture, p!.variant].filter(Boolean).join("/"));
  throw new DockerArchiveError(
    `${image}: the archive has no ${platform} image of it (it holds ${offered.join(", ") || "no platform"}); set imagesPlatform to the nodes' platform`,
  );
}

/** Whether an image config (os/architecture/variant) is for `platform`. */
export function configMatchesPlatform(
  config: { os?: string; architecture?: string; variant?: string },
  platform: string,
): boolean {
  return entryMatchesPlatform({ digest: "", size: 0, platform: config }, platform);
}

/**
 * The name a docker-archive carries for an image (`RepoTags`): its canonical name with its tag.
 * A reference pinned by digest alone has no tag to carry: undefined.
 */
export function repoTagOf(source: string): string | undefined {
  const reference = parseImageReference(source);
  if (reference.tag === undefined) return undefined;
  return canonicalImageReference({ ...reference, digest: undefined });
}

/** Layer media types the importers read (gzip or uncompressed tar). */
export function isImportableLayer(mediaType: string | undefined): boolean {
  return (
    mediaType === undefined ||
    /^application\/vnd\.(oci\.image|docker\.image\.rootfs)\.(layer\.v1\.tar|diff\.tar)(\.gzip|\+gzip)?$/.test(
      mediaType,
    )
  );
}

/** One image of the tarball: its name and the blobs of the chosen platform. */
export interface ArchiveImage {
  repoTag: string;
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
}

/** A blob as a tar member: `blobs/sha256/<hex>`, as `docker save` (Docker 25+) names them. */
export function blobMemberName(digest: string): string {
  const [algorithm, hex] = digest.split(":");
  if (algorithm !== "sha256" || !/^[0-9a-f]{64}$/.test(hex ?? "")) {
    throw new DockerArchiveError(`unsupported or malformed digest '${digest}'`);
  }
  return `blobs/sha256/${hex}`;
}

/** What the tarball holds, in order: `manifest.json`, then every blob once, by digest. */
export interface DockerArchivePlan {
  manifestJson: string;
  blobs: { digest: string; size: number; member: string }[];
  /** The names it carries, sorted. */
  repoTags: string[];
}

/** The tarball's members for a set of images (any order in; a deterministic plan out). */
export function planDockerArchive(images: readonly ArchiveImage[]): DockerArchivePlan {
  if (images.length === 0) throw new DockerArchiveError("no image to put in the tarball");
  const sorted = [...images].sort((a, b) => (a.repoTag < b.repoTag ? -1 : 1));
  for (let index = 1; index < sorted.length; index++) {
    if (sorted[index].repoTag === sorted[index - 1].repoTag) {
      throw new DockerArchiveError(`${sorted[index].repoTag}: named twice`);
    }
  }
  const blobs = new Map<string, { digest: string; size: number; member: string }>();
  for (const image of sorted) {
    for (const blob of [image.config, ...image.layers]) {
      const known = blobs.get(blob.digest);
      if (known && known.size !== blob.size) {
        throw new DockerArchiveError(
          `${image.repoTag}: blob ${blob.digest} has size ${blob.size} here and ${known.size} elsewhere`,
        );
      }
      blobs.set(blob.digest, { ...blob, member: blobMemberName(blob.digest) });
    }
  }
  const manifest = sorted.map((image) => ({
    Config: blobMemberName(image.config.digest),
    RepoTags: [image.repoTag],
    Layers: image.layers.map((layer) => blobMemberName(layer.digest)),
  }));
  return {
    manifestJson: `${JSON.stringify(manifest)}\n`,
    blobs: [...blobs.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1)),
    repoTags: sorted.map((image) => image.repoTag),
  };
}

export const tarBlockSize = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/**
 * A ustar header for a regular file: mode 0644, owner 0:0, mtime 0, no user or group names.
 * Fixed fields, so the same member always gives the same bytes.
 */
export function tarFileHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) > 100 || !/^[A-Za-z0-9._/-]+$/.test(name)) {
    throw new DockerArchiveError(`tar member name '${name}' is not a short plain path`);
  }
  if (!Number.isSafeInteger(size) || size < 0 || size >= 8 ** 11) {
    throw new DockerArchiveError(`tar member ${name}: size ${size} is out of range`);
  }
  const header = Buffer.alloc(tarBlockSize, 0);
  header.write(name, 0, 100, "utf8");
  header.write(octal(0o644, 8), 100, 8, "ascii");
  header.write(octal(0, 8), 108, 8, "ascii");
  header.write(octal(0, 8), 116, 8, "ascii");
  header.write(octal(size, 12), 124, 12, "ascii");
  header.write(octal(0, 12), 136, 12, "ascii");
  header.write("        ", 148, 8, "ascii");
  header.write("0", 156, 1, "ascii");
  header.write("ustar\0", 257, 6, "ascii");
  header.write("00", 263, 2, "ascii");
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return header;
}

/** Zero bytes that fill a member of `size` bytes up to a whole block. */
export function tarPadding(size: number): Buffer {
  const rest = size % tarBlockSize;
  return Buffer.alloc(rest === 0 ? 0 : tarBlockSize - rest, 0);
}

/** The end of a tar stream: two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * tarBlockSize, 0);
}
