import type { RegistryClient } from "./registry-client";

/**
 * Signatures, attestations and SBOMs that travel beside an image: cosign's tags
 * (`sha256-<hex>.sig`, `.att`, `.sbom` in the image's repository) and OCI 1.1 referrers (the
 * referrers API, or its fallback tag `sha256-<hex>`). The copy engine copies the names it is
 * given, so each one found is either put into the image set by name or reported as dropped.
 */

export type CompanionKind = "signature" | "attestation" | "sbom" | "referrers";

/** One artifact stored beside an image. */
export interface Companion {
  /** The image it belongs to (canonical upstream name). */
  image: string;
  kind: CompanionKind;
  /** Its own name, `<registry>/<repository>:<tag>` under the image's upstream name. */
  reference: string;
}

const cosignSuffixes: [string, CompanionKind][] = [
  [".sig", "signature"],
  [".att", "attestation"],
  [".sbom", "sbom"],
];

/** The tags cosign and the OCI referrers fallback give an image's companions. Pure. */
export function companionTags(digest: string): { tag: string; kind: CompanionKind }[] {
  const tag = digest.replace(":", "-");
  return [
    ...cosignSuffixes.map(([suffix, kind]) => ({ tag: `${tag}${suffix}`, kind })),
    { tag, kind: "referrers" as const },
  ];
}

/** Whether a tag is one of those companion tags (so the image is itself a companion). Pure. */
export function isCompanionTag(reference: string): boolean {
  return /^sha256-[0-9a-f]{64}(\.sig|\.att|\.sbom)?$/.test(reference);
}

/** The image's name without tag or digest: where its companions live. Pure. */
export function repositoryName(canonical: string): string {
  const withoutDigest = canonical.split("@")[0];
  const lastSlash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  return colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
}

/**
 * Looks for every companion of one image (by its top-level digest) in its source repository.
 * The referrers API is asked first; registries without it answer 404 and the fallback tag is
 * looked up instead.
 */
export async function findCompanions(
  client: RegistryClient,
  image: string,
  repository: string,
  digest: string,
): Promise<Companion[]> {
  const found: Companion[] = [];
  const name = repositoryName(image);
  let referrersViaApi = false;
  try {
    const answer = await client.getText(repository, "referrers", digest);
    const index = JSON.parse(answer.body) as { manifests?: unknown[] };
    referrersViaApi = (index.manifests ?? []).length > 0;
  } catch {
    // No referrers API (distribution 2.x answers 404): the fallback tag tells.
  }
  for (const { tag, kind } of companionTags(digest)) {
    if (kind === "referrers" && referrersViaApi) {
      found.push({ image, kind, reference: `${name}@${digest}` });
      continue;
    }
    if ((await client.manifestDigest(repository, tag)) !== undefined) {
      found.push({ image, kind, reference: `${name}:${tag}` });
    }
  }
  return found;
}

/** Companions that are not in the image set by name, so the copy leaves them behind. Pure. */
export function droppedCompanions(
  companions: readonly Companion[],
  imageSet: ReadonlySet<string>,
): Companion[] {
  return companions.filter((companion) =>
    companion.kind === "referrers" && companion.reference.includes("@")
      ? true
      : !imageSet.has(companion.reference),
  );
}
