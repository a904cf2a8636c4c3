/**
 * Where each upstream image lives in the internal mirror, as containerd will ask for it.
 *
 * containerd sends a mirror `GET /v2/<repository>/...?ns=<upstream>`: the upstream host is
 * dropped from the path. So `registry.k8s.io/pause:3.10` must be stored as `<mirror>/pause:3.10`
 * and `docker.io/library/nginx:1.27` as `<mirror>/library/nginx:1.27`. Two upstreams holding the
 * same repository path would then share one mirror repository; that is detected and refused.
 *
 * Pure: no I/O.
 */

import { compareStrings } from "./ordering";
import {
  DOCKER_HUB_REGISTRY,
  ImageReference,
  InvalidImageReferenceError,
  canonicalImageReference,
  isRecognisedAsRegistryHost,
  isValidRegistryHost,
  isValidRepositoryPath,
  parseImageReference,
} from "./reference";

/** How upstream images are placed in the mirror. */
export interface MirrorMappingOptions {
  /** The mirror registry as nodes reach it, `host[:port]` without scheme, e.g. "10.0.0.5:5001". */
  readonly mirrorHost: string;
  /**
   * Optional path prefix inside the mirror per upstream registry, e.g. `{ "docker.io": "dockerhub" }`
   * stores `docker.io/library/nginx` as `<mirror>/dockerhub/library/nginx`. Use it to separate
   * upstreams whose repository paths collide.
   *
   * A prefixed upstream is only found by nodes that are told about the prefix: for containerd a
   * hosts.toml entry `[host."http://<mirror>/v2/<prefix>"]` with `override_path = true`; for
   * CRI-O a mirror `location = "<mirror>/<prefix>"`; for k3s a `rewrite` rule.
   */
  readonly upstreamPrefixes?: Readonly<Record<string, string>>;
}

/** One image and its place in the mirror. */
export interface MirrorMappingEntry {
  /** Canonical upstream reference, e.g. "registry.k8s.io/pause:3.10". */
  readonly source: string;
  readonly reference: ImageReference;
  /** Upstream registry host, e.g. "registry.k8s.io". */
  readonly upstreamRegistry: string;
  /** Repository path inside the mirror, e.g. "pause" or "dockerhub/library/nginx". */
  readonly mirrorPath: string;
  /** Mirror repository with host, e.g. "10.0.0.5:5001/pause". */
  readonly mirrorRepository: string;
  /**
   * What to push to and what containerd will request: by digest when the source has one (the
   * digest is what a node resolves, whatever the tag says), otherwise by tag.
   */
  readonly mirrorReference: string;
}

/** A complete mapping for a set of images. */
export interface MirrorPlan {
  readonly mirrorHost: string;
  /** One entry per distinct source, sorted by source. */
  readonly entries: readonly MirrorMappingEntry[];
  /** Distinct upstream registries, sorted: each needs mirror configuration on the nodes. */
  readonly upstreamRegistries: readonly string[];
}

/** Invalid mapping options, or an image whose mirror reference would itself be invalid. */
export class MirrorMappingError extends Error {
  override readonly name = "MirrorMappingError";
}

/** Images of different upstreams that would share one repository in the mirror. */
export interface MirrorCollision {
  readonly mirrorPath: string;
  /** Canonical source references landing there, from at least two upstream registries. */
  readonly sources: readonly string[];
  readonly upstreamRegistries: readonly string[];
}

/** Thrown when two upstream registries would share a mirror repository; says how to fix it. */
export class MirrorCollisionError extends Error {
  override readonly name = "MirrorCollisionError";

  constructor(
    readonly mirrorHost: string,
    readonly collisions: readonly MirrorCollision[],
    /** Upstream prefixes that would resolve every collision. */
    readonly suggestedUpstreamPrefixes: Readonly<Record<string, string>>,
  ) {
    const described = collisions
      .map((collision) => `'${collision.mirrorPath}' would hold ${collision.sources.join(", ")}`)
      .join("; ");
    super(
      `mirror path collision on ${mirrorHost}: ${described}. The mirror drops the upstream host ` +
        `from the path, so give the colliding upstream its own path in the mirror, e.g. ` +
        `upstreamPrefixes: ${JSON.stringify(suggestedUpstreamPrefixes)}`,
    );
    this.described = described;
  }

  /** Each collision, as `'<path>' would hold <sources>`, joined by "; ". */
  readonly described: string;
}

/**
 * Repository path of an image inside the mirror: its upstream path, under the upstream's
 * prefix if one is configured. `registry.k8s.io/pause:3.10` -> "pause".
 *
 * @throws MirrorMappingError for invalid options.
 */
export function mirrorPathFor(reference: ImageReference, options: MirrorMappingOptions): string {
  return pathInMirror(resolveOptions(options), reference.registry, reference.repository);
}

/**
 * Where an upstream location `registry[/path]` lands in the mirror, with the mirror host:
 * `("registry.k8s.io", "sig-storage")` -> "10.0.0.5:5001/sig-storage". Used for registry
 * prefixes that are not image references themselves (e.g. KUBE_TEST_REPO_LIST values).
 *
 * @param upstreamPath repository path prefix below the registry; "" for the registry root.
 * @throws MirrorMappingError for invalid options.
 */
export function mirrorLocationFor(
  upstreamRegistry: string,
  upstreamPath: string,
  options: MirrorMappingOptions,
): string {
  const resolved = resolveOptions(options);
  const path = pathInMirror(resolved, upstreamRegistry, upstreamPath);
  return path === "" ? resolved.mirrorHost : `${resolved.mirrorHost}/${path}`;
}

/**
 * The configured mirror path prefix of an upstream registry, `undefined` when it has none.
 *
 * @throws MirrorMappingError when a configured prefix or registry key is invalid.
 */
export function mirrorPathPrefixFor(
  upstreamRegistry: string,
  options: MirrorMappingOptions,
): string | undefined {
  return resolveOptions(options).prefixes.get(upstreamRegistry);
}

/**
 * Maps every image to its mirror location. Duplicates (same canonical source) are merged.
 *
 * @throws MirrorMappingError for invalid options or an image whose mirror name is too long.
 * @throws MirrorCollisionError when images of different upstreams would share a repository.
 */
export function planMirrorMapping(
  images: readonly ImageReference[],
  options: MirrorMappingOptions,
): MirrorPlan {
  const resolved = resolveOptions(options);
  const { mirrorHost } = resolved;
  const bySource = new Map<string, MirrorMappingEntry>();
  for (const reference of images) {
    const source = canonicalImageReference(reference);
    if (!bySource.has(source)) bySource.set(source, mapImage(reference, source, resolved));
  }
  const entries = [...bySource.values()].sort((a, b) => compareStrings(a.source, b.source));

  const collisions = findCollisions(entries);
  if (collisions.length > 0) {
    throw new MirrorCollisionError(mirrorHost, collisions, suggestPrefixes(entries, collisions));
  }
  const upstreamRegistries = [...new Set(entries.map((entry) => entry.upstreamRegistry))].sort(
    compareStrings,
  );
  return { mirrorHost, entries, upstreamRegistries };
}

/** Options after validation: the mirror host and the prefixes keyed by normalised registry. */
interface ResolvedOptions {
  readonly mirrorHost: string;
  readonly prefixes: ReadonlyMap<string, string>;
}

function resolveOptions(options: MirrorMappingOptions): ResolvedOptions {
  return {
    mirrorHost: validatedMirrorHost(options.mirrorHost),
    prefixes: validatedPrefixes(options.upstreamPrefixes),
  };
}

/** The one placement rule: upstream path, under the upstream's prefix when it has one. */
function pathInMirror(resolved: ResolvedOptions, upstreamRegistry: string, path: string): string {
  const prefix = resolved.prefixes.get(upstreamRegistry);
  if (prefix === undefined) return path;
  return path === "" ? prefix : `${prefix}/${path}`;
}

function mapImage(
  reference: ImageReference,
  source: string,
  resolved: ResolvedOptions,
): MirrorMappingEntry {
  const mirrorPath = pathInMirror(resolved, reference.registry, reference.repository);
  const mirrorRepository = `${resolved.mirrorHost}/${mirrorPath}`;
  const mirrorReference =
    reference.digest !== undefined
      ? `${mirrorRepository}@${reference.digest}`
      : `${mirrorRepository}:${reference.tag ?? "latest"}`;
  try {
    // The mirror name must be a valid reference too (a prefix can push it past 255 characters).
    parseImageReference(mirrorReference);
  } catch (error) {
    if (!(error instanceof InvalidImageReferenceError)) throw error;
    throw new MirrorMappingError(`cannot mirror ${source}: ${error.message}`);
  }
  return {
    source,
    reference,
    upstreamRegistry: reference.registry,
    mirrorPath,
    mirrorRepository,
    mirrorReference,
  };
}

function findCollisions(entries: readonly MirrorMappingEntry[]): MirrorCollision[] {
  const byPath = new Map<string, MirrorMappingEntry[]>();
  for (const entry of entries) {
    const group = byPath.get(entry.mirrorPath);
    if (group === undefined) byPath.set(entry.mirrorPath, [entry]);
    else group.push(entry);
  }
  const collisions: MirrorCollision[] = [];
  for (const [mirrorPath, group] of [...byPath].sort(([a], [b]) => compareStrings(a, b))) {
    const upstreamRegistries = [...new Set(group.map((entry) => entry.upstreamRegistry))].sort(
      compareStrings,
    );
    if (upstreamRegistries.length > 1) {
      collisions.push({
        mirrorPath,
        sources: group.map((entry) => entry.source),
        upstreamRegistries,
      });
    }
  }
  return collisions;
}

/**
 * Prefixes for every colliding upstream except the one with the most images (which keeps the
 * plain path, so the common case — registry.k8s.io — needs no node-side path override).
 */
function suggestPrefixes(
  entries: readonly MirrorMappingEntry[],
  collisions: readonly MirrorCollision[],
): Record<string, string> {
  const imageCount = new Map<string, number>();
  for (const entry of entries) {
    imageCount.set(entry.upstreamRegistry, (imageCount.get(entry.upstreamRegistry) ?? 0) + 1);
  }
  const suggestions: Record<string, string> = {};
  for (const collision of collisions) {
    const keeper = [...collision.upstreamRegistries].sort(
      (a, b) => (imageCount.get(b) ?? 0) - (imageCount.get(a) ?? 0) || compareStrings(a, b),
    )[0];
    for (const upstream of collision.upstreamRegistries) {
      if (upstream !== keeper) suggestions[upstream] = prefixSuggestionFor(upstream);
    }
  }
  return suggestions;
}

/** A path component derived from a host name: "localhost:5000" -> "localhost-5000". */
function prefixSuggestionFor(upstreamRegistry: string): string {
  const candidate = upstreamRegistry
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .replace(/\.{2,}/g, ".");
  return isValidRepositoryPath(candidate) ? candidate : "upstream";
}

function validatedMirrorHost(mirrorHost: string): string {
  const fail = (reason: string): never => {
    throw new MirrorMappingError(`invalid mirrorHost ${JSON.stringify(mirrorHost)}: ${reason}`);
  };
  if (mirrorHost.includes("://")) {
    fail("give host[:port] without a scheme, e.g. 10.0.0.5:5001 (http/https is node config)");
  }
  if (mirrorHost.includes("/")) {
    fail("a path is not allowed; to place an upstream under a path use upstreamPrefixes");
  }
  if (!isValidRegistryHost(mirrorHost)) {
    fail("expected host[:port] with a DNS name, IPv4 or [IPv6] host, e.g. 10.0.0.5:5001");
  }
  if (!isRecognisedAsRegistryHost(mirrorHost)) {
    fail(
      "a host without '.' or ':' (other than localhost) would be read as a Docker Hub " +
        "namespace; use a fully qualified name or add the port",
    );
  }
  return mirrorHost;
}

/** Upstream prefixes keyed by normalised registry (index.docker.io is docker.io), validated. */
function validatedPrefixes(
  upstreamPrefixes: Readonly<Record<string, string>> | undefined,
): Map<string, string> {
  const prefixes = new Map<string, string>();
  for (const [upstream, prefix] of Object.entries(upstreamPrefixes ?? {})) {
    const key = `upstreamPrefixes[${JSON.stringify(upstream)}]`;
    if (!isValidRegistryHost(upstream)) {
      throw new MirrorMappingError(
        `invalid ${key}: keys are upstream registry hosts such as "docker.io" or "quay.io"`,
      );
    }
    const cleaned = prefix.replace(/^\/+|\/+$/g, "");
    if (cleaned === "" || !isValidRepositoryPath(cleaned)) {
      throw new MirrorMappingError(
        `invalid ${key} = ${JSON.stringify(prefix)}: a prefix is one or more lowercase path ` +
          `components separated by '/', e.g. "dockerhub" or "upstream/quay"`,
      );
    }
    prefixes.set(upstream === "index.docker.io" ? DOCKER_HUB_REGISTRY : upstream, cleaned);
  }
  return prefixes;
}
