/**
 * Kubernetes version strings as users and clusters write them ("1.31", "v1.31.4",
 * "v1.31.0-rc.1", "v1.31.4+k3s1", "v1.31.4-eks-a1b2c3"). Pure: no I/O.
 */

/** A parsed Kubernetes version; prerelease and build metadata are dropped. */
export interface KubernetesVersion {
  readonly major: number;
  readonly minor: number;
  /** Absent when only a minor version such as "1.31" was given. */
  readonly patch?: number;
  /** "1.31": the key the image catalog is organised by. */
  readonly minorVersion: string;
}

/** Thrown for version strings that are not `[v]MAJOR.MINOR[.PATCH][-prerelease][+build]`. */
export class InvalidKubernetesVersionError extends Error {
  override readonly name = "InvalidKubernetesVersionError";

  constructor(readonly input: string) {
    super(
      `invalid Kubernetes version ${JSON.stringify(input)}: expected [v]MAJOR.MINOR[.PATCH], ` +
        `e.g. "1.31", "v1.31.4" or "1.31.0-rc.1"`,
    );
  }
}

const VERSION_PATTERN =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * Parses a Kubernetes version. Prerelease ("-rc.1") and build ("+k3s1") suffixes are dropped,
 * the way hydrophone picks the conformance image for a server version.
 *
 * @throws InvalidKubernetesVersionError
 */
export function parseKubernetesVersion(input: string): KubernetesVersion {
  const match = VERSION_PATTERN.exec(input.trim());
  if (match === null) throw new InvalidKubernetesVersionError(input);
  const major = Number(match[1]);
  const minor = Number(match[2]);
  const version = { major, minor, minorVersion: `${major}.${minor}` };
  return match[3] === undefined ? version : { ...version, patch: Number(match[3]) };
}

/** "v1.31.4" for a version with a patch number, `undefined` for a bare minor. */
export function releaseTag(version: KubernetesVersion): string | undefined {
  return version.patch === undefined
    ? undefined
    : `v${version.major}.${version.minor}.${version.patch}`;
}
