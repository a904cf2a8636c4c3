import { createHash } from "node:crypto";
import { pipeline, Transform, type TransformCallback } from "node:stream";
import {
  manifestBlobBytes,
  selectIndexEntries,
  type IndexEntry,
} from "../../../core/images/platforms";
import {
  contentDigest,
  indexMediaTypes,
  manifestMediaTypes,
  mapWithConcurrency,
  RegistryRequestError,
  sharedRegistryClient,
  type RawManifest,
  type RegistryClient,
} from "./registry-client";
import {
  copyFailureMessage,
  ImageCopyError,
  redactCredentials,
  retryDelays,
  type CopyFailureKind,
  type CopyOptions,
  type CopyRequest,
} from "./skopeo";

/**
 * Copying registry to registry inside this process, without a skopeo process per image: the
 * manifest bytes are pushed exactly as read (digests preserved, multi-arch indexes kept), each
 * blob is read once and streamed into the mirror, and a blob this process already pushed into
 * another repository of the mirror is mounted there (no bytes move). Every image of a stack is
 * created in the same provider process, so connections, tokens and pushed blobs are shared.
 * The tag is written last: a failed copy leaves no tag pointing at a partial image. The same
 * copier pushes an image read from an OCI layout (a differential archive applied onto a mirror).
 */

/** What a copy moved; summed over copies when the same object is passed to each. */
export interface RegistryCopyStats {
  blobsUploaded: number;
  blobsMounted: number;
  blobsPresent: number;
  bytesUploaded: number;
  manifestsPushed: number;
}

export function emptyCopyStats(): RegistryCopyStats {
  return {
    blobsUploaded: 0,
    blobsMounted: 0,
    blobsPresent: 0,
    bytesUploaded: 0,
    manifestsPushed: 0,
  };
}

/** A source this copier does not handle byte for byte (e.g. schema 1): skopeo converts it. */
export class UnsupportedByCopierError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedByCopierError";
  }
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  urls?: string[];
}

interface ParsedManifest {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: IndexEntry[];
}

/** Layers a registry must not redistribute (Windows base layers): referenced, never copied. */
function isForeign(blob: Descriptor): boolean {
  return (blob.urls?.length ?? 0) > 0 || /foreign|nondistributable/.test(blob.mediaType ?? "");
}

/** Transfers at most `limit` blobs at a time in this process, whatever the engine's parallelism. */
class Semaphore {
  private waiting: (() => void)[] = [];
  private active = 0;
  constructor(private readonly limit: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

const processState = globalThis as {
  __airgapBlobTransfers?: Semaphore;
  __airgapPushedBlobs?: WeakMap<RegistryClient, Map<string, Promise<string>>>;
};
const transfers = (processState.__airgapBlobTransfers ??= new Semaphore(8));
const pushedBlobs = (processState.__airgapPushedBlobs ??= new WeakMap());

/** Blob digest -> repository of the mirror that holds it (settles once the blob is there). */
function pushedInto(destination: RegistryClient): Map<string, Promise<string>> {
  let blobs = pushedBlobs.get(destination);
  if (!blobs) {
    blobs = new Map();
    pushedBlobs.set(destination, blobs);
  }
  return blobs;
}

/** Passes bytes through, failing the stream when their count or digest is not the expected one. */
function verifying(blob: Descriptor): Transform {
  const hash = createHash("sha256");
  let length = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      hash.update(chunk);
      length += chunk.length;
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      const digest = `sha256:${hash.digest("hex")}`;
      if (length !== blob.size || (blob.digest.startsWith("sha256:") && digest !== blob.digest)) {
        callback(
          new RegistryRequestError(
            `blob ${blob.digest} arrived as ${length} bytes with digest ${digest} (expected ${blob.size} bytes)`,
          ),
        );
      } else callback();
    },
  });
}

/**
 * Where the copier reads an image: a repository of a registry, or an OCI image layout. Manifests
 * come back as stored (their bytes decide the digest), blobs as streams the copier verifies.
 */
export interface ImageReader {
  /** Reads the manifest a tag, ref name or digest names; rejects bytes that do not match a digest. */
  getManifest(reference: string): Promise<RawManifest>;
  openBlob(digest: string): Promise<NodeJS.ReadableStream>;
}

function registryReader(client: RegistryClient, repository: string): ImageReader {
  return {
    getManifest: (reference) => client.getManifest(repository, reference),
    openBlob: (digest) => client.openBlob(repository, digest),
  };
}

/** Where the copier writes: a repository of the mirror. */
interface CopyTarget {
  client: RegistryClient;
  repository: string;
}

interface CopySelection {
  /** Canonical upstream name, for messages. */
  source: string;
  /** What the reader is asked for first (tag, digest, or ref name in a layout). */
  reference: string;
  platform?: string;
  platforms?: string[];
  /**
   * Blobs the source does not carry and the mirror holds in another repository: digest ->
   * that repository. They are mounted (or found present), never read from the source.
   */
  mounts?: ReadonlyMap<string, string>;
}

class ImageCopier {
  private readonly destination: RegistryClient;
  private readonly repository: string;

  constructor(
    private readonly source: ImageReader,
    target: CopyTarget,
    private readonly selection: CopySelection,
    private readonly stats: RegistryCopyStats,
  ) {
    this.destination = target.client;
    this.repository = target.repository;
  }

  private async upload(blob: Descriptor, location?: string): Promise<void> {
    await transfers.run(async () => {
      const target = location ?? (await this.destination.startUpload(this.repository));
      const stream = await this.source.openBlob(blob.digest);
      await this.destination.finishUpload(this.repository, target, blob.digest, {
        // pipeline: a source that breaks off fails the upload instead of leaving it waiting.
        stream: pipeline(stream, verifying(blob), () => undefined),
        length: blob.size,
      });
    });
    this.stats.blobsUploaded++;
    this.stats.bytesUploaded += blob.size;
  }

  /** Mounts a blob from another repository of the mirror; uploads it only if the mount is refused. */
  private async mount(blob: Descriptor, holder: string): Promise<void> {
    const fallback = await this.destination.mountBlob(this.repository, blob.digest, holder);
    if (fallback === undefined) {
      this.stats.blobsMounted++;
      return;
    }
    // The registry no longer has it there (garbage collected): upload into the started upload.
    await this.upload(blob, fallback);
  }

  /** Puts one blob into the destination repository: present, mounted, or uploaded once. */
  private async ensureBlob(blob: Descriptor): Promise<void> {
    const repository = this.repository;
    const planned = this.selection.mounts?.get(blob.digest);
    if (planned !== undefined) {
      if (await this.destination.hasBlob(repository, blob.digest)) this.stats.blobsPresent++;
      else await this.mount(blob, planned);
      return;
    }
    const known = pushedInto(this.destination);
    const pending = known.get(blob.digest);
    if (!pending) {
      const placing = (async () => {
        if (await this.destination.hasBlob(repository, blob.digest)) this.stats.blobsPresent++;
        else await this.upload(blob);
        return repository;
      })();
      known.set(blob.digest, placing);
      placing.catch(() => {
        if (known.get(blob.digest) === placing) known.delete(blob.digest);
      });
      await placing;
      return;
    }
    const holder = await pending.catch(() => undefined);
    if (holder === repository) {
      this.stats.blobsPresent++;
      return;
    }
    if (holder !== undefined) {
      await this.mount(blob, holder);
      return;
    }
    if (await this.destination.hasBlob(repository, blob.digest)) this.stats.blobsPresent++;
    else await this.upload(blob);
  }

  private async copyBlobsOf(manifest: ParsedManifest): Promise<void> {
    const blobs = [...(manifest.config ? [manifest.config] : []), ...(manifest.layers ?? [])];
    await mapWithConcurrency(
      blobs.filter((blob) => !isForeign(blob)),
      4,
      (blob) => this.ensureBlob(blob),
    );
  }

  private async pushManifest(manifest: RawManifest, reference: string): Promise<string> {
    const digest = await this.destination.putManifest(this.repository, reference, manifest);
    this.stats.manifestsPushed++;
    if (digest !== manifest.digest) {
      throw new RegistryRequestError(
        `${this.destination.access.host} stored ${digest} for a manifest whose digest is ${manifest.digest}`,
      );
    }
    return digest;
  }

  private async readManifest(
    reference: string,
  ): Promise<{ raw: RawManifest; parsed: ParsedManifest }> {
    const raw = await this.source.getManifest(reference);
    if (!manifestMediaTypes.includes(raw.mediaType)) {
      throw new UnsupportedByCopierError(
        `${this.selection.source}: manifest type ${raw.mediaType || "unknown"} needs conversion`,
      );
    }
    return { raw, parsed: JSON.parse(raw.bytes.toString("utf8")) as ParsedManifest };
  }

  /** The manifest the tag will point to, and the image manifests under it. */
  private async resolve(): Promise<{
    top: RawManifest;
    images: { raw: RawManifest; parsed: ParsedManifest }[];
  }> {
    const top = await this.readManifest(this.selection.reference);
    if (!indexMediaTypes.has(top.raw.mediaType)) return { top: top.raw, images: [top] };
    const entries = top.parsed.manifests ?? [];
    const platforms =
      this.selection.platforms ?? (this.selection.platform ? [this.selection.platform] : []);
    let chosen = entries;
    let tagged = top.raw;
    if (platforms.length > 0) {
      chosen = selectIndexEntries(entries, platforms, this.selection.source);
      if (platforms.length === 1) {
        const image = await this.readManifest(chosen[0].digest);
        return { top: image.raw, images: [image] };
      }
      if (chosen.length === entries.length) return this.withImages(top.raw, chosen);
      // A smaller index of the chosen platforms: a new digest, recorded as the mirror's.
      const bytes = Buffer.from(JSON.stringify({ ...top.parsed, manifests: chosen }));
      tagged = { mediaType: top.raw.mediaType, bytes, digest: contentDigest(bytes) };
    }
    return this.withImages(tagged, chosen);
  }

  private async withImages(top: RawManifest, entries: readonly IndexEntry[]) {
    const images = await mapWithConcurrency(entries, 4, (entry) => this.readManifest(entry.digest));
    return { top, images };
  }

  /**
   * Pushes every blob and platform manifest, then the top manifest under `reference` (the tag,
   * or its own digest when the caller writes tags later). Returns the top manifest.
   */
  async copy(reference?: string): Promise<RawManifest> {
    const { top, images } = await this.resolve();
    await mapWithConcurrency(images, 4, async (image) => {
      await this.copyBlobsOf(image.parsed);
      if (image.raw !== top) await this.pushManifest(image.raw, image.raw.digest);
    });
    // Last: the tag appears only once everything it points to is in.
    await this.pushManifest(top, reference ?? top.digest);
    return top;
  }
}

/** How a registry failure is reported and whether a retry may help. Pure. */
export function classifyRegistryFailure(error: unknown): CopyFailureKind {
  if (error instanceof ImageCopyError) return error.kind;
  if (!(error instanceof RegistryRequestError)) return "other";
  if (error.tlsRefused) return "other";
  const status = error.status;
  if (status === 401 || status === 403) return "unauthorized";
  if (status === 404) return "not-found";
  if (status === undefined || status === 429 || status >= 500) return "unreachable";
  return "other";
}

/** Bytes an image's platforms take, and those of the chosen ones (for previews). */
export async function platformBytes(
  request: CopyRequest,
): Promise<{ all: number; chosen: number } | undefined> {
  const from = request.from;
  const platforms = request.platforms ?? (request.platform ? [request.platform] : []);
  if (from.transport !== "docker" || platforms.length === 0) return undefined;
  const client = sharedRegistryClient(from.access);
  const top = await client.getManifest(from.repository, from.reference);
  if (!indexMediaTypes.has(top.mediaType)) return undefined;
  const entries = (JSON.parse(top.bytes.toString("utf8")) as ParsedManifest).manifests ?? [];
  const chosen = new Set(selectIndexEntries(entries, platforms, request.source));
  const sizes = await mapWithConcurrency(entries, 4, async (entry) => {
    const manifest = await client.getManifest(from.repository, entry.digest);
    return manifestBlobBytes(JSON.parse(manifest.bytes.toString("utf8")) as ParsedManifest);
  });
  return {
    all: sizes.reduce((total, size) => total + size, 0),
    chosen: sizes.reduce(
      (total, size, index) => total + (chosen.has(entries[index]) ? size : 0),
      0,
    ),
  };
}

/**
 * Runs one whole-image copy attempt after another while the registry is unreachable, with
 * backoff; the error names the image and registries, never a password.
 */
async function withCopyRetries<T>(
  request: CopyRequest,
  options: CopyOptions,
  attempt: () => Promise<T>,
): Promise<T> {
  const delays = retryDelays(options.retries ?? 3, options.backoffMs ?? 1000);
  const secrets = [request.from, request.to].map((location) =>
    location.transport === "docker" ? location.access.password : undefined,
  );
  for (let index = 0; ; index++) {
    try {
      return await attempt();
    } catch (error) {
      if (error instanceof UnsupportedByCopierError) throw error;
      const kind = classifyRegistryFailure(error);
      if (kind !== "unreachable" || index >= delays.length) {
        const detail = redactCredentials(
          error instanceof Error ? error.message : String(error),
          secrets,
        );
        throw new ImageCopyError(request.source, kind, copyFailureMessage(request, kind, detail));
      }
      options.onRetry?.({
        attempt: index + 1,
        of: delays.length,
        delayMs: delays[index],
        reason: redactCredentials(error instanceof Error ? error.message : String(error), secrets),
      });
      await new Promise((resolve) => setTimeout(resolve, delays[index]));
    }
  }
}

/**
 * Copies one image registry to registry and returns the digest the tag points to. Network
 * failures are retried with backoff; the error names the image and registries, never a password.
 */
export async function copyRegistryImage(
  request: CopyRequest,
  options: CopyOptions & { stats?: RegistryCopyStats } = {},
): Promise<string> {
  const { from, to } = request;
  if (from.transport !== "docker" || to.transport !== "docker") {
    throw new Error(`${request.source}: the registry copier copies registry to registry only`);
  }
  const stats = options.stats ?? emptyCopyStats();
  const source = registryReader(sharedRegistryClient(from.access), from.repository);
  const target = { client: sharedRegistryClient(to.access), repository: to.repository };
  const selection = {
    source: request.source,
    reference: from.reference,
    platform: request.platform,
    platforms: request.platforms,
  };
  const top = await withCopyRetries(request, options, () =>
    new ImageCopier(source, target, selection, stats).copy(to.reference),
  );
  return top.digest;
}

/**
 * Pushes one whole image read by `reader` (e.g. from an OCI layout) into a repository of the
 * mirror: blobs (verified as they stream; `mounts` are mounted from the repository named
 * instead of read), platform manifests, and the top manifest by its digest only. No tag is
 * written: the caller writes tags once every image is in. Returns the top manifest.
 */
export async function pushImageByDigest(
  request: CopyRequest,
  reader: ImageReader,
  options: CopyOptions & { stats?: RegistryCopyStats; mounts?: ReadonlyMap<string, string> } = {},
): Promise<RawManifest> {
  const { from, to } = request;
  if (from.transport !== "oci" || to.transport !== "docker") {
    throw new Error(`${request.source}: pushes an OCI layout's image into a registry only`);
  }
  const stats = options.stats ?? emptyCopyStats();
  const target = { client: sharedRegistryClient(to.access), repository: to.repository };
  const selection = { source: request.source, reference: from.refName, mounts: options.mounts };
  return withCopyRetries(request, options, () =>
    new ImageCopier(reader, target, selection, stats).copy(),
  );
}

/** Points a tag at a manifest already pushed by digest; retried like a copy. */
export async function writeTag(
  request: CopyRequest,
  manifest: RawManifest,
  options: CopyOptions = {},
): Promise<void> {
  const to = request.to;
  if (to.transport !== "docker") throw new Error(`${request.source}: tags live in a registry`);
  const client = sharedRegistryClient(to.access);
  await withCopyRetries(request, options, async () => {
    const digest = await client.putManifest(to.repository, to.reference, manifest);
    if (digest !== manifest.digest) {
      throw new RegistryRequestError(
        `${to.access.host} stored ${digest} for a manifest whose digest is ${manifest.digest}`,
      );
    }
  });
}
