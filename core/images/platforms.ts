/**
 * Choosing platforms out of a multi-arch index. Pure: no I/O.
 *
 * A platform is `os/arch[/variant]` (linux/amd64, linux/arm64/v8). Without a variant it matches
 * any variant of that os/arch, as `docker pull --platform` does.
 */

import { GO_ARCH } from "./e2e-images";

/** A platform entry of an index (OCI image index / Docker manifest list). */
export interface IndexEntry {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export const platformPattern = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;

/** Whether an index entry is the image for `platform`. */
export function entryMatchesPlatform(entry: IndexEntry, platform: string): boolean {
  const [os, architecture, variant] = platform.split("/");
  if (entry.platform?.os !== os || entry.platform?.architecture !== architecture) return false;
  return variant === undefined || entry.platform?.variant === variant;
}

/**
 * The entries to keep for `platforms`, in the index's order. Throws naming the missing
 * platform and what the index offers when one is absent.
 */
export function selectIndexEntries(
  entries: readonly IndexEntry[],
  platforms: readonly string[],
  image: string,
): IndexEntry[] {
  for (const platform of platforms) {
    if (!entries.some((entry) => entryMatchesPlatform(entry, platform))) {
      const offered = entries
        .map((entry) => entry.platform)
        .filter((p) => p?.os && p.os !== "unknown")
        .map((p) => [p!.os, p!.architecture, p!.variant].filter(Boolean).join("/"));
      throw new Error(
        `${image}: has no ${platform} image; it offers ${offered.join(", ") || "no platform"}`,
      );
    }
  }
  // One entry per requested platform: the first match, as a pull would choose.
  const chosen = new Set(
    platforms.map((platform) => entries.find((entry) => entryMatchesPlatform(entry, platform))!),
  );
  return entries.filter((entry) => chosen.has(entry));
}

/** Bytes of an image manifest's blobs (config and layers), from its JSON. Pure. */
export function manifestBlobBytes(manifest: {
  config?: { size?: number };
  layers?: { size?: number }[];
}): number {
  return (
    (manifest.config?.size ?? 0) +
    (manifest.layers ?? []).reduce((total, layer) => total + (layer.size ?? 0), 0)
  );
}

/**
 * The Linux platform of a machine's architecture (`process.arch`: x64 -> linux/amd64), whatever
 * its own OS: nodes run Linux.
 */
export function linuxPlatformOf(arch: string): string {
  return `linux/${GO_ARCH[arch] ?? arch}`;
}
