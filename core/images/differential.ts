/**
 * Applying a differential archive onto a mirror registry: which blobs each carried image pushes,
 * which it finds already in its repository, which it mounts from a repository of an image the
 * mirror already holds, and which are nowhere (the differential was made against another lock
 * or another mirror: refused before anything is written).
 *
 * Pure: the registry's answers (blob present in a repository or not) are passed in.
 */

/** What a carried image needs in the mirror, as read from its manifests. */
export interface CarriedImageNeeds {
  /** Canonical upstream name, e.g. registry.k8s.io/pause:3.10. */
  readonly source: string;
  /** Its repository in the mirror (the mapping's mirror path). */
  readonly repository: string;
  /** Config and layer digests of every platform (foreign layers excluded). */
  readonly blobs: readonly string[];
}

export interface DifferentialPushInput {
  readonly images: readonly CarriedImageNeeds[];
  /** Digests whose bytes the differential archive carries. */
  readonly carried: ReadonlySet<string>;
  /** Digests the differential leaves out -> mirror repositories of kept images that hold them. */
  readonly leftOut: ReadonlyMap<string, readonly string[]>;
  /** `${repository}@${digest}` the mirror answered present to. */
  readonly present: ReadonlySet<string>;
}

export type BlobStep =
  | { readonly digest: string; readonly action: "upload" }
  | { readonly digest: string; readonly action: "present" }
  | { readonly digest: string; readonly action: "mount"; readonly from: string };

/** A blob a carried image needs that neither the differential nor the mirror has. */
export interface MissingBlob {
  readonly image: string;
  readonly digest: string;
  /** Repositories looked in (the image's own first). */
  readonly lookedIn: readonly string[];
  /** The differential does not name the blob at all (it is corrupt, not just mismatched). */
  readonly unknown: boolean;
}

export interface DifferentialPushPlan {
  readonly images: readonly {
    readonly source: string;
    readonly repository: string;
    readonly steps: readonly BlobStep[];
  }[];
  readonly missing: readonly MissingBlob[];
}

export const presenceKey = (repository: string, digest: string): string =>
  `${repository}@${digest}`;

/**
 * Decides, per carried image and blob: upload it (the differential carries it), leave it (the
 * image's repository has it), or mount it from the first holder repository the mirror has it in.
 * A left-out blob found nowhere is reported missing; the caller refuses the whole apply.
 */
export function planDifferentialPush(input: DifferentialPushInput): DifferentialPushPlan {
  const missing: MissingBlob[] = [];
  const images = input.images.map((image) => {
    const steps: BlobStep[] = [];
    for (const digest of new Set(image.blobs)) {
      if (input.carried.has(digest)) {
        steps.push({ digest, action: "upload" });
        continue;
      }
      if (input.present.has(presenceKey(image.repository, digest))) {
        steps.push({ digest, action: "present" });
        continue;
      }
      const holders = input.leftOut.get(digest);
      const from = holders?.find(
        (repository) =>
          repository !== image.repository && input.present.has(presenceKey(repository, digest)),
      );
      if (from !== undefined) {
        steps.push({ digest, action: "mount", from });
        continue;
      }
      missing.push({
        image: image.source,
        digest,
        lookedIn: [...new Set([image.repository, ...(holders ?? [])])],
        unknown: holders === undefined,
      });
    }
    return { source: image.source, repository: image.repository, steps };
  });
  return { images, missing };
}

/** The refusal for missing blobs: names the first blob and image, and what it means. Pure. */
export function missingBlobsMessage(missing: readonly MissingBlob[], mirror: string): string {
  const first = missing[0];
  const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : "";
  if (first.unknown) {
    return `${first.image} needs blob ${first.digest}, which the differential archive neither carries nor lists as left out${more}; it is incomplete: make it again`;
  }
  return `${mirror} lacks blob ${first.digest} that ${first.image} needs (looked in ${first.lookedIn.join(", ")})${more}: this differential was made against another lock file or another mirror; nothing was written`;
}
