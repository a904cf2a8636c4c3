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

/** Directory containerd reads for an upstream: `<hostsDir>/<registry>/hosts.toml`. */
export function containerdHostsTomlPath(hostsDir: string, registry: string): string {
  return `${hostsDir}/${registry}/hosts.toml`;
}

/**
 * containerd `hosts.toml` for one upstream (containerd >= 1.5, and 2.x). The mirror may only
 * pull and resolve; `ca`/`skip_verify` only when asked; `override_path` when the upstream lives
 * under a path in the mirror (containerd would otherwise request `/v2/<repo>` at the root).
 * With `forbidFallback` the mirror is the `server` itself, so containerd never tries upstream.
 */
export function renderContainerdHostsToml(
  upstream: NodeUpstream,
  mirror: NodeMirror,
  options: NodeRenderOptions = {},
): string {
  const hostSettings: string[] = [`capabilities = ${tomlStringArray(["pull", "resolve"])}`];
  if (mirror.caFile !== undefined) hostSettings.push(`ca = ${tomlString(mirror.caFile)}`);
  if (mirror.skipVerify) hostSettings.push("skip_verify = true");
  if (upstream.pathPrefix !== undefined) hostSettings.push("override_path = true");
  const mirrorUrl = containerdMirrorUrl(mirror, upstream);
  if (options.forbidFallback) {
    return [
      `# ${generatedBy}`,
      `# ${upstream.registry} is pulled from the mirror only: no fallback to the upstream.`,
      `server = ${tomlString(mirrorUrl)}`,
      ...hostSettings,
      "",
    ].join("\n");
  }
  return [
    `# ${generatedBy}`,
    `# ${upstream.registry} is pulled through the mirror; the upstream is only tried after it.`,
    `server = ${tomlString(upstreamServerUrl(upstream.registry))}`,
    "",
    `[host.${tomlString(mirrorUrl)}]`,
    ...hostSettings.map((line) => `  ${line}`),
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
 * k3s/rke2 `registries.yaml`: every upstream mirrored to the endpoint (with its scheme: k3s
 * defaults to https), a `rewrite` for an upstream under a path prefix, and the mirror's TLS and
 * credentials under `configs."<host:port>"`.
 */
export function renderRegistriesYaml(
  mirror: NodeMirror,
  upstreams: readonly NodeUpstream[],
  options: NodeRenderOptions = {},
): string {
  const endpoint = `${mirror.scheme}://${mirror.endpoint}`;
  const mirrors: Record<string, unknown> = {};
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
 * remapped to the mirror, so the upstream itself is never contacted.
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
 * /etc/hosts lines sending every upstream name to the mirror's IP (the xcluster way). Works
 * only when the mirror listens where the runtime expects the upstream: port 80 for http, 443
 * for https (with a certificate for the upstream names the node trusts), and without paths.
 */
export function renderHostsBlock(mirror: NodeMirror, upstreams: readonly NodeUpstream[]): string {
  const address = parseMirrorEndpoint(mirror.endpoint, mirror.scheme);
  const standardPort = mirror.scheme === "https" ? 443 : 80;
  if (address.port !== standardPort) {
    throw new NodeConfigError(
      "mirror.endpoint",
      `hosts spoofing sends ${upstreams.map((u) => u.registry).join(", ")} to the mirror's address, so the mirror must listen on the standard port (${standardPort} for ${mirror.scheme}); '${mirror.endpoint}' uses ${address.port}. Move the mirror to port ${standardPort} or use another runtime flavour`,
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
