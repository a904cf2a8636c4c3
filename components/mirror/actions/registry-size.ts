import { createHash } from "node:crypto";
import {
  measureImages,
  type Descriptor,
  type ManifestDocument,
  type SizeReport,
} from "./archive-size";
import { droppedCompanions, findCompanions, isCompanionTag, type Companion } from "./companions";
import { mapWithConcurrency, RegistryClient, type RegistryAccess } from "./registry-client";

/**
 * The size report of images still in their registries (an export stack at preview, or the CLI
 * before anything is written): manifests and image configs are read, layers never.
 */

/** One image as it is read from its source registry. */
export interface RegistryImage {
  /** Canonical upstream name, shown in the report. */
  image: string;
  access: RegistryAccess;
  repository: string;
  /** Tag or digest. */
  reference: string;
}

export interface RegistrySizeReport extends SizeReport {
  /** Images that could not be measured, each with the reason (unreachable, refused, absent). */
  unmeasured: { image: string; reason: string }[];
  /** Signatures, attestations, SBOMs and referrers found beside the images. */
  companions: Companion[];
  /** Those of them the copy leaves behind: not in the image set by name. */
  droppedCompanions: Companion[];
}

/** Measures the images, eight at a time; an image that cannot be read is reported, not fatal. */
export async function measureRegistryImages(
  images: readonly RegistryImage[],
): Promise<RegistrySizeReport> {
  const clients = new Map<string, RegistryClient>();
  const clientFor = (access: RegistryAccess) => {
    const key = JSON.stringify(access);
    if (!clients.has(key)) clients.set(key, new RegistryClient(access));
    return clients.get(key)!;
  };
  const unmeasured: { image: string; reason: string }[] = [];
  const companions: Companion[] = [];
  try {
    const tops = await mapWithConcurrency(images, 8, async (image) => {
      const client = clientFor(image.access);
      try {
        const top = await client.getText(image.repository, "manifests", image.reference);
        const document = JSON.parse(top.body) as ManifestDocument;
        const descriptor: Descriptor = {
          mediaType: document.mediaType,
          digest: top.digest ?? `sha256:${createHash("sha256").update(top.body).digest("hex")}`,
          size: Buffer.byteLength(top.body),
        };
        const cache = new Map<string, ManifestDocument>([[descriptor.digest, document]]);
        const readManifest = async (digest: string): Promise<ManifestDocument> => {
          const cached = cache.get(digest);
          if (cached) return cached;
          // A digest in an index names a manifest; in a manifest, the config blob.
          const kind = [...cache.values()].some((known) =>
            known.manifests?.some((child) => child.digest === digest),
          )
            ? "manifests"
            : "blobs";
          const fetched = JSON.parse(
            (await client.getText(image.repository, kind, digest)).body,
          ) as ManifestDocument;
          cache.set(digest, fetched);
          return fetched;
        };
        // Read (and cache) everything now, so one image's failure stays with that image.
        await measureImages([{ image: image.image, descriptor, readManifest }]);
        // A signature or attestation in the set is carried as it is; it has no companions of its own.
        if (!isCompanionTag(image.reference)) {
          companions.push(
            ...(await findCompanions(client, image.image, image.repository, descriptor.digest)),
          );
        }
        return { image: image.image, descriptor, readManifest };
      } catch (error) {
        unmeasured.push({ image: image.image, reason: (error as Error).message });
        return undefined;
      }
    });
    const measured = tops.filter((entry) => entry !== undefined);
    const report = await measureImages(measured);
    unmeasured.sort((a, b) => (a.image < b.image ? -1 : 1));
    // Two names of one image (a tag and its digest) share their companions: list each once.
    const unique = [...new Map(companions.map((c) => [`${c.kind} ${c.reference}`, c])).values()];
    unique.sort((a, b) => (a.reference < b.reference ? -1 : 1));
    const names = new Set(images.map((image) => image.image));
    return {
      ...report,
      unmeasured,
      companions: unique,
      droppedCompanions: droppedCompanions(unique, names),
    };
  } finally {
    for (const client of clients.values()) client.close();
  }
}
