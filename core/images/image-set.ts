/**
 * The set of images a conformance run needs, assembled from the catalog, the runner's own
 * images, configured extras and `--list-images` outputs, with the reason each one is there.
 *
 * Pure apart from reading the catalog data file when `includeCatalog` is set.
 */

import {
  CatalogCompleteness,
  CatalogProvenance,
  catalogForKubernetesVersion,
  CATALOG_DIRECTORY,
} from "./catalog";
import { unmirrorableReason } from "./e2e-registries";
import { KubernetesVersion, parseKubernetesVersion, releaseTag } from "./kubernetes-version";
import { parseImageListFile } from "./list-file";
import { compareStrings } from "./ordering";
import {
  ImageReference,
  InvalidImageReferenceError,
  canonicalImageReference,
  parseImageReference,
} from "./reference";

/** Image that keeps the runner pod alive so results can be read (hydrophone's output container). */
export const DEFAULT_RESULTS_IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
/** Repository of the conformance image; its tag is `v<full Kubernetes version>`. */
export const CONFORMANCE_IMAGE_REPOSITORY = "registry.k8s.io/conformance";

/** An image list, e.g. saved `e2e.test --list-images` output. */
export interface NamedImageList {
  /** Label used in origins and errors, usually the file name. */
  readonly name: string;
  readonly text: string;
}

export interface ImageSetOptions {
  /** The cluster's Kubernetes version, e.g. "v1.31.4". Selects the catalog and conformance tag. */
  readonly kubernetesVersion: string;
  /**
   * Conformance image; default `registry.k8s.io/conformance:v<kubernetesVersion>` (prerelease
   * dropped), which needs a full patch version.
   */
  readonly conformanceImage?: string;
  /** Results (output) container image; default {@link DEFAULT_RESULTS_IMAGE}. */
  readonly resultsImage?: string;
  /** Additional references, e.g. from configuration. */
  readonly extraImages?: readonly string[];
  /** Where `extraImages` came from, for origins and errors: "images.extra" -> "images.extra[3]". */
  readonly extraImagesSource?: string;
  /** Image lists to include, e.g. `--list-images` output of the exact conformance image. */
  readonly listFiles?: readonly NamedImageList[];
  /** Include the shipped catalog's list for the version's minor. */
  readonly includeCatalog: boolean;
  /** Override of the catalog data directory (tests, packaged builds). */
  readonly catalogDirectory?: string;
}

/** One image of the set. */
export interface ImageSetEntry {
  readonly reference: ImageReference;
  readonly canonical: string;
  /** Why it is in the set, e.g. "catalog 1.31", "conformance", "list file e2e.txt:12". */
  readonly origins: readonly string[];
}

/** An image that was asked for but cannot be mirrored; reported rather than dropped silently. */
export interface UnmirrorableImage extends ImageSetEntry {
  readonly reason: string;
}

/** Summary of the catalog list that went into the set. */
export interface CatalogUsed {
  readonly kubernetesVersion: string;
  readonly file: string;
  readonly provenance: CatalogProvenance;
  readonly completeness: CatalogCompleteness;
}

export interface ImageSet {
  /** Images to mirror, deduplicated by canonical form, sorted by it. */
  readonly images: readonly ImageSetEntry[];
  /** Images on the intentionally invalid or auth-only e2e registries, sorted. */
  readonly unmirrorable: readonly UnmirrorableImage[];
  /** Present when the catalog was included. */
  readonly catalog?: CatalogUsed;
}

/** An option of {@link assembleImageSet} that cannot be used; names the option. */
export class ImageSetError extends Error {
  override readonly name = "ImageSetError";

  constructor(
    /** The option or configuration key at fault, e.g. "conformanceImage", "images.extra[3]". */
    readonly source: string,
    /** What is wrong, without the source in front. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${reason}`, options);
  }
}

/**
 * Assembles the images a conformance run needs.
 *
 * @throws ImageSetError for an unusable option (names the option / config key).
 * @throws ImageListError for a bad line of a list file (names `file:line`).
 * @throws InvalidKubernetesVersionError, UnknownKubernetesVersionError from the catalog.
 */
export function assembleImageSet(options: ImageSetOptions): ImageSet {
  const version = parseKubernetesVersion(options.kubernetesVersion);
  const collected = new Map<string, { reference: ImageReference; origins: string[] }>();
  const add = (reference: ImageReference, origin: string): void => {
    const canonical = canonicalImageReference(reference);
    const existing = collected.get(canonical);
    if (existing === undefined) collected.set(canonical, { reference, origins: [origin] });
    else if (!existing.origins.includes(origin)) existing.origins.push(origin);
  };

  let catalog: CatalogUsed | undefined;
  if (options.includeCatalog) {
    const entry = catalogForKubernetesVersion(
      options.kubernetesVersion,
      options.catalogDirectory ?? CATALOG_DIRECTORY,
    );
    for (const reference of entry.images) add(reference, `catalog ${entry.kubernetesVersion}`);
    const { kubernetesVersion, file, provenance, completeness } = entry;
    catalog = { kubernetesVersion, file, provenance, completeness };
  }

  const conformanceImage = options.conformanceImage ?? defaultConformanceImage(options, version);
  add(parseOption(conformanceImage, "conformanceImage"), "conformance");
  add(parseOption(options.resultsImage ?? DEFAULT_RESULTS_IMAGE, "resultsImage"), "results");

  const extraSource = options.extraImagesSource ?? "extraImages";
  (options.extraImages ?? []).forEach((text, index) => {
    const source = `${extraSource}[${index}]`;
    add(parseOption(text, source), `config ${source}`);
  });

  for (const list of options.listFiles ?? []) {
    for (const entry of parseImageListFile(list.text, list.name).entries) {
      add(entry.reference, `list file ${list.name}:${entry.lineNumber}`);
    }
  }

  const images: ImageSetEntry[] = [];
  const unmirrorable: UnmirrorableImage[] = [];
  const sorted = [...collected].sort(([a], [b]) => compareStrings(a, b));
  for (const [canonical, { reference, origins }] of sorted) {
    const reason = unmirrorableReason(reference);
    if (reason === undefined) images.push({ reference, canonical, origins });
    else unmirrorable.push({ reference, canonical, origins, reason });
  }
  return catalog === undefined ? { images, unmirrorable } : { images, unmirrorable, catalog };
}

/** `registry.k8s.io/conformance:v1.31.4`; the tag needs the patch release. */
function defaultConformanceImage(options: ImageSetOptions, version: KubernetesVersion): string {
  const tag = releaseTag(version);
  if (tag === undefined) {
    throw new ImageSetError(
      "kubernetesVersion",
      `${JSON.stringify(options.kubernetesVersion)} has no patch number, so the conformance ` +
        `image tag cannot be chosen: give the cluster's full version (e.g. ` +
        `"${version.minorVersion}.4", as \`kubectl version\` prints it) or set conformanceImage`,
    );
  }
  return `${CONFORMANCE_IMAGE_REPOSITORY}:${tag}`;
}

function parseOption(text: string, source: string): ImageReference {
  try {
    return parseImageReference(text);
  } catch (error) {
    if (!(error instanceof InvalidImageReferenceError)) throw error;
    throw new ImageSetError(source, error.message, { cause: error });
  }
}
