/**
 * The shipped catalog of conformance images per Kubernetes minor version.
 *
 * Each data file in ./catalog is what `e2e.test --list-images` prints for that version (sorted,
 * de-duplicated), with a provenance header and a trailer listing what could not be verified.
 * The files are read from disk when asked for; everything else here is pure parsing.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";

import { parseKubernetesVersion } from "./kubernetes-version";
import { ImageListComment, parseImageListFile } from "./list-file";
import { ImageReference } from "./reference";

/** Whether a catalog file describes a release or a snapshot of the development branch. */
export type CatalogKind = "release" | "development-snapshot";

/** Where a catalog file's list comes from, and how far it can be trusted. */
export interface CatalogProvenance {
  /** Repository, path and commit the list was read from. */
  readonly source: string;
  readonly kind: CatalogKind;
  /** What the list is and is not, in plain words. */
  readonly note: string;
}

/** Whether the list is known to hold every image the tests use, and if not, what is missing. */
export interface CatalogCompleteness {
  readonly complete: boolean;
  readonly caveats: readonly string[];
}

/** The catalog's list for one Kubernetes minor version. */
export interface CatalogEntry {
  /** The minor version, e.g. "1.31". */
  readonly kubernetesVersion: string;
  /** Data file name inside the catalog directory. */
  readonly file: string;
  readonly images: readonly ImageReference[];
  readonly provenance: CatalogProvenance;
  readonly completeness: CatalogCompleteness;
}

/** What the catalog knows about a data file before reading it. */
export interface CatalogFileDescriptor {
  readonly kubernetesVersion: string;
  readonly file: string;
  readonly kind: CatalogKind;
  readonly note: string;
}

/** Thrown when the catalog has no list for the requested minor version. */
export class UnknownKubernetesVersionError extends Error {
  override readonly name = "UnknownKubernetesVersionError";

  constructor(
    readonly requested: string,
    readonly knownVersions: readonly string[],
  ) {
    super(
      `the image catalog has no list for Kubernetes ${JSON.stringify(requested)}; ` +
        `it has: ${knownVersions.join(", ")}. Run \`e2e.test --list-images\` from the ` +
        `conformance image of your version, give its output as an image list file and leave ` +
        `the shipped catalog out`,
    );
  }
}

/** A catalog data file that does not carry the provenance the catalog relies on. */
export class CatalogFileError extends Error {
  override readonly name = "CatalogFileError";

  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`catalog file ${file}: ${reason}`);
  }
}

/** Directory holding the data files, next to this module. */
export const CATALOG_DIRECTORY = join(__dirname, "catalog");

/**
 * The catalog's data files. The notes are deliberately blunt: none of these lists was read at a
 * release tag (see each file's header for the evidence).
 */
export const CATALOG_FILES: readonly CatalogFileDescriptor[] = [
  {
    kubernetesVersion: "1.31",
    file: "kubernetes-v1.31.txt",
    kind: "release",
    note:
      "Read from master just after the release-1.31 branch was cut and before v1.31.0 was " +
      "tagged; expected to equal v1.31.0 but not read at the tag. Later v1.31.x patch releases " +
      "may use other image tags.",
  },
  {
    kubernetesVersion: "1.33",
    file: "kubernetes-v1.33-dev-78fc8e44.txt",
    kind: "development-snapshot",
    note:
      "Development snapshot of master during the 1.33 cycle, NOT the v1.33.0 release list; " +
      "v1.33.x is expected to differ at least in the etcd and distroless-iptables tags.",
  },
  {
    kubernetesVersion: "1.35",
    file: "kubernetes-v1.35-dev-7ed31812.txt",
    kind: "development-snapshot",
    note:
      "Development snapshot of master early in the 1.35 cycle (shortly after v1.34.0), NOT a " +
      "release list; neither v1.34.x nor v1.35.x was read.",
  },
];

/** Minor versions the catalog has lists for, ascending. */
export function knownCatalogVersions(): string[] {
  return CATALOG_FILES.map((descriptor) => descriptor.kubernetesVersion);
}

/**
 * The catalog entry for a Kubernetes version. Accepts "1.31", "v1.31.4", "1.31.0-rc.1" (the
 * prerelease is dropped): only the minor version selects the list.
 *
 * Reads the data file from `catalogDirectory` (default: next to this module).
 *
 * @throws InvalidKubernetesVersionError for an unparseable version.
 * @throws UnknownKubernetesVersionError when the catalog has no list for that minor.
 */
export function catalogForKubernetesVersion(
  version: string,
  catalogDirectory: string = CATALOG_DIRECTORY,
): CatalogEntry {
  const { minorVersion } = parseKubernetesVersion(version);
  const descriptor = CATALOG_FILES.find((entry) => entry.kubernetesVersion === minorVersion);
  if (descriptor === undefined) {
    throw new UnknownKubernetesVersionError(version, knownCatalogVersions());
  }
  const text = readFileSync(join(catalogDirectory, descriptor.file), "utf8");
  return parseCatalogFile(text, descriptor);
}

/**
 * Builds a catalog entry from a data file's text: the images, the source named in its header,
 * and the caveats stated in its trailer.
 *
 * @throws ImageListError for a bad image line.
 * @throws CatalogFileError when the header names no source commit.
 */
export function parseCatalogFile(text: string, descriptor: CatalogFileDescriptor): CatalogEntry {
  const list = parseImageListFile(text, descriptor.file);
  return {
    kubernetesVersion: descriptor.kubernetesVersion,
    file: descriptor.file,
    images: list.entries.map((entry) => entry.reference),
    provenance: {
      source: sourceNamedIn(list.header, descriptor.file),
      kind: descriptor.kind,
      note: descriptor.note,
    },
    completeness: completenessStatedIn(list.trailer, descriptor),
  };
}

/**
 * The source named in the header: "repo <r>, path <p>, commit <sha>" (read from source, possibly
 * wrapped over two lines) or "image <ref>@sha256:<hex>" (scripts/regenerate-catalog.sh).
 */
function sourceNamedIn(header: readonly ImageListComment[], file: string): string {
  const text = header.map((comment) => comment.text.trim()).join(" ");
  const fromSource = /repo (\S+), path (\S+),\s+commit ([0-9a-f]{40})/.exec(text);
  if (fromSource !== null) return `${fromSource[1]} ${fromSource[2]} @ ${fromSource[3]}`;
  const fromImage = /SOURCE: image (\S+@sha256:[0-9a-f]{64})/.exec(text);
  if (fromImage !== null) return `e2e.test --list-images of ${fromImage[1]}`;
  throw new CatalogFileError(
    file,
    "the header must name its source as 'repo <owner/name>, path <file>, commit <40 hex>' or 'SOURCE: image <ref>@sha256:<64 hex>'",
  );
}

interface TrailerSection {
  readonly title: string;
  readonly lines: readonly string[];
}

/** Trailer comments grouped under their `==== TITLE ====` headings. */
function trailerSections(trailer: readonly ImageListComment[]): TrailerSection[] {
  const sections: { title: string; lines: string[] }[] = [];
  for (const comment of trailer) {
    const heading = /^=+\s*(.*?)\s*=+$/.exec(comment.text.trim());
    if (heading !== null) sections.push({ title: heading[1] ?? "", lines: [] });
    else if (comment.text.trim() !== "") sections[sections.length - 1]?.lines.push(comment.text);
  }
  return sections;
}

function completenessStatedIn(
  trailer: readonly ImageListComment[],
  descriptor: CatalogFileDescriptor,
): CatalogCompleteness {
  const caveats: string[] = [];
  let complete = true;
  for (const section of trailerSections(trailer)) {
    const body = section.lines.map((line) => line.trim().replace(/\s+/g, " ")).join(" ");
    if (/\bUNKNOWN\b/.test(section.title)) {
      // The data file says which manifests it could not read: the list may miss their images.
      complete = false;
      caveats.push(`CSI images are only partially verified (${section.title}): ${body}`);
    } else if (/\bVARIANTS\b/.test(section.title)) {
      caveats.push(`${section.title}: ${body}`);
    }
  }
  if (descriptor.kind === "development-snapshot") {
    complete = false;
    caveats.push(
      `development snapshot, not a release: release ${descriptor.kubernetesVersion}.x may ` +
        `need images that are not in this list`,
    );
  }
  return { complete, caveats };
}
