import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { ArchiveError } from "./archive";

/**
 * How big an image set is on the media, from the manifests alone (no layer is read): per image,
 * per platform, the naive total (each image on its own) and the real one (each blob once, as an
 * OCI layout stores it). Shown before anything is written.
 */

const refNameAnnotation = "org.opencontainers.image.ref.name";

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ManifestDocument {
  mediaType?: string;
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/** Reads a manifest, index or image config (JSON blobs) by digest. */
export type ManifestReader = (digest: string) => ManifestDocument | Promise<ManifestDocument>;

export interface PlatformSize {
  /** `os/arch[/variant]`, or "unknown" when neither the index nor the config says. */
  platform: string;
  /** Manifest, config and layers of this platform's image. */
  bytes: number;
}

export interface ImageSize {
  /** The image's name in the set. */
  image: string;
  digest: string;
  platforms: PlatformSize[];
  /** Every blob of the image once (an index shares nothing between platforms but may reuse layers). */
  bytes: number;
}

export interface SizeReport {
  images: ImageSize[];
  /** Per platform over all images, each blob once. */
  platforms: Record<string, number>;
  /** The images one by one, as separate tarballs would hold them. */
  naiveBytes: number;
  /** Each blob once: what an OCI layout (the archive) holds. */
  totalBytes: number;
}

function platformName(descriptor: Descriptor): string {
  const platform = descriptor.platform;
  if (!platform?.os || !platform.architecture) return "unknown";
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

/** A single-platform manifest names its platform only in its config. */
async function configPlatform(
  manifest: ManifestDocument,
  readManifest: ManifestReader,
): Promise<string> {
  if (!manifest.config) return "unknown";
  const config = (await readManifest(manifest.config.digest)) as {
    os?: string;
    architecture?: string;
    variant?: string;
  };
  return platformName({ ...manifest.config, platform: config });
}

function isIndex(document: ManifestDocument): boolean {
  return Array.isArray(document.manifests);
}

/**
 * The size report of images given as (name, top-level descriptor). Blob sizes come from the
 * descriptors, so only manifests are read. Pure given the reader.
 */
export async function measureImages(
  images: readonly { image: string; descriptor: Descriptor; readManifest?: ManifestReader }[],
  defaultReader?: ManifestReader,
): Promise<SizeReport> {
  const everyBlob = new Map<string, number>();
  const platformBlobs = new Map<string, Map<string, number>>();
  const measured: ImageSize[] = [];
  for (const { image, descriptor, readManifest = defaultReader! } of images) {
    const imageBlobs = new Map<string, number>([[descriptor.digest, descriptor.size]]);
    const top = await readManifest(descriptor.digest);
    const platformManifests: { platform: string; descriptor: Descriptor }[] = isIndex(top)
      ? top.manifests!.map((child) => ({ platform: platformName(child), descriptor: child }))
      : [{ platform: await configPlatform(top, readManifest), descriptor }];
    const platforms: PlatformSize[] = [];
    for (const { platform, descriptor: manifestDescriptor } of platformManifests) {
      const manifest =
        manifestDescriptor === descriptor ? top : await readManifest(manifestDescriptor.digest);
      const blobs: Descriptor[] = [manifestDescriptor];
      if (manifest.config) blobs.push(manifest.config);
      blobs.push(...(manifest.layers ?? []));
      const perPlatform = platformBlobs.get(platform) ?? new Map<string, number>();
      platformBlobs.set(platform, perPlatform);
      let bytes = 0;
      const seen = new Set<string>();
      for (const blob of blobs) {
        if (seen.has(blob.digest)) continue;
        seen.add(blob.digest);
        bytes += blob.size;
        imageBlobs.set(blob.digest, blob.size);
        perPlatform.set(blob.digest, blob.size);
      }
      platforms.push({ platform, bytes });
    }
    for (const [digest, size] of imageBlobs) everyBlob.set(digest, size);
    measured.push({
      image,
      digest: descriptor.digest,
      platforms,
      bytes: [...imageBlobs.values()].reduce((sum, size) => sum + size, 0),
    });
  }
  const sum = (blobs: Map<string, number>) => [...blobs.values()].reduce((a, b) => a + b, 0);
  return {
    images: measured,
    platforms: Object.fromEntries(
      [...platformBlobs]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, blobs]) => [name, sum(blobs)]),
    ),
    naiveBytes: measured.reduce((total, image) => total + image.bytes, 0),
    totalBytes: sum(everyBlob),
  };
}

/** The size report of every image in an OCI layout directory (the archive). */
export function measureArchive(directory: string): Promise<SizeReport> {
  const indexFile = path.join(directory, "index.json");
  if (!existsSync(indexFile)) {
    throw new ArchiveError(`${directory} is not an OCI image layout (no index.json)`);
  }
  const index = JSON.parse(readFileSync(indexFile, "utf8")) as ManifestDocument;
  const images = (index.manifests ?? []).map((descriptor) => ({
    image: descriptor.annotations?.[refNameAnnotation] ?? descriptor.digest,
    descriptor,
  }));
  return measureImages(images, (digest) => {
    const [algorithm, hex] = digest.split(":");
    const file = path.join(directory, "blobs", algorithm, hex ?? "");
    if (!/^[0-9a-f]{64}$/.test(hex ?? "") || !existsSync(file)) {
      throw new ArchiveError(`${directory}: blob ${digest} is missing from the archive`);
    }
    return JSON.parse(readFileSync(file, "utf8")) as ManifestDocument;
  });
}

/** Bytes for people: 1.5 GiB, 300.0 MiB, 12.0 KiB, 512 B. Pure. */
export function humanBytes(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = "B";
  for (const next of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(1)} ${unit}`;
}

/** The report as text: a line per image and platform, then per platform and the totals. Pure. */
export function renderSizeReport(
  report: SizeReport & {
    unmeasured?: readonly { image: string; reason: string }[];
    companions?: readonly { image: string; kind: string; reference: string }[];
    droppedCompanions?: readonly { reference: string }[];
  },
): string {
  const lines = ["size per image (each platform: manifest, config and layers):"];
  for (const image of report.images) {
    lines.push(`  ${image.image}  ${humanBytes(image.bytes)}`);
    for (const platform of image.platforms) {
      lines.push(`    ${platform.platform}  ${humanBytes(platform.bytes)}`);
    }
  }
  lines.push("size per platform (each blob once):");
  for (const [platform, bytes] of Object.entries(report.platforms)) {
    lines.push(`  ${platform}  ${humanBytes(bytes)}`);
  }
  lines.push(
    `total: ${humanBytes(report.totalBytes)} (${report.totalBytes} bytes) with each blob once; ` +
      `${humanBytes(report.naiveBytes)} image by image, ${humanBytes(report.naiveBytes - report.totalBytes)} saved by shared blobs`,
  );
  const dropped = new Set((report.droppedCompanions ?? []).map((entry) => entry.reference));
  for (const companion of report.companions ?? []) {
    lines.push(
      `${dropped.has(companion.reference) ? "dropped" : "carried"} ${companion.kind} of ${companion.image}: ${companion.reference}`,
    );
  }
  if (dropped.size > 0) {
    lines.push(
      "dropped ones are not in the image set; add tag names to imagesExtra or an image list to carry them (referrers found through the API cannot be copied by name)",
    );
  }
  for (const entry of report.unmeasured ?? []) {
    lines.push(`not measured: ${entry.image} (${entry.reason})`);
  }
  return `${lines.join("\n")}\n`;
}
