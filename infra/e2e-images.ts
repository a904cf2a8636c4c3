import {
  defaultE2eImagesCache,
  deriveE2eImages,
  type DeriveE2eImagesOptions,
} from "../components/mirror/actions/e2e-images";
import type { RegistryAccess } from "../components/mirror/actions/registry-client";
import { planImageCopies } from "../components/mirror/plan";
import type { TransportReference } from "../core/images/e2e-images";
import { parseKubernetesVersion, releaseTag } from "../core/images/kubernetes-version";
import { canonicalImageReference, parseImageReference } from "../core/images/reference";
import type { StackConfig } from "./config";

/** The suite's image list for a stack: read from its conformance image, or why not. */
export type StackE2eImages =
  | {
      kind: "derived";
      /** The conformance image (upstream name). */
      conformanceImage: string;
      images: readonly string[];
      digest: string;
    }
  | { kind: "fallback"; conformanceImage?: string; reason: string }
  /** The stack does not want the suite's list (imagesIncludeCatalog: false) or mirrors nothing. */
  | { kind: "off" };

/** The conformance image the stack runs, upstream name; undefined without a patch version. */
export function conformanceImageOf(config: StackConfig): string | undefined {
  if (config.images.conformanceImage !== undefined) {
    return canonicalImageReference(parseImageReference(config.images.conformanceImage));
  }
  const tag = releaseTag(parseKubernetesVersion(config.kubernetesVersion));
  return tag === undefined ? undefined : `registry.k8s.io/conformance:${tag}`;
}

/**
 * Where this machine reads the conformance image: upstream (or its configured stand-in),
 * the source registry at the image's mirror path, or the archive's OCI layout.
 */
export function conformanceImageLocation(
  config: StackConfig,
  conformanceImage: string,
): { reference: TransportReference; access?: RegistryAccess } {
  const source = config.images.source;
  if (source.kind === "archive") {
    return {
      reference: { transport: "oci", directory: source.directory, refName: conformanceImage },
    };
  }
  const [copy] = planImageCopies({
    images: [conformanceImage],
    source,
    destination: { kind: "archive", directory: "unused" },
    upstreamPrefixes: config.mirror.upstreamPrefixes,
  }).copies;
  const from = copy.request.from;
  if (from.transport !== "docker") throw new Error("a registry source reads over docker://");
  const separator = from.reference.startsWith("sha256:") ? "@" : ":";
  return {
    reference: {
      transport: "docker",
      reference: parseImageReference(
        `${from.access.host}/${from.repository}${separator}${from.reference}`,
      ),
    },
    // Credentials are Pulumi secrets, unknown here: skopeo's own auth files apply.
    access: { ...from.access, username: undefined, password: undefined },
  };
}

/**
 * Reads the suite's image list from the stack's conformance image; never throws: a failure is
 * the reason the shipped list is used instead.
 */
export async function e2eImagesForStack(
  config: StackConfig,
  derive: typeof deriveE2eImages = deriveE2eImages,
  options: Partial<DeriveE2eImagesOptions> = {},
): Promise<StackE2eImages> {
  if (!config.images.includeCatalog) return { kind: "off" };
  let conformanceImage: string | undefined;
  try {
    conformanceImage = conformanceImageOf(config);
    if (conformanceImage === undefined) {
      return {
        kind: "fallback",
        reason: `kubernetesVersion ${config.kubernetesVersion} has no patch number to name the conformance image`,
      };
    }
    const location = conformanceImageLocation(config, conformanceImage);
    const derived = await derive(location.reference, {
      cacheDirectory: defaultE2eImagesCache(),
      ...(location.access === undefined ? {} : { access: location.access }),
      ...options,
    });
    return { kind: "derived", conformanceImage, images: derived.images, digest: derived.digest };
  } catch (error) {
    return {
      kind: "fallback",
      ...(conformanceImage === undefined ? {} : { conformanceImage }),
      reason: (error as Error).message,
    };
  }
}

function shorten(text: string): string {
  return text.length > 240 ? `${text.slice(0, 239)}…` : text;
}

/** The one warning when the shipped list stands in: what happened and what to do. */
export function fallbackWarning(
  e2eImages: Extract<StackE2eImages, { kind: "fallback" }>,
  minorVersion: string,
): string {
  return (
    `using the shipped image list for ${minorVersion}, which can miss images of your patch ` +
    `release: ${shorten(e2eImages.reason)}. Make the conformance image readable from this machine ` +
    `(the run reads its e2e.test), or set imagesListFiles to its e2e.test --list-images output.`
  );
}
