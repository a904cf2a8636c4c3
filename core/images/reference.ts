/**
 * Container image references, parsed and normalised the way `docker pull` and containerd do.
 *
 * The grammar is the one of github.com/distribution/reference (reference.go, regexp.go) and the
 * normalisation is its `ParseNormalizedNamed` + `TagNameOnly` (normalize.go):
 *
 *     reference        := name [ ":" tag ] [ "@" digest ]
 *     name             := [ registry "/" ] repository
 *     registry         := host [ ":" port ]          host: DNS-like name, IPv4, or [IPv6]
 *     repository       := path-component [ "/" path-component ]*
 *     path-component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *     tag              := [\w][\w.-]{0,127}
 *     digest           := algorithm ":" hex       e.g. sha256:<64 lowercase hex>
 *
 * Pure: no I/O.
 */

/** A fully normalised image reference. */
export interface ImageReference {
  /** Registry host with optional port, e.g. "docker.io", "localhost:5000", "[::1]:5000". */
  readonly registry: string;
  /** Repository path inside the registry, e.g. "library/nginx", "e2e-test-images/agnhost". */
  readonly repository: string;
  /** Tag, e.g. "1.27-alpine". Absent only when the reference is pinned by digest alone. */
  readonly tag?: string;
  /** Content digest, e.g. "sha256:<64 lowercase hex>". */
  readonly digest?: string;
}

/** Thrown for any input that is not a valid image reference; `reason` says what is wrong. */
export class InvalidImageReferenceError extends Error {
  override readonly name = "InvalidImageReferenceError";

  constructor(
    /** The text that failed to parse, exactly as given. */
    readonly input: string,
    /** Why it is invalid and what would be allowed instead. */
    readonly reason: string,
  ) {
    super(`invalid image reference ${JSON.stringify(input)}: ${reason}`);
  }
}

/** Docker Hub's canonical registry name. */
export const DOCKER_HUB_REGISTRY = "docker.io";
/** Historical Docker Hub name ("the Docker Index"); normalised to {@link DOCKER_HUB_REGISTRY}. */
const LEGACY_DOCKER_HUB_REGISTRY = "index.docker.io";
/** Namespace of Docker Hub's official images: "nginx" means "library/nginx". */
const OFFICIAL_REPOSITORY_NAMESPACE = "library/";
/** The tag `docker pull` assumes when a reference has neither a tag nor a digest. */
export const DEFAULT_TAG = "latest";
/** Maximum length of `registry/repository` (distribution's NameTotalLengthMax). */
export const MAX_NAME_LENGTH = 255;

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
// Only compressed/uncompressed IPv6 between brackets: zone ids and IPv4-mapped forms are excluded.
const IPV6_ADDRESS = "\\[(?:[a-fA-F0-9:]+)\\]";
const REGISTRY_PATTERN = new RegExp(`^(?:${DOMAIN_NAME}|${IPV6_ADDRESS})(?::[0-9]+)?$`);
const PATH_COMPONENT_PATTERN = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_PATTERN = /^\w[\w.-]{0,127}$/;
const DIGEST_ALGORITHM_PATTERN = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*$/;
const DIGEST_HEX_PATTERN = /^[0-9a-fA-F]{32,}$/;
// A bare image ID is rejected so that it cannot be mistaken for a Docker Hub repository name.
const IMAGE_ID_PATTERN = /^[a-f0-9]{64}$/;

/**
 * Digest algorithms a registry client accepts (those registered in opencontainers/go-digest),
 * with the exact length of their lowercase hex encoding.
 */
const SUPPORTED_DIGEST_ALGORITHMS: ReadonlyMap<string, number> = new Map([
  ["sha256", 64],
  ["sha384", 96],
  ["sha512", 128],
]);

/**
 * Parses and normalises an image reference.
 *
 * Normalisation follows docker (distribution's `splitDockerDomain`):
 * - the first of several path components is the registry when it contains "." or ":", is
 *   "localhost", or has an uppercase letter (a namespace cannot, so "Foo/bar" is host "Foo",
 *   repository "bar"); otherwise the registry is `docker.io`; `index.docker.io` is rewritten
 *   to `docker.io`;
 * - a single-component Docker Hub repository gets the `library/` namespace;
 * - neither tag nor digest means tag `latest`. Making the implicit tag explicit here is a
 *   deliberate choice: every parsed reference then pins *something*, and the canonical form
 *   round-trips (`parse(canonical(parse(x)))` equals `parse(x)`).
 *
 * Repository paths stay lowercase: "foo/Bar" and "Foo/Bar" are rejected, saying so.
 *
 * @throws InvalidImageReferenceError when the input is not a valid reference.
 */
export function parseImageReference(input: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidImageReferenceError(input, reason);
  };

  if (input === "") fail("the reference is empty");
  if (/\s/.test(input)) fail("whitespace is not allowed in an image reference");
  if (input.includes("://")) {
    fail(
      "a URL scheme is not allowed; write registry/repository[:tag], e.g. registry.k8s.io/pause:3.10",
    );
  }
  if (IMAGE_ID_PATTERN.test(input)) {
    fail("a 64-character hexadecimal string is an image ID, not a repository name");
  }

  // '@' cannot appear in a name or tag, so the first one starts the digest.
  const at = input.indexOf("@");
  const nameAndTag = at === -1 ? input : input.slice(0, at);
  const digestText = at === -1 ? undefined : input.slice(at + 1);
  if (nameAndTag === "") fail("a repository name is required before '@'");

  const { registry, remainder, writtenRemainder } = splitRegistry(nameAndTag);

  // Repository paths cannot contain ':', so the first ':' after the registry starts the tag.
  const colon = remainder.indexOf(":");
  const repository = colon === -1 ? remainder : remainder.slice(0, colon);
  const tag = colon === -1 ? undefined : remainder.slice(colon + 1);
  const writtenColon = writtenRemainder.indexOf(":");
  const writtenRepository =
    writtenColon === -1 ? writtenRemainder : writtenRemainder.slice(0, writtenColon);

  if (!REGISTRY_PATTERN.test(registry)) {
    fail(
      `invalid registry host '${registry}': expected a DNS name or IPv4 address (letters, digits, ` +
        `'-' inside dot-separated labels) or a bracketed IPv6 address, optionally followed by ':<port>'`,
    );
  }
  if (repository === "") fail("the repository name is empty");
  if (repository.toLowerCase() !== repository) {
    fail(
      `uppercase letters are not allowed in repository '${writtenRepository}': a repository ` +
        `path is lowercase (only a registry host, the first component, may have capitals)`,
    );
  }
  for (const component of repository.split("/")) {
    if (!PATH_COMPONENT_PATTERN.test(component)) {
      fail(
        `invalid repository '${writtenRepository}': path component '${component}' must be lowercase ` +
          `letters and digits, optionally joined by '.', '_', '__' or runs of '-', and must ` +
          `start and end with a letter or digit`,
      );
    }
  }
  const name = `${registry}/${repository}`;
  if (name.length > MAX_NAME_LENGTH) {
    fail(
      `the name '${name}' is ${name.length} characters long; at most ${MAX_NAME_LENGTH} are allowed`,
    );
  }
  if (tag !== undefined && !TAG_PATTERN.test(tag)) {
    fail(
      `invalid tag '${tag}': a tag is 1 to 128 characters, letters, digits, '_', '.' and '-', ` +
        `and must not start with '.' or '-'`,
    );
  }
  if (digestText !== undefined) {
    const problem = digestProblem(digestText);
    if (problem !== undefined) fail(problem);
  }

  const reference: { registry: string; repository: string; tag?: string; digest?: string } = {
    registry,
    repository,
  };
  if (tag !== undefined) reference.tag = tag;
  else if (digestText === undefined) reference.tag = DEFAULT_TAG;
  if (digestText !== undefined) reference.digest = digestText;
  return reference;
}

/** True for a registry host as the grammar allows it: `host[:port]`, host a DNS name, IPv4 or [IPv6]. */
export function isValidRegistryHost(host: string): boolean {
  return REGISTRY_PATTERN.test(host);
}

/** True for a repository path: lowercase path components separated by '/'. */
export function isValidRepositoryPath(path: string): boolean {
  return path.split("/").every((component) => PATH_COMPONENT_PATTERN.test(component));
}

/**
 * True when a reference starting with `host/` is read as that registry rather than as a
 * Docker Hub namespace: the host contains '.' or ':', is "localhost", or has an uppercase
 * letter (namespaces are lowercase), as distribution's `splitDockerDomain` decides.
 */
export function isRecognisedAsRegistryHost(host: string): boolean {
  return host === "localhost" || /[.:]/.test(host) || host.toLowerCase() !== host;
}

/** Like {@link parseImageReference} but returns `undefined` instead of throwing. */
export function tryParseImageReference(input: string): ImageReference | undefined {
  try {
    return parseImageReference(input);
  } catch (error) {
    if (error instanceof InvalidImageReferenceError) return undefined;
    throw error;
  }
}

/**
 * The fully qualified form, e.g. `docker.io/library/nginx:1.27-alpine`.
 *
 * Both tag and digest are kept (`name:tag@digest`): the digest decides what is pulled, the tag
 * documents what was meant. A reference with neither gets `:latest`, as docker would pull.
 */
export function canonicalImageReference(reference: ImageReference): string {
  return repositoryName(reference) + suffixOf(reference);
}

/** `registry/repository`, without tag or digest, e.g. `registry.k8s.io/pause`. */
export function repositoryName(reference: ImageReference): string {
  return `${reference.registry}/${reference.repository}`;
}

/**
 * The short name docker shows: `docker.io/` and the official `library/` namespace are dropped
 * (`docker.io/library/nginx` -> `nginx`, `docker.io/bitnami/redis` -> `bitnami/redis`); names on
 * other registries are unchanged, and so are Docker Hub names whose first component would read
 * as a registry host. No tag or digest.
 */
export function familiarName(reference: ImageReference): string {
  if (reference.registry !== DOCKER_HUB_REGISTRY) return repositoryName(reference);
  // "docker.io/a.b/c" shortened to "a.b/c" would read back as registry "a.b": keep it whole.
  const firstComponent = reference.repository.split("/")[0] ?? "";
  if (reference.repository.includes("/") && isRecognisedAsRegistryHost(firstComponent)) {
    return repositoryName(reference);
  }
  const official = reference.repository.startsWith(OFFICIAL_REPOSITORY_NAMESPACE)
    ? reference.repository.slice(OFFICIAL_REPOSITORY_NAMESPACE.length)
    : undefined;
  // "library/a/b" is not an official image, so it keeps its namespace.
  return official !== undefined && !official.includes("/") ? official : reference.repository;
}

/** {@link familiarName} plus tag and digest, e.g. `nginx:1.27`; parses back to the same reference. */
export function familiarString(reference: ImageReference): string {
  return familiarName(reference) + suffixOf(reference);
}

/** True when both denote the same image (same canonical form). */
export function sameImage(a: ImageReference, b: ImageReference): boolean {
  return canonicalImageReference(a) === canonicalImageReference(b);
}

/** Registry-split of `nameAndTag`, plus the remainder as the user wrote it (for messages). */
function splitRegistry(nameAndTag: string): {
  registry: string;
  remainder: string;
  writtenRemainder: string;
} {
  const slash = nameAndTag.indexOf("/");
  const firstComponent = slash === -1 ? undefined : nameAndTag.slice(0, slash);
  const looksLikeHost = firstComponent !== undefined && isRecognisedAsRegistryHost(firstComponent);

  if (looksLikeHost) {
    const registry =
      firstComponent === LEGACY_DOCKER_HUB_REGISTRY ? DOCKER_HUB_REGISTRY : firstComponent;
    const remainder = nameAndTag.slice(slash + 1);
    return {
      registry,
      remainder: withOfficialNamespace(registry, remainder),
      writtenRemainder: remainder,
    };
  }
  return {
    registry: DOCKER_HUB_REGISTRY,
    remainder: withOfficialNamespace(DOCKER_HUB_REGISTRY, nameAndTag),
    writtenRemainder: nameAndTag,
  };
}

/** Docker Hub's "nginx" is "library/nginx"; other registries have no such shorthand. */
function withOfficialNamespace(registry: string, remainder: string): string {
  return registry === DOCKER_HUB_REGISTRY && !remainder.includes("/")
    ? OFFICIAL_REPOSITORY_NAMESPACE + remainder
    : remainder;
}

function suffixOf(reference: ImageReference): string {
  const tag = reference.tag ?? (reference.digest === undefined ? DEFAULT_TAG : undefined);
  return (tag === undefined ? "" : `:${tag}`) + (reference.digest ? `@${reference.digest}` : "");
}

/** Why `text` is not an acceptable digest, or `undefined` when it is. */
function digestProblem(text: string): string | undefined {
  const colon = text.indexOf(":");
  const algorithm = colon === -1 ? text : text.slice(0, colon);
  const hex = colon === -1 ? "" : text.slice(colon + 1);
  const expectedLength = SUPPORTED_DIGEST_ALGORITHMS.get(algorithm);
  if (expectedLength !== undefined) {
    return hex.length === expectedLength && /^[0-9a-f]+$/.test(hex)
      ? undefined
      : `invalid ${algorithm} digest '${text}': expected exactly ${expectedLength} lowercase hex digits`;
  }
  if (colon === -1 || !DIGEST_ALGORITHM_PATTERN.test(algorithm) || !DIGEST_HEX_PATTERN.test(hex)) {
    return `invalid digest '${text}': expected <algorithm>:<hex>, e.g. sha256:<64 lowercase hex digits>`;
  }
  const supported = [...SUPPORTED_DIGEST_ALGORITHMS.keys()].join(", ");
  return `unsupported digest algorithm '${algorithm}'; supported: ${supported}`;
}
