/**
 * Preflight: every image the run needs must be in the mirror, with the digest the mirror step
 * recorded, before the pod exists; otherwise the run fails an hour in on one test's pull. Pure:
 * the checks to make and the verdict on the registry's answers.
 */

import type { MirroredImage } from "./plan";

/** One manifest lookup (the shape of components/mirror/actions/registry-client.ts's ImageCheck). */
export interface PreflightCheck {
  readonly repository: string;
  readonly reference: string;
  readonly expectedDigest?: string;
  /** Upstream name, for the message. */
  readonly source: string;
}

export interface PreflightResult extends PreflightCheck {
  readonly state: "present" | "missing" | "wrong-digest";
  readonly digest?: string;
}

/**
 * The lookups for a plan's images. The expected digest is the mirror step's record for the
 * source (`digests`, keyed by canonical source), or the source's own digest when pinned.
 */
export function preflightChecks(
  images: readonly MirroredImage[],
  digests: Readonly<Record<string, string>>,
): PreflightCheck[] {
  return images.map((image) => {
    const pinned = image.reference.includes(":") ? image.reference : undefined;
    const expectedDigest = digests[image.source] ?? pinned;
    return {
      source: image.source,
      repository: image.mirrorPath,
      reference: image.reference,
      ...(expectedDigest === undefined ? {} : { expectedDigest }),
    };
  });
}

/** The failure message for what is missing or different, or undefined when all is present. */
export function preflightFailure(
  mirrorHost: string,
  results: readonly PreflightResult[],
): string | undefined {
  const missing = results.filter((result) => result.state === "missing");
  const wrong = results.filter((result) => result.state === "wrong-digest");
  if (missing.length === 0 && wrong.length === 0) return undefined;
  const lines = [
    `preflight: ${missing.length + wrong.length} of ${results.length} images the run needs are not ` +
      `in the mirror ${mirrorHost} as expected; the pod was not created.`,
  ];
  for (const result of missing) {
    lines.push(`  missing: ${result.source} (looked for ${result.repository}:${result.reference})`);
  }
  for (const result of wrong) {
    lines.push(
      `  wrong digest: ${result.source} is ${result.digest}, expected ${result.expectedDigest}`,
    );
  }
  lines.push("Mirror these images (ImageMirror) and run `pulumi up` again.");
  return lines.join("\n");
}
