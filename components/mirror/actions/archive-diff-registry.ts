import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { mirrorPathFor } from "../../../core/images/mapping";
import { parseImageReference } from "../../../core/images/reference";
import {
  missingBlobsMessage,
  planDifferentialPush,
  presenceKey,
  type CarriedImageNeeds,
  type MissingBlob,
} from "../../../core/images/differential";
import { planImageCopies, type ImageCopy } from "../plan";
import { ArchiveError, type LockedImage } from "./archive";
import {
  blobFile,
  readDifferentialManifest,
  readIndex,
  type DifferentialManifest,
} from "./archive-diff";
import {
  checkImages,
  contentDigest,
  indexMediaTypes,
  mapWithConcurrency,
  RegistryRequestError,
  sharedRegistryClient,
  type RawManifest,
  type RegistryAccess,
  type RegistryClient,
} from "./registry-client";
import {
  emptyCopyStats,
  pushImageByDigest,
  writeTag,
  type ImageReader,
  type RegistryCopyStats,
} from "./registry-copy";
import type { CopyOptions } from "./skopeo";

/**
 * Applying a differential archive straight onto the mirror registry that holds the images of
 * the lock it was made against. Blobs the differential carries are pushed; blobs it left out
 * are found in the image's own repository or mounted from the repository of a kept image that
 * holds them; anything found nowhere is refused before the mirror is written to. Manifests go
 * in by digest, and the tags are written only once every carried image is whole.
 */

const refNameAnnotation = "org.opencontainers.image.ref.name";

export interface RegistryApplyOptions extends CopyOptions {
  /** How this machine pushes to the mirror. */
  access: RegistryAccess;
  /** The mirror's path prefix per upstream registry, as the stack's `upstreamPrefixes`. */
  upstreamPrefixes?: Record<string, string>;
  stats?: RegistryCopyStats;
}

export interface RegistryApplyResult {
  manifest: DifferentialManifest;
  /** Each carried image: where it now is in the mirror, and its digest (the lock's). */
  images: { source: string; repository: string; reference: string; digest: string }[];
  stats: RegistryCopyStats;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  urls?: string[];
}

interface ParsedManifest {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** A manifest the differential leaves out and the mirror does not have where it was looked for. */
class LeftOutManifestMissing extends Error {
  constructor(
    readonly digest: string,
    readonly lookedIn: string[],
  ) {
    super(
      `manifest ${digest} is neither in the differential archive nor in ${lookedIn.join(", ")}`,
    );
  }
}

/** Layers a registry must not redistribute: referenced, never copied (as the copier skips them). */
function isForeign(blob: Descriptor): boolean {
  return (blob.urls?.length ?? 0) > 0 || /foreign|nondistributable/.test(blob.mediaType ?? "");
}

/**
 * Reads a carried image from the differential archive; a manifest the differential leaves out
 * (a kept image has it too) is read from the mirror, checked against its digest.
 */
class DifferentialReader implements ImageReader {
  private readonly refs: Map<string, Descriptor>;
  private readonly mediaTypes = new Map<string, string>();

  constructor(
    private readonly directory: string,
    private readonly mirror: RegistryClient,
    /** Repositories of the mirror to read a left-out manifest from, in order. */
    private readonly lookIn: (digest: string) => string[],
  ) {
    this.refs = new Map(
      readIndex(directory).manifests.map((entry) => [
        entry.annotations?.[refNameAnnotation] ?? "",
        entry,
      ]),
    );
  }

  async getManifest(reference: string): Promise<RawManifest> {
    let digest = reference;
    if (!reference.startsWith("sha256:")) {
      const entry = this.refs.get(reference);
      if (!entry) throw new ArchiveError(`${this.directory}: ${reference} is not in index.json`);
      digest = entry.digest;
      if (entry.mediaType) this.mediaTypes.set(digest, entry.mediaType);
    }
    const file = blobFile(this.directory, digest);
    let manifest: RawManifest | undefined;
    if (existsSync(file)) {
      const bytes = readFileSync(file);
      if (contentDigest(bytes) !== digest) {
        throw new ArchiveError(
          `${this.directory}: manifest ${digest} is corrupt or tampered with (its content hashes to ${contentDigest(bytes)}); make the differential archive again`,
        );
      }
      const declared = (JSON.parse(bytes.toString("utf8")) as ParsedManifest).mediaType;
      manifest = { mediaType: declared ?? this.mediaTypes.get(digest) ?? "", bytes, digest };
    } else {
      const repositories = this.lookIn(digest);
      for (const repository of repositories) {
        try {
          manifest = await this.mirror.getManifest(repository, digest);
          break;
        } catch (error) {
          if (!(error instanceof RegistryRequestError && error.status === 404)) throw error;
        }
      }
      if (!manifest) throw new LeftOutManifestMissing(digest, repositories);
    }
    const parsed = JSON.parse(manifest.bytes.toString("utf8")) as ParsedManifest;
    for (const child of parsed.manifests ?? []) {
      if (child.mediaType) this.mediaTypes.set(child.digest, child.mediaType);
    }
    return manifest;
  }

  openBlob(digest: string): Promise<NodeJS.ReadableStream> {
    const file = blobFile(this.directory, digest);
    if (!existsSync(file)) {
      return Promise.reject(
        new ArchiveError(`${this.directory}: blob ${digest} is not in the differential archive`),
      );
    }
    return Promise.resolve(createReadStream(file));
  }
}

/** Config and layer digests of every platform of an image, walking index -> manifests. */
async function blobsOfImage(reader: DifferentialReader, refName: string): Promise<string[]> {
  const blobs: string[] = [];
  const pending = [refName];
  while (pending.length > 0) {
    const manifest = await reader.getManifest(pending.pop()!);
    const parsed = JSON.parse(manifest.bytes.toString("utf8")) as ParsedManifest;
    if (indexMediaTypes.has(manifest.mediaType)) {
      pending.push(...(parsed.manifests ?? []).map((entry) => entry.digest));
      continue;
    }
    for (const blob of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) {
      if (!isForeign(blob)) blobs.push(blob.digest);
    }
  }
  return blobs;
}

/** Every digest whose bytes the differential archive carries. */
function carriedDigests(directory: string, digests: Iterable<string>): Set<string> {
  return new Set([...digests].filter((digest) => existsSync(blobFile(directory, digest))));
}

/**
 * Applies the differential archive `differential` onto the mirror registry `options.access`.
 * Refuses, before anything is written, when a blob a carried image needs is neither carried
 * nor held by the mirror (made against another lock or mirror). Returns where each image went.
 */
export async function applyDifferentialToRegistry(
  differential: string,
  options: RegistryApplyOptions,
): Promise<RegistryApplyResult> {
  const manifest = readDifferentialManifest(differential);
  const withoutHolders = manifest.requiredBlobs.find((blob) => blob.heldBy === undefined);
  if (withoutHolders || manifest.kept === undefined) {
    throw new ArchiveError(
      `${differential}: differential.json does not say ${withoutHolders ? `which images hold the blobs it leaves out (${withoutHolders.digest})` : "which digests the images it leaves out have"}; make the differential again with this version to apply it onto a registry`,
    );
  }
  const stats = options.stats ?? emptyCopyStats();
  const access = options.access;
  const mirror = sharedRegistryClient(access);
  const mapping = { mirrorHost: access.host, upstreamPrefixes: options.upstreamPrefixes };
  const repositoryOf = (source: string) => mirrorPathFor(parseImageReference(source), mapping);

  const plan = planImageCopies({
    images: manifest.images.map((image) => image.source),
    source: { kind: "archive", directory: differential },
    destination: { kind: "registry", access, nodeEndpoint: access.host },
    upstreamPrefixes: options.upstreamPrefixes,
    lock: { lockVersion: 1, images: manifest.images },
  });
  const index = new Map(
    readIndex(differential).manifests.map((entry) => [
      entry.annotations?.[refNameAnnotation],
      entry.digest,
    ]),
  );
  for (const copy of plan.copies) {
    if (index.get(copy.source) !== copy.expectedDigest) {
      throw new ArchiveError(
        `${differential}: ${copy.source} is in differential.json but not in index.json at ${copy.expectedDigest}`,
      );
    }
  }

  const leftOut = new Map(
    manifest.requiredBlobs.map((blob) => [
      blob.digest,
      [...new Set(blob.heldBy!.map(repositoryOf))],
    ]),
  );
  const targetOf = (copy: ImageCopy) => {
    if (copy.request.to.transport !== "docker") throw new Error("unreachable: registry plan");
    return copy.request.to;
  };
  const readers = new Map(
    plan.copies.map((copy) => [
      copy.source,
      new DifferentialReader(differential, mirror, (digest) => [
        ...new Set([targetOf(copy).repository, ...(leftOut.get(digest) ?? [])]),
      ]),
    ]),
  );

  // Read every carried image (left-out manifests from the mirror) before anything is written.
  const missing: MissingBlob[] = [];
  const needs: CarriedImageNeeds[] = [];
  for (const copy of plan.copies) {
    try {
      needs.push({
        source: copy.source,
        repository: targetOf(copy).repository,
        blobs: await blobsOfImage(readers.get(copy.source)!, copy.source),
      });
    } catch (error) {
      if (!(error instanceof LeftOutManifestMissing)) throw error;
      missing.push({
        image: copy.source,
        digest: error.digest,
        lookedIn: error.lookedIn,
        unknown: !leftOut.has(error.digest),
      });
    }
  }
  const carried = carriedDigests(
    differential,
    needs.flatMap((image) => image.blobs),
  );
  await verifyCarriedBlobs(differential, needs, carried);
  const present = await findLeftOutBlobs(mirror, needs, carried, leftOut);
  const push = planDifferentialPush({ images: needs, carried, leftOut, present });
  missing.push(...push.missing);
  if (missing.length > 0) throw new ArchiveError(missingBlobsMessage(missing, access.host));
  await checkKeptImages(manifest.kept, options);

  // Blobs and manifests by digest, every image; then the tags; then what the mirror serves.
  const steps = new Map(push.images.map((image) => [image.source, image.steps]));
  const tops = await mapWithConcurrency(plan.copies, 4, async (copy) => {
    const mounts = new Map(
      steps
        .get(copy.source)!
        .flatMap((step) => (step.action === "mount" ? [[step.digest, step.from] as const] : [])),
    );
    const top = await pushImageByDigest(copy.request, readers.get(copy.source)!, {
      ...options,
      stats,
      mounts,
    });
    if (top.digest !== copy.expectedDigest) {
      throw new ArchiveError(
        `${copy.source}: the differential archive holds ${top.digest}, its lock says ${copy.expectedDigest}`,
      );
    }
    return top;
  });
  for (const [position, copy] of plan.copies.entries()) {
    await writeTag(copy.request, tops[position], options);
  }
  const served = await checkImages(
    access,
    plan.copies.map((copy) => ({
      repository: targetOf(copy).repository,
      reference: targetOf(copy).reference,
      expectedDigest: copy.expectedDigest,
    })),
  );
  const wrong = served.find((result) => result.state !== "present");
  if (wrong) {
    throw new ArchiveError(
      `${access.host}/${wrong.repository}:${wrong.reference} is ${wrong.state === "missing" ? "missing" : `at ${wrong.digest}`} after the apply; the lock says ${wrong.expectedDigest}`,
    );
  }
  return {
    manifest,
    images: plan.copies.map((copy, position) => ({
      source: copy.source,
      repository: targetOf(copy).repository,
      reference: targetOf(copy).reference,
      digest: tops[position].digest,
    })),
    stats,
  };
}

/**
 * The images the differential leaves out must be on the mirror at the digests of the lock it was
 * made against: otherwise the mirror would not serve the new lock once the carried ones are in.
 * Checked before anything is written.
 */
async function checkKeptImages(
  kept: readonly LockedImage[],
  options: RegistryApplyOptions,
): Promise<void> {
  if (kept.length === 0) return;
  const plan = planImageCopies({
    images: kept.map((image) => image.source),
    source: { kind: "upstream" },
    destination: { kind: "registry", access: options.access, nodeEndpoint: options.access.host },
    upstreamPrefixes: options.upstreamPrefixes,
    lock: { lockVersion: 1, images: [...kept] },
  });
  const served = await checkImages(
    options.access,
    plan.copies.map((copy) => {
      if (copy.request.to.transport !== "docker") throw new Error("unreachable: registry plan");
      return {
        repository: copy.request.to.repository,
        reference: copy.request.to.reference,
        expectedDigest: copy.expectedDigest,
      };
    }),
  );
  const wrong = served.filter((result) => result.state !== "present");
  if (wrong.length === 0) return;
  const first = wrong[0];
  const source = plan.copies[served.indexOf(first)].source;
  throw new ArchiveError(
    `${options.access.host}/${first.repository}:${first.reference} is ${first.state === "missing" ? "missing" : `at ${first.digest}`}, but the differential was made against a lock where ${source} is ${first.expectedDigest}` +
      `${wrong.length > 1 ? ` (and ${wrong.length - 1} more images like it)` : ""}: this mirror does not hold what the differential was made against; ` +
      "apply the earlier archive first, or make the differential against this mirror's images.lock.json. Nothing was written",
  );
}

/**
 * Hashes every blob the differential carries before the mirror is written to: a corrupt copy
 * is refused by name, not found half-way through (the copier checks the bytes again as it sends them).
 */
async function verifyCarriedBlobs(
  directory: string,
  images: readonly CarriedImageNeeds[],
  carried: ReadonlySet<string>,
): Promise<void> {
  const checked = new Set<string>();
  for (const image of images) {
    for (const digest of image.blobs) {
      if (!carried.has(digest) || checked.has(digest)) continue;
      const hash = createHash("sha256");
      for await (const chunk of createReadStream(blobFile(directory, digest))) {
        hash.update(chunk as Buffer);
      }
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== digest) {
        throw new ArchiveError(
          `${image.source}: blob ${digest} is corrupt or tampered with (its content hashes to ${actual}); copy the differential archive again, or make it again; nothing was written`,
        );
      }
      checked.add(digest);
    }
  }
}

/**
 * Asks the mirror where the left-out blobs are: each in its image's own repository, and, where
 * it is not there, in the holders' repositories until one has it (one is enough to mount from).
 */
async function findLeftOutBlobs(
  mirror: RegistryClient,
  images: readonly CarriedImageNeeds[],
  carried: ReadonlySet<string>,
  leftOut: ReadonlyMap<string, readonly string[]>,
): Promise<Set<string>> {
  const answers = new Map<string, Promise<boolean>>();
  const has = (repository: string, digest: string) => {
    const key = presenceKey(repository, digest);
    let answer = answers.get(key);
    if (!answer) {
      answer = mirror.hasBlob(repository, digest);
      answers.set(key, answer);
    }
    return answer;
  };
  const holderOf = new Map<string, Promise<string | undefined>>();
  const findHolder = (digest: string) => {
    let found = holderOf.get(digest);
    if (!found) {
      found = (async () => {
        for (const repository of leftOut.get(digest) ?? []) {
          if (await has(repository, digest)) return repository;
        }
        return undefined;
      })();
      holderOf.set(digest, found);
    }
    return found;
  };
  const present = new Set<string>();
  const questions = images.flatMap((image) =>
    [...new Set(image.blobs)]
      .filter((digest) => !carried.has(digest))
      .map((digest) => ({ repository: image.repository, digest })),
  );
  await mapWithConcurrency(questions, 16, async ({ repository, digest }) => {
    if (await has(repository, digest)) {
      present.add(presenceKey(repository, digest));
      return;
    }
    const holder = await findHolder(digest);
    if (holder !== undefined) present.add(presenceKey(holder, digest));
  });
  return present;
}
