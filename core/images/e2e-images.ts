/**
 * The exact image set of a conformance run, as the conformance image's own
 * `e2e.test --list-images` prints it: where e2e.test sits in the image, which layer holds it,
 * the platform it is read for, and how its output becomes the image set. Pure.
 */

import * as path from "node:path";
import { ImageListError, parseImageList } from "./list-file";
import { canonicalImageReference, parseImageReference, type ImageReference } from "./reference";

/** Where the conformance image keeps the suite binary (its Dockerfile copies it there). */
export const E2E_TEST_PATH = "usr/local/bin/e2e.test";

/** An image named in skopeo's transport syntax, as far as reading e2e.test needs it. */
export type TransportReference =
  | { transport: "docker"; reference: ImageReference }
  | { transport: "oci"; directory: string; refName: string };

/** Why a transport reference or the suite's output cannot be used. */
export class E2eImagesError extends Error {
  override readonly name = "E2eImagesError";
}

/**
 * Parses `docker://registry/repository:tag` and `oci:DIR:TAG` (skopeo's transport syntax).
 *
 * @throws E2eImagesError naming the argument and what is allowed.
 */
export function parseTransportReference(
  text: string,
  arg = "--conformance-image",
): TransportReference {
  const allowed = `use docker://REGISTRY/REPOSITORY:TAG or oci:DIR:TAG`;
  if (text.startsWith("docker://")) {
    try {
      return {
        transport: "docker",
        reference: parseImageReference(text.slice("docker://".length)),
      };
    } catch (error) {
      throw new E2eImagesError(`${arg}: ${(error as Error).message}; ${allowed}`);
    }
  }
  if (text.startsWith("oci:")) {
    const rest = text.slice("oci:".length);
    // skopeo splits at the first ':': the directory has none, the ref name may have several.
    const colon = rest.indexOf(":");
    const directory = colon === -1 ? "" : rest.slice(0, colon);
    const refName = colon === -1 ? "" : rest.slice(colon + 1);
    if (directory === "" || refName === "") {
      throw new E2eImagesError(
        `${arg}: ${JSON.stringify(text)} names no image in the layout; ${allowed} (the TAG is the image's ref name in the layout)`,
      );
    }
    return { transport: "oci", directory, refName };
  }
  throw new E2eImagesError(`${arg}: ${JSON.stringify(text)} has no transport; ${allowed}`);
}

/** The transport reference as skopeo reads it. */
export function transportString(reference: TransportReference): string {
  return reference.transport === "docker"
    ? `docker://${canonicalImageReference(reference.reference)}`
    : `oci:${reference.directory}:${reference.refName}`;
}

/** Node's `process.arch` -> the architecture name images use (Go's GOARCH). */
export const GO_ARCH: Readonly<Record<string, string>> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ppc64: "ppc64le",
  s390x: "s390x",
};

/**
 * The platform e2e.test is read for: the machine that runs it (the bastion), as `os/arch`.
 *
 * @throws E2eImagesError when the machine cannot run the Linux binary.
 */
export function bastionPlatform(platform: string, arch: string): string {
  const goArch = GO_ARCH[arch];
  if (platform !== "linux" || goArch === undefined) {
    throw new E2eImagesError(
      `e2e.test is a Linux binary and this machine is ${platform}/${arch}; derive the image set on a Linux machine, or give its output as imagesListFiles`,
    );
  }
  return `linux/${goArch}`;
}

/** A tar entry name as the path e2e.test is compared with ("./usr/..." and "/usr/..." alike). */
function entryPath(name: string): string {
  return path.posix.normalize(name.replace(/^\.?\/+/, "")).replace(/\/$/, "");
}

/**
 * Which layer holds the file, topmost first: the index of the layer whose entry is the file,
 * or undefined when a later layer deleted it (an OCI whiteout) or no layer has it.
 * `listings` are the entry names of each layer, bottom layer first.
 */
export function layerHolding(
  listings: readonly (readonly string[])[],
  file: string,
): number | undefined {
  const target = entryPath(file);
  const directory = path.posix.dirname(target);
  const whiteout = path.posix.join(directory, `.wh.${path.posix.basename(target)}`);
  const opaque = path.posix.join(directory, ".wh..wh..opq");
  for (let index = listings.length - 1; index >= 0; index--) {
    const names = listings[index].map(entryPath);
    if (names.includes(target)) return index;
    if (names.includes(whiteout) || names.includes(opaque)) return undefined;
    // A whiteout of a parent directory hides the file too.
    const parents = target.split("/").slice(0, -1);
    for (let depth = 1; depth <= parents.length; depth++) {
      const parent = parents.slice(0, depth);
      const hidden = [...parent.slice(0, -1), `.wh.${parent[parent.length - 1]}`].join("/");
      if (names.includes(hidden)) return undefined;
    }
  }
  return undefined;
}

/** The tar entry name as the layer spells it, to extract exactly that entry. */
export function entryNameIn(listing: readonly string[], file: string): string | undefined {
  const target = entryPath(file);
  return listing.find((name) => entryPath(name) === target);
}

/** The cache file of an image's list: by the image's digest and the platform it was read for. */
export function e2eImagesCacheFile(
  cacheDirectory: string,
  digest: string,
  platform: string,
): string {
  const hex = /^sha256:([0-9a-f]{64})$/.exec(digest)?.[1];
  if (hex === undefined) throw new E2eImagesError(`not a sha256 digest: ${digest}`);
  return path.join(cacheDirectory, `${hex}-${platform.replace(/\//g, "-")}.txt`);
}

/**
 * The images `e2e.test --list-images` printed, normalised, sorted and without duplicates.
 *
 * @throws E2eImagesError naming the image when the output is not a list of references.
 */
export function parseListImagesOutput(stdout: string, image: string): string[] {
  let references: ImageReference[];
  try {
    references = parseImageList(stdout, `${image} e2e.test --list-images`);
  } catch (error) {
    if (error instanceof ImageListError) {
      throw new E2eImagesError(`${error.message} (is this a conformance image?)`);
    }
    throw error;
  }
  if (references.length === 0) {
    throw new E2eImagesError(`${image}: e2e.test --list-images printed no image`);
  }
  return [...new Set(references.map(canonicalImageReference))].sort();
}
