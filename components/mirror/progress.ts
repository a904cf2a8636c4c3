import { existsSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { selectIndexEntries, type IndexEntry } from "../../core/images/platforms";
import { archivedDigest } from "./actions/archive";
import {
  indexMediaTypes,
  mapWithConcurrency,
  RegistryRequestError,
  sharedRegistryClient,
} from "./actions/registry-client";
import type { CopyLocation, CopyRequest } from "./actions/skopeo";

/**
 * What the mirror tells the user while it works: before copying, how many images are already
 * there and how much is left to move; per copy, its bytes and retries; at the end, a summary.
 * The lines are pure functions of the numbers; the look-ups below them only read.
 */

/** Before copying: the stack's images against what the destination holds. */
export interface TransferPlan {
  total: number;
  present: number;
  toCopy: number;
  /** Bytes of the images to copy, each blob once; undefined when no size could be read. */
  bytes?: number;
  /** Images to copy whose size could not be read (source not reachable from here). */
  unsized: number;
  /** Set when the destination could not be asked (e.g. the registry is not started yet). */
  destinationUnreachable?: string;
}

/** One finished copy, as the provider reports it and keeps it in state. */
export interface CopyReport {
  /** Bytes moved (uploaded to a registry, or the image's blobs in an archive). */
  bytes?: number;
  retries: number;
  seconds: number;
  /** When the copy finished (ISO 8601): tells copies of this update from earlier ones. */
  finishedAt: string;
}

/** `12.3 MB`, in decimal megabytes as registries and `docker images` count. Pure. */
export function megabytes(bytes: number): string {
  const value = bytes / 1e6;
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} MB`;
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;

/** "N images: M already in the mirror, K to copy (X MB)". Pure. */
export function transferPlanLine(plan: TransferPlan, destination = "the mirror"): string {
  let size: string;
  if (plan.toCopy === 0) size = "";
  else if (plan.bytes === undefined) size = " (size unknown: sources not reachable from here)";
  else if (plan.unsized > 0)
    size = ` (${megabytes(plan.bytes)} and ${plural(plan.unsized, "image")} of unknown size)`;
  else size = ` (${megabytes(plan.bytes)})`;
  const note = plan.destinationUnreachable
    ? `; ${destination} could not be asked (${plan.destinationUnreachable}), so every image counts as to copy`
    : "";
  return `${plural(plan.total, "image")}: ${plan.present} already in ${destination}, ${plan.toCopy} to copy${size}${note}`;
}

/** "copied <source>: X MB in Y s, 1 retry". Pure. */
export function copyReportLine(source: string, report: CopyReport): string {
  const size = report.bytes !== undefined ? `${megabytes(report.bytes)} in ` : "";
  const retries =
    report.retries > 0 ? `, ${plural(report.retries, "retry").replace("retrys", "retries")}` : "";
  return `copied ${source}: ${size}${report.seconds.toFixed(1)} s${retries}`;
}

/** The end-of-update summary over every image's last copy. Pure. */
export function transferSummaryLine(
  reports: (CopyReport | undefined)[],
  updateStartedAt: Date,
): string {
  const copied = reports.filter(
    (report): report is CopyReport =>
      report !== undefined && Date.parse(report.finishedAt) >= updateStartedAt.getTime(),
  );
  const bytes = copied.reduce((total, report) => total + (report.bytes ?? 0), 0);
  const retries = copied.reduce((total, report) => total + report.retries, 0);
  const details = [
    ...(copied.length > 0 ? [megabytes(bytes)] : []),
    ...(retries > 0 ? [plural(retries, "retry").replace("retrys", "retries")] : []),
  ];
  return (
    `mirror done: ${copied.length} copied${details.length ? ` (${details.join(", ")})` : ""}, ` +
    `${reports.length - copied.length} already there, ${plural(reports.length, "image")} in all`
  );
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
}

interface ManifestDocument {
  mediaType?: string;
  manifests?: IndexEntry[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/** Reads manifests and blob sizes from where an image comes from. */
interface ManifestReader {
  top(): Promise<{ document: ManifestDocument; isIndex: boolean }>;
  manifest(digest: string): Promise<ManifestDocument>;
}

function readerFor(location: CopyLocation): ManifestReader | undefined {
  if (location.transport === "docker") {
    const client = sharedRegistryClient(location.access);
    const parse = (bytes: Buffer) => JSON.parse(bytes.toString("utf8")) as ManifestDocument;
    return {
      async top() {
        const raw = await client.getManifest(location.repository, location.reference);
        return { document: parse(raw.bytes), isIndex: indexMediaTypes.has(raw.mediaType) };
      },
      async manifest(digest) {
        return parse((await client.getManifest(location.repository, digest)).bytes);
      },
    };
  }
  const blob = (digest: string) => {
    const [algorithm, hex] = digest.split(":");
    return JSON.parse(
      readFileSync(path.join(location.directory, "blobs", algorithm, hex), "utf8"),
    ) as ManifestDocument;
  };
  const digest = archivedDigest(location.directory, location.refName);
  if (!digest) return undefined;
  return {
    async top() {
      const document = blob(digest);
      return {
        document,
        isIndex: document.manifests !== undefined && document.layers === undefined,
      };
    },
    async manifest(child) {
      return blob(child);
    },
  };
}

/** Blobs (config and layers) of an image for the platforms copied, by digest. */
async function imageBlobs(request: CopyRequest, from: CopyLocation): Promise<Map<string, number>> {
  const reader = readerFor(from);
  const blobs = new Map<string, number>();
  if (!reader) throw new Error(`${request.source}: not in the archive`);
  const add = (document: ManifestDocument) => {
    for (const blob of [document.config, ...(document.layers ?? [])]) {
      if (blob) blobs.set(blob.digest, blob.size);
    }
  };
  const { document, isIndex } = await reader.top();
  if (!isIndex) {
    add(document);
    return blobs;
  }
  const platforms = request.platforms ?? (request.platform ? [request.platform] : []);
  const entries = platforms.length
    ? selectIndexEntries(document.manifests ?? [], platforms, request.source)
    : (document.manifests ?? []);
  for (const entry of entries) add(await reader.manifest(entry.digest));
  return blobs;
}

/** Bytes of one image's blobs (for the copy report of a copy that did not count them). */
export async function imageBytes(request: CopyRequest, from: CopyLocation): Promise<number> {
  let total = 0;
  for (const size of (await imageBlobs(request, from)).values()) total += size;
  return total;
}

function isUnreachable(error: unknown): boolean {
  return error instanceof RegistryRequestError ? error.status === undefined : true;
}

/** The promise, or a rejection after `ms` (a host that does not answer must not hold up a preview). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs `task` on every item of a group after a first item has shown the group's host answers;
 * when the first fails as unreachable, the rest are not tried (`onUnreachable` gets them).
 */
async function probeThenAll<T>(
  items: T[],
  concurrency: number,
  probeMs: number,
  what: string,
  task: (item: T) => Promise<void>,
  onUnreachable: (items: T[], reason: string) => void,
): Promise<void> {
  if (items.length === 0) return;
  try {
    await within(task(items[0]), probeMs, what);
  } catch (error) {
    if (isUnreachable(error)) {
      onUnreachable(items, error instanceof Error ? error.message : String(error));
      return;
    }
  }
  await mapWithConcurrency(items.slice(1), concurrency, async (item) => {
    try {
      await task(item);
    } catch {
      // Counted by the task's own bookkeeping; a copy reports the real failure.
    }
  });
}

/**
 * Asks the destination which images it already holds (by digest when it is pinned) and reads
 * the sizes of the others from their source, each blob counted once. A destination that cannot
 * be asked counts every image as to copy; a source that cannot be reached leaves its images
 * unsized. Never throws: this is information, the copies themselves report real failures.
 */
export async function planTransfer(
  requests: { request: CopyRequest; expectedDigest?: string }[],
  options: { concurrency?: number; probeMs?: number } = {},
): Promise<TransferPlan> {
  const concurrency = options.concurrency ?? 8;
  const probeMs = options.probeMs ?? 3000;
  let destinationUnreachable: string | undefined;
  const present = new Set<number>();
  const indexed = requests.map((entry, index) => ({ ...entry, index }));
  await probeThenAll(
    indexed,
    concurrency,
    probeMs,
    "the destination",
    async ({ request, expectedDigest, index }) => {
      const to = request.to;
      let digest: string | undefined;
      if (to.transport === "oci") {
        digest = archivedDigest(to.directory, to.refName);
        const [algorithm, hex] = (digest ?? ":").split(":");
        if (digest && !existsSync(path.join(to.directory, "blobs", algorithm, hex)))
          digest = undefined;
      } else {
        digest = await sharedRegistryClient(to.access).manifestDigest(to.repository, to.reference);
      }
      if (digest !== undefined && (!expectedDigest || digest === expectedDigest))
        present.add(index);
    },
    (_, reason) => {
      destinationUnreachable = reason;
    },
  );
  const toCopy = indexed.filter(({ index }) => !present.has(index));
  const bySource = new Map<string, typeof toCopy>();
  for (const entry of toCopy) {
    const from = entry.request.from;
    const key = from.transport === "docker" ? from.access.host : from.directory;
    bySource.set(key, [...(bySource.get(key) ?? []), entry]);
  }
  const sizes = new Map<string, number>();
  const sized = new Set<number>();
  await Promise.all(
    [...bySource].map(([key, entries]) =>
      probeThenAll(
        entries,
        concurrency,
        probeMs,
        key,
        async ({ request, index }) => {
          const from = request.from;
          if (from.transport === "oci" && !statSync(from.directory, { throwIfNoEntry: false })) {
            throw new Error(`${from.directory} not found`);
          }
          const blobs = await imageBlobs(request, from);
          for (const [digest, size] of blobs) sizes.set(digest, size);
          sized.add(index);
        },
        () => {},
      ),
    ),
  );
  const unsized = toCopy.length - sized.size;
  let bytes: number | undefined;
  if (toCopy.length > unsized) {
    bytes = 0;
    for (const size of sizes.values()) bytes += size;
  }
  return {
    total: requests.length,
    present: present.size,
    toCopy: toCopy.length,
    bytes,
    unsized,
    ...(destinationUnreachable ? { destinationUnreachable } : {}),
  };
}
