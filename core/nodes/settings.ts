/**
 * What a node needs to know about the mirror and the upstream registries it stands in for,
 * validated once so every renderer can trust its input.
 *
 * Pure: no I/O.
 */

import { isIP } from "node:net";
import {
  DOCKER_HUB_REGISTRY,
  isRecognisedAsRegistryHost,
  isValidRegistryHost,
  isValidRepositoryPath,
} from "../images/reference";

/** How a node's container runtime is told about the mirror. */
export const runtimeFlavours = [
  "containerd",
  "containerd2",
  "k3s",
  "rke2",
  "crio",
  "podman",
  "hosts",
] as const;
export type RuntimeFlavour = (typeof runtimeFlavours)[number];

export function isRuntimeFlavour(value: unknown): value is RuntimeFlavour {
  return (runtimeFlavours as readonly unknown[]).includes(value);
}

/** The mirror as a node reaches it. */
export interface NodeMirror {
  /** `host[:port]` without scheme, e.g. "10.0.0.5:5000" or "registry.lab:443". */
  readonly endpoint: string;
  readonly scheme: "http" | "https";
  /** Path of the CA certificate on the node, when the mirror's certificate needs one. */
  readonly caFile?: string;
  /** Accept any certificate (https only). Prefer a CA. */
  readonly skipVerify?: boolean;
  /**
   * Credentials for the mirror: containerd nodes send them as an Authorization header from
   * hosts.toml, k3s/rke2 nodes read them from registries.yaml; CRI-O, Podman and hosts
   * spoofing nodes cannot be given them.
   */
  readonly auth?: { readonly username: string; readonly password: string };
}

/** One upstream registry the nodes pull from by name. */
export interface NodeUpstream {
  /** Registry host as images name it, e.g. "registry.k8s.io" or "docker.io". */
  readonly registry: string;
  /**
   * Path under which the mirror holds this upstream's repositories (see
   * core/images/mapping.ts `upstreamPrefixes`); nodes then need a path override.
   */
  readonly pathPrefix?: string;
}

export interface NodeRenderOptions {
  /** Make the mirror the only source: no fallback to the upstream registry. Default false. */
  readonly forbidFallback?: boolean;
  /**
   * k3s/rke2 only: pull the distribution's own system images from the mirror by its name
   * (`system-default-registry: <mirror>` in the config file). Default false.
   */
  readonly systemDefaultRegistry?: boolean;
  /**
   * k3s/rke2 only: the embedded distributed registry mirror, nodes serving images to each
   * other (`embedded-registry: true` and a `"*"` mirror in registries.yaml). Default false.
   */
  readonly embeddedRegistry?: boolean;
}

/** An invalid node-configuration input; `arg` names it. */
export class NodeConfigError extends Error {
  override readonly name = "NodeConfigError";
  constructor(
    readonly arg: string,
    message: string,
  ) {
    super(`${arg}: ${message}`);
  }
}

/** A mirror endpoint split into its parts, the port defaulted from the scheme. */
export interface MirrorAddress {
  readonly host: string;
  readonly port: number;
  readonly portGiven: boolean;
  /** `host:port` exactly as given (what hosts.toml and registries.conf name). */
  readonly endpoint: string;
}

const endpointPattern = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;
/** Paths we write into scripts and TOML: absolute, plain characters only. */
const nodePathPattern = /^\/[A-Za-z0-9._/:[\]-]*$/;

/** Splits and checks a mirror endpoint. */
export function parseMirrorEndpoint(
  endpoint: string,
  scheme: "http" | "https",
  arg = "mirror.endpoint",
): MirrorAddress {
  const match = endpointPattern.exec(endpoint);
  const port = match?.[2] === undefined ? undefined : Number(match[2]);
  if (!match || (port !== undefined && (port < 1 || port > 65535))) {
    throw new NodeConfigError(
      arg,
      `'${endpoint}' must be host[:port] without a scheme, e.g. 10.0.0.5:5000 or registry.lab`,
    );
  }
  return {
    host: match[1].replace(/^\[|\]$/g, ""),
    port: port ?? (scheme === "https" ? 443 : 80),
    portGiven: port !== undefined,
    endpoint,
  };
}

/** True for an absolute node path made of plain characters (safe in TOML, YAML and sh). */
export function isSafeNodePath(value: string): boolean {
  return nodePathPattern.test(value) && !value.split("/").includes("..");
}

/** Checks the mirror; returns its parsed address. */
export function validateNodeMirror(mirror: NodeMirror): MirrorAddress {
  if (mirror.scheme !== "http" && mirror.scheme !== "https") {
    throw new NodeConfigError(
      "mirror.scheme",
      `'${String(mirror.scheme)}' is not a scheme; use http or https`,
    );
  }
  const address = parseMirrorEndpoint(mirror.endpoint, mirror.scheme);
  if (mirror.caFile !== undefined && !isSafeNodePath(mirror.caFile)) {
    throw new NodeConfigError(
      "mirror.caFile",
      `'${mirror.caFile}' must be an absolute path of letters, digits and . _ - / : [ ]`,
    );
  }
  if (mirror.scheme === "http" && (mirror.caFile !== undefined || mirror.skipVerify)) {
    throw new NodeConfigError(
      mirror.caFile !== undefined ? "mirror.caFile" : "mirror.skipVerify",
      "only applies to an https mirror; this one is plain http",
    );
  }
  if (mirror.auth) {
    if (!/^[^\s:]+$/.test(mirror.auth.username)) {
      throw new NodeConfigError(
        "mirror.auth.username",
        `'${mirror.auth.username}' must be non-empty, without ':' or whitespace`,
      );
    }
    if (mirror.auth.password === "") {
      throw new NodeConfigError("mirror.auth.password", "must not be empty");
    }
  }
  return address;
}

/**
 * Checks upstreams and normalises their hosts (index.docker.io is docker.io). Order is kept;
 * the same registry twice is refused because the two entries could disagree.
 */
export function validateNodeUpstreams(upstreams: readonly NodeUpstream[]): NodeUpstream[] {
  if (upstreams.length === 0) {
    throw new NodeConfigError(
      "upstreams",
      "name at least one upstream registry, e.g. [{ registry: 'registry.k8s.io' }]",
    );
  }
  const seen = new Map<string, number>();
  return upstreams.map((upstream, index) => {
    const arg = `upstreams[${index}]`;
    const raw = upstream.registry;
    if (
      typeof raw !== "string" ||
      raw.includes("/") ||
      !isValidRegistryHost(raw) ||
      !isRecognisedAsRegistryHost(raw)
    ) {
      throw new NodeConfigError(
        `${arg}.registry`,
        `'${String(raw)}' is not a registry host; use a host such as registry.k8s.io, docker.io or quay.io (no scheme, no path)`,
      );
    }
    const registry = raw === "index.docker.io" ? DOCKER_HUB_REGISTRY : raw;
    const earlier = seen.get(registry);
    if (earlier !== undefined) {
      throw new NodeConfigError(
        `${arg}.registry`,
        `'${registry}' is already upstreams[${earlier}]; list each registry once`,
      );
    }
    seen.set(registry, index);
    if (upstream.pathPrefix === undefined) return { registry };
    const pathPrefix = upstream.pathPrefix.replace(/^\/+|\/+$/g, "");
    if (pathPrefix === "" || !isValidRepositoryPath(pathPrefix)) {
      throw new NodeConfigError(
        `${arg}.pathPrefix`,
        `'${upstream.pathPrefix}' must be lowercase path components separated by '/', e.g. "dockerhub"`,
      );
    }
    return { registry, pathPrefix };
  });
}

/** Whether the host of an address is an IP literal (hosts spoofing needs one). */
export function isIpHost(address: MirrorAddress): boolean {
  return isIP(address.host) !== 0;
}
