/**
 * The files that tell a node's container runtime to pull upstream names from the mirror, one
 * renderer per runtime, as the runtimes document them (see docs in
 * shared/reference/mirroring-and-node-config.md). Every renderer returns the exact bytes
 * written to the node; golden files pin them.
 *
 * Pure: no I/O.
 */

import * as YAML from "yaml";
import { DOCKER_HUB_REGISTRY } from "../images/reference";
import {
  NodeConfigError,
  type NodeMirror,
  type NodeRenderOptions,
  type NodeUpstream,
  isIpHost,
  parseMirrorEndpoint,
} from "./settings";
import { rancherExtraMirrors } from "./k3s";
import { tomlString, tomlStringArray } from "./toml";

const generatedBy = "Written by airgap-conformance (NodeRegistryConfig); removed on destroy.";

/** The host containerd really talks to for an upstream (Docker Hub's API is not at docker.io). */
export function upstreamServerUrl(registry: string): string {
  return registry === DOCKER_HUB_REGISTRY ? "https://registry-1.docker.io" : `https://${registry}`;
}

/** The mirror URL containerd is given for one upstream: with `/v2/<prefix>` when it has a prefix. */
export function containerdMirrorUrl(mirror: NodeMirror, upstream: NodeUpstream): string {
  const base = `${mirror.scheme}://${mirror.endpoint}`;
  return upstream.pathPrefix === undefined ? base : `${base}/v2/${upstream.pathPrefix}`;
}

/**
 * The directory name containerd looks for first for a registry host. For `host:port` it tries
 * `host_port_` before `host:port` (and `_default` last), on every version since 1.5 and on
 * every OS, so a file there cannot be shadowed by another directory for the same host.
 */
export function containerdHostDirectoryName(host: string): string {
  const colon = host.lastIndexOf(":");
  return colon > 0 ? `${host.slice(0, colon)}_${host.slice(colon + 1)}_` : host;
}

/** The hosts.toml containerd reads for a registry host (see {@link containerdHostDirectoryName}). */
export function containerdHostsTomlPath(hostsDir: string, registry: string): string {
  return `${hostsDir}/${containerdHostDirectoryName(registry)}/hosts.toml`;
}

/** `Basic <base64 user:password>`, the header a registry with htpasswd auth accepts. */
export function basicAuthorization(auth: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64")}`;
}

/** TLS settings, in hosts.toml's own keys, for a host that is the mirror. */
function mirrorHostSettings(mirror: NodeMirror): string[] {
  const settings: string[] = [];
  if (mirror.caFile !== undefined) settings.push(`ca = ${tomlString(mirror.caFile)}`);
  if (mirror.skipVerify) settings.push("skip_verify = true");
  return settings;
}

/** The `header` table lines sending the mirror's credentials (none without auth). */
function mirrorHeaderLines(mirror: NodeMirror, table: string, indent: string): string[] {
  if (!mirror.auth) return [];
  return [
    "",
    `${indent}[${table}]`,
    `${indent}  Authorization = ${tomlString(basicAuthorization(mirror.auth))}`,
  ];
}

/**
 * containerd `hosts.toml` for one upstream (containerd >= 1.5, and 2.x). The mirror may only
 * pull and resolve; `ca`/`skip_verify` only when asked; `override_path` when the upstream lives
 * under a path in the mirror (containerd would otherwise request `/v2/<repo>` at the root).
 * With `forbidFallback` the mirror is the `server` itself (and the one `host`), so containerd
 * never tries upstream.
 */
export function renderContainerdHostsToml(
  upstream: NodeUpstream,
  mirror: NodeMirror,
  options: NodeRenderOptions = {},
): string {
  const hostSettings: string[] = [
    `capabilities = ${tomlStringArray(["pull", "resolve"])}`,
    ...mirrorHostSettings(mirror),
  ];
  if (upstream.pathPrefix !== undefined) hostSettings.push("override_path = true");
  const mirrorUrl = containerdMirrorUrl(mirror, upstream);
  if (options.forbidFallback) {
    return mirrorOnlyHostsToml(
      `${upstream.registry} is pulled from the mirror only: no fallback to the upstream.`,
      mirrorUrl,
      hostSettings,
      mirror,
    );
  }
  const hostTable = `host.${tomlString(mirrorUrl)}`;
  return [
    `# ${generatedBy}`,
    `# ${upstream.registry} is pulled through the mirror; the upstream is only tried after it.`,
    `server = ${tomlString(upstreamServerUrl(upstream.registry))}`,
    "",
    `[${hostTable}]`,
    ...hostSettings.map((line) => `  ${line}`),
    // Only the mirror gets the credentials: the upstream server never sees them.
    ...mirrorHeaderLines(mirror, `${hostTable}.header`, "  "),
    "",
  ].join("\n");
}

/**
 * containerd `hosts.toml` for the mirror's own name (`<endpoint>/...`, what the run pod and
 * KUBE_TEST_REPO_LIST name): the mirror is the server, with its scheme (containerd assumes
 * https without it), its CA or skip_verify, and its credentials as an Authorization header.
 */
export function renderContainerdMirrorHostsToml(mirror: NodeMirror): string {
  return mirrorOnlyHostsToml(
    `${mirror.endpoint} is the mirror itself: references that name it are pulled from it.`,
    `${mirror.scheme}://${mirror.endpoint}`,
    [`capabilities = ${tomlStringArray(["pull", "resolve"])}`, ...mirrorHostSettings(mirror)],
    mirror,
  );
}

/**
 * A hosts.toml whose only source is the mirror: it is the `server`, and also the one `host`
 * entry, because containerd 1.6 rejects a hosts.toml without a `host` table ("invalid `host`
 * tree") and then silently falls back to https://<name>. Both carry the same settings.
 */
function mirrorOnlyHostsToml(
  comment: string,
  mirrorUrl: string,
  settings: readonly string[],
  mirror: NodeMirror,
): string {
  const hostTable = `host.${tomlString(mirrorUrl)}`;
  return [
    `# ${generatedBy}`,
    `# ${comment}`,
    `server = ${tomlString(mirrorUrl)}`,
    ...settings,
    ...mirrorHeaderLines(mirror, "header", ""),
    "",
    `[${hostTable}]`,
    ...settings.map((line) => `  ${line}`),
    ...mirrorHeaderLines(mirror, `${hostTable}.header`, "  "),
    "",
  ].join("\n");
}

/** containerd config versions and where their CRI plugin keeps registry settings. */
export const containerdRegistryTables = {
  /** containerd 1.x (config version 2). */
  2: 'plugins."io.containerd.grpc.v1.cri".registry',
  /** containerd 2.x (config version 3). */
  3: 'plugins."io.containerd.cri.v1.images".registry',
} as const;
export type ContainerdConfigVersion = keyof typeof containerdRegistryTables;

/**
 * The config.toml table that makes the CRI plugin read hosts.toml files from `hostsDir`.
 * Appended to an existing config of the same version.
 */
export function renderContainerdConfigFragment(
  version: ContainerdConfigVersion,
  hostsDir: string,
): string {
  return [
    `# ${generatedBy}`,
    `[${containerdRegistryTables[version]}]`,
    `  config_path = ${tomlString(hostsDir)}`,
    "",
  ].join("\n");
}

/** A whole config.toml for a node that has none: the version line and the fragment. */
export function renderContainerdConfigFile(
  version: ContainerdConfigVersion,
  hostsDir: string,
): string {
  return `version = ${version}\n\n${renderContainerdConfigFragment(version, hostsDir)}`;
}

/** Settings shared by the YAML renderers: YAML 1.1 (what k3s's parser speaks), quoted strings. */
function yamlText(value: unknown): string {
  return YAML.stringify(value, {
    version: "1.1",
    lineWidth: 0,
    defaultStringType: "QUOTE_DOUBLE",
    defaultKeyType: "PLAIN",
    // An entry without settings is written as the k3s documentation writes it: `"*":`.
    nullStr: "",
  });
}

/**
 * k3s/rke2 `registries.yaml`: the mirror's own name as a mirror of itself (so references that
 * name it are pulled with its scheme: k3s defaults to https), every upstream mirrored to the
 * endpoint, a `rewrite` for an upstream under a path prefix, and the mirror's TLS and
 * credentials under `configs."<host:port>"`.
 */
export function renderRegistriesYaml(
  mirror: NodeMirror,
  upstreams: readonly NodeUpstream[],
  options: NodeRenderOptions = {},
): string {
  const endpoint = `${mirror.scheme}://${mirror.endpoint}`;
  const mirrors: Record<string, unknown> = { [mirror.endpoint]: { endpoint: [endpoint] } };
  for (const upstream of upstreams) {
    mirrors[upstream.registry] =
      upstream.pathPrefix === undefined
        ? { endpoint: [endpoint] }
        : { endpoint: [endpoint], rewrite: { "^(.*)$": `${upstream.pathPrefix}/$1` } };
  }
  Object.assign(mirrors, rancherExtraMirrors(mirror, mirrors, options));
  const config: Record<string, unknown> = {};
  if (mirror.caFile !== undefined || mirror.skipVerify) {
    config.tls = {
      ...(mirror.caFile !== undefined ? { ca_file: mirror.caFile } : {}),
      ...(mirror.skipVerify ? { insecure_skip_verify: true } : {}),
    };
  }
  if (mirror.auth) {
    config.auth = { username: mirror.auth.username, password: mirror.auth.password };
  }
  const document: Record<string, unknown> = { mirrors };
  if (Object.keys(config).length > 0) document.configs = { [mirror.endpoint]: config };
  return `# ${generatedBy}\n${yamlText(document)}`;
}

/**
 * k3s/rke2 config drop-in that stops the fallback to upstream endpoints
 * (`disable-default-registry-endpoint`, k3s >= v1.26.13/v1.27.10/v1.28.6/v1.29.1).
 */
export function renderRancherNoFallbackConfig(): string {
  return `# ${generatedBy}\n${yamlText({ "disable-default-registry-endpoint": true })}`;
}

/**
 * containers-registries.conf v2 drop-in (CRI-O, Podman). `pull-from-mirror = "all"` so tag pulls
 * use the mirror too: OpenShift's digest-only mirrors skip them, which breaks the e2e images.
 * `insecure` only for plain http or skipVerify. With `forbidFallback` each upstream prefix is
 * remapped to the mirror, so the upstream itself is never contacted. The mirror's own name gets
 * a registry of its own, so references that name it are pulled over plain http when it is
 * http (its CA is found by directory name: certs.d/<endpoint>/ca.crt).
 */
export function renderRegistriesConfDropIn(
  mirror: NodeMirror,
  upstreams: readonly NodeUpstream[],
  options: NodeRenderOptions = {},
): string {
  const insecure = mirror.scheme === "http" || mirror.skipVerify === true;
  const lines = [
    `# ${generatedBy}`,
    options.forbidFallback
      ? "# Each upstream is remapped to the mirror: no fallback to the upstream."
      : '# pull-from-mirror = "all": tag pulls use the mirror too, not only digest pulls.',
    "",
    `# ${mirror.endpoint} is the mirror itself: references that name it are pulled from it.`,
    "[[registry]]",
    `location = ${tomlString(mirror.endpoint)}`,
    ...(insecure ? ["insecure = true"] : []),
  ];
  for (const upstream of upstreams) {
    const location =
      upstream.pathPrefix === undefined
        ? mirror.endpoint
        : `${mirror.endpoint}/${upstream.pathPrefix}`;
    lines.push("", "[[registry]]");
    if (options.forbidFallback) {
      lines.push(`prefix = ${tomlString(upstream.registry)}`);
      lines.push(`location = ${tomlString(location)}`);
      if (insecure) lines.push("insecure = true");
    } else {
      lines.push(`location = ${tomlString(upstream.registry)}`);
      lines.push("", "[[registry.mirror]]");
      lines.push(`location = ${tomlString(location)}`);
      if (insecure) lines.push("insecure = true");
      lines.push(`pull-from-mirror = ${tomlString("all")}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Markers around the lines we own in /etc/hosts. */
export const hostsBlockBegin = "# BEGIN airgap-conformance mirror";
export const hostsBlockEnd = "# END airgap-conformance mirror";

/** Names a runtime resolves for an upstream: Docker Hub is reached as registry-1.docker.io. */
export function spoofedHostnames(registry: string): string[] {
  if (registry === DOCKER_HUB_REGISTRY) return [DOCKER_HUB_REGISTRY, "registry-1.docker.io"];
  return [registry.replace(/:\d+$/, "")];
}

/**
 * /etc/hosts lines sending every upstream name to the mirror's IP (the xcluster way). Runtimes
 * reach registry.k8s.io, docker.io and the like over https on port 443 only (plain http on port
 * 80 is never tried for them), so the mirror must serve https on 443, with a certificate for
 * every spoofed name that the node trusts, and hold the images without path prefixes.
 */
export function renderHostsBlock(mirror: NodeMirror, upstreams: readonly NodeUpstream[]): string {
  const address = parseMirrorEndpoint(mirror.endpoint, mirror.scheme);
  const spoofed = upstreams.map((u) => u.registry).join(", ");
  if (mirror.scheme !== "https") {
    throw new NodeConfigError(
      "mirror.scheme",
      `hosts spoofing sends ${spoofed} to the mirror's address, and runtimes reach those names over https on port 443 only; serve the mirror over https on port 443 with a certificate for those names, or use another runtime flavour`,
    );
  }
  if (address.port !== 443) {
    throw new NodeConfigError(
      "mirror.endpoint",
      `hosts spoofing sends ${spoofed} to the mirror's address, so the mirror must listen on port 443 (https); '${mirror.endpoint}' uses ${address.port}. Move the mirror to port 443 or use another runtime flavour`,
    );
  }
  if (!isIpHost(address)) {
    throw new NodeConfigError(
      "mirror.endpoint",
      `hosts spoofing needs the mirror's IP address, not '${address.host}'`,
    );
  }
  const lines = [hostsBlockBegin];
  for (const upstream of upstreams) {
    if (upstream.pathPrefix !== undefined) {
      throw new NodeConfigError(
        "upstreams",
        `${upstream.registry} has pathPrefix '${upstream.pathPrefix}', which hosts spoofing cannot express (the runtime requests /v2/<repo> at the root); drop the prefix or use another runtime flavour`,
      );
    }
    if (/:\d+$/.test(upstream.registry)) {
      throw new NodeConfigError(
        "upstreams",
        `${upstream.registry} names a port; hosts spoofing only redirects host names on standard ports`,
      );
    }
    lines.push(`${address.host} ${spoofedHostnames(upstream.registry).join(" ")}`);
  }
  lines.push(hostsBlockEnd);
  return `${lines.join("\n")}\n`;
}

/** KEP-1755 "local registry hosting" as the ConfigMap tools (tilt, skaffold) look for. */
export interface LocalRegistryHostingInput {
  /** Where developers' tools push, e.g. "localhost:5001". */
  readonly host: string;
  /** How the container runtime reaches the registry, e.g. "registry:5000". */
  readonly hostFromContainerRuntime?: string;
  /** How pods reach the registry. */
  readonly hostFromClusterNetwork?: string;
  /** A URL documenting the registry. */
  readonly help?: string;
}

export interface LocalRegistryHostingConfigMap {
  apiVersion: "v1";
  kind: "ConfigMap";
  metadata: { name: "local-registry-hosting"; namespace: "kube-public" };
  data: { "localRegistryHosting.v1": string };
}

export function renderLocalRegistryHosting(
  input: LocalRegistryHostingInput,
): LocalRegistryHostingConfigMap {
  for (const key of ["host", "hostFromContainerRuntime", "hostFromClusterNetwork"] as const) {
    const value = input[key];
    if (value !== undefined) parseMirrorEndpoint(value, "https", `localRegistryHosting.${key}`);
  }
  const fields: Record<string, string> = { host: input.host };
  if (input.hostFromContainerRuntime !== undefined)
    fields.hostFromContainerRuntime = input.hostFromContainerRuntime;
  if (input.hostFromClusterNetwork !== undefined)
    fields.hostFromClusterNetwork = input.hostFromClusterNetwork;
  if (input.help !== undefined) fields.help = input.help;
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "local-registry-hosting", namespace: "kube-public" },
    data: { "localRegistryHosting.v1": yamlText(fields) },
  };
}
