import * as pulumi from "@pulumi/pulumi";
import type { ImageSource } from "../components/mirror";
import type { RegistryAccess } from "../components/mirror/actions/registry-client";
import type { RestartPolicy } from "../components/registry";
import { platformPattern } from "../core/images/platforms";
import { loadProjectSchema, type ConfigKeySchema, type ProjectSchema } from "./schema";

/** A stack config value that is missing, of the wrong type, or not allowed. Names the key. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly value: string | undefined,
    readonly allowed: string,
  ) {
    super(
      value === undefined
        ? `config ${key}: ${allowed}`
        : `config ${key}: got ${JSON.stringify(value)}; allowed: ${allowed}`,
    );
    this.name = "ConfigError";
  }
}

/** Stack config as the program uses it: typed, defaulted, validated. */
export interface StackConfig {
  /** Docker engine for the registry (undefined: the local engine). */
  dockerHost?: string;
  registry: {
    enabled: boolean;
    image: string;
    imageTar?: string;
    containerName: string;
    checkHostPort: boolean;
    hostPort: number;
    bindAddress: string;
    advertisedEndpoint?: string;
    networks: string[];
    volumeName?: string;
    hostPath?: string;
    retainStorage: boolean;
    deleteEnabled: boolean;
    tls?: { certificateFile?: string; keyFile?: string };
    auth?: { username?: string; password?: pulumi.Output<string> };
    restartPolicy: RestartPolicy;
    extraSettings: Record<string, string>;
  };
  /** The cluster's Kubernetes version as given ("" when not set, "auto" to detect). */
  kubernetesVersion: string;
  cluster: { kubeconfig?: string; context?: string };
  nodes: {
    list: (NodeEntry & { hostKeyCheck?: SshHostKeyCheck })[];
    sshPrivateKey?: pulumi.Output<string>;
    forbidFallback: boolean;
    caFile?: string;
    /** The key `caFile` came from (nodesMirrorCaFile, else mirrorCaFile), for errors. */
    caFileKey?: string;
    /** OpenShift version of a cluster with openshift nodes; undefined: 4.13 or later. */
    openshiftVersion?: string;
    /** Put the image set into each node's image store too. */
    preload: boolean;
    /** Where the preload takes the images from: the mirror, or the archive directory. */
    preloadSource: PreloadSource;
    /** k3s/rke2 node options. */
    k3s: { systemDefaultRegistry: boolean; embeddedRegistry: boolean };
  };
  conformance: {
    enabled: boolean;
    runId: string;
    namespace: string;
    focus: string;
    skip?: string;
    parallelism: number;
    dryRun: boolean;
    extraArgs: string[];
    ginkgoArgs: string[];
    resultsDirectory: string;
    failOnTestFailures: boolean;
    failOnNoTests: boolean;
    timeoutMinutes: number;
    startupTimeoutMinutes: number;
  };
  images: {
    enabled: boolean;
    includeCatalog: boolean;
    extra: string[];
    listFiles: string[];
    conformanceImage?: string;
    resultsImage: string;
    platform?: string;
    /** Several platforms to copy out of multi-arch images (imagesPlatforms). */
    platforms: string[];
    source: ImageSource;
    sourcePassword?: pulumi.Output<string>;
    destination: "registry" | "archive";
    archiveDirectory?: string;
    /** A k3s release's k3s-images.txt, added to the set. */
    k3sImagesFile?: string;
  };
  mirror: {
    /** An existing registry instead of the registry container. */
    external?: {
      endpoint: string;
      pushEndpoint: string;
      scheme: "http" | "https";
      username?: string;
    };
    /** host:port this machine pushes to, when it differs from what nodes use. */
    pushEndpoint?: string;
    caFile?: string;
    insecure: boolean;
    password?: pulumi.Output<string>;
    upstreamPrefixes: Record<string, string>;
    retries: number;
    deleteOnDestroy: boolean;
  };
}

type Scalar = string | number | boolean | string[];

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

function closestKey(key: string, known: string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(key.length / 4)) ? best.key : undefined;
}

function typedValue(fullKey: string, schema: ConfigKeySchema, raw: string): Scalar {
  switch (schema.type) {
    case "string":
      return raw;
    case "integer": {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(fullKey, raw, "an integer");
      return Number(raw);
    }
    case "boolean": {
      if (raw !== "true" && raw !== "false") throw new ConfigError(fullKey, raw, "true or false");
      return raw === "true";
    }
    case "array": {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new ConfigError(fullKey, raw, `a list of ${schema.items?.type ?? "string"} values`);
      }
      if (!Array.isArray(parsed) || parsed.some((item) => typeof item !== "string")) {
        throw new ConfigError(fullKey, raw, `a list of ${schema.items?.type ?? "string"} values`);
      }
      return parsed as string[];
    }
  }
}

/** Config namespaces the program's providers read (their keys are not this project's). */
export const providerNamespaces = ["pulumi", "docker", "command", "kubernetes"];

/**
 * The key a `namespace:key` entry was probably meant to be, when its namespace is neither this
 * project nor a provider's: a misspelt project name (`airgap-conformence:nodes`) or another name
 * in front of one of this project's keys (`airgap:kubernetesVersion`). Pure.
 */
export function misprefixedKey(fullKey: string, schema: ProjectSchema): string | undefined {
  const separator = fullKey.indexOf(":");
  if (separator <= 0) return undefined;
  const namespace = fullKey.slice(0, separator);
  const key = fullKey.slice(separator + 1);
  if (namespace === schema.project || providerNamespaces.includes(namespace)) return undefined;
  const known = Object.keys(schema.keys);
  const closeNamespace =
    editDistance(namespace.toLowerCase(), schema.project.toLowerCase()) <=
    Math.max(2, Math.floor(schema.project.length / 4));
  const matching = known.includes(key) ? key : closestKey(key, known);
  if (matching) return `${schema.project}:${matching}`;
  return closeNamespace ? `${schema.project}:${key}` : undefined;
}

/**
 * Reads the raw stack config (`project:key` -> string, as Pulumi hands it to the program) into
 * typed values with defaults. Unknown keys of this project are errors with a suggestion, since a
 * typo would otherwise silently fall back to a default.
 */
export function readTypedConfig(
  raw: Record<string, string>,
  schema: ProjectSchema,
): Record<string, Scalar> {
  const prefix = `${schema.project}:`;
  const known = Object.keys(schema.keys);
  const values: Record<string, Scalar> = {};
  for (const [fullKey, value] of Object.entries(raw)) {
    if (!fullKey.startsWith(prefix)) {
      const intended = misprefixedKey(fullKey, schema);
      if (intended) {
        throw new ConfigError(
          fullKey,
          undefined,
          `not a key of this project (${schema.project}) nor of a provider it uses (${providerNamespaces.join(", ")}), so it would be ignored; did you mean ${intended}?`,
        );
      }
      continue;
    }
    const key = fullKey.slice(prefix.length);
    const keySchema = schema.keys[key];
    if (!keySchema) {
      const suggestion = closestKey(key, known);
      throw new ConfigError(
        fullKey,
        undefined,
        `unknown key${suggestion ? `; did you mean ${prefix}${suggestion}?` : ""} (known keys: ${known.join(", ")})`,
      );
    }
    values[key] = typedValue(fullKey, keySchema, value);
  }
  for (const [key, keySchema] of Object.entries(schema.keys)) {
    if (!(key in values) && keySchema.default !== undefined) {
      values[key] = keySchema.default as Scalar;
    }
  }
  return values;
}

function optionalString(value: Scalar | undefined): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Turns `REGISTRY_KEY=value` strings into a map; the error names the config key and entry. */
export function parseExtraSettings(key: string, entries: string[]): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const [index, entry] of entries.entries()) {
    const separator = entry.indexOf("=");
    if (separator <= 0) {
      throw new ConfigError(`${key}[${index}]`, entry, "REGISTRY_KEY=value");
    }
    settings[entry.slice(0, separator)] = entry.slice(separator + 1);
  }
  return settings;
}

/** Parses `name=value` entries; the error names the config key, the entry and the form wanted. */
export function parseAssignments(
  key: string,
  entries: string[],
  form: string,
  valuePattern: RegExp,
): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [index, entry] of entries.entries()) {
    const separator = entry.indexOf("=");
    const name = entry.slice(0, separator);
    const value = entry.slice(separator + 1);
    if (separator <= 0 || !valuePattern.test(value)) {
      throw new ConfigError(`${key}[${index}]`, entry, form);
    }
    if (name in result) throw new ConfigError(`${key}[${index}]`, entry, `${name} only once`);
    result[name] = value;
  }
  return result;
}

const registryUrlPattern = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

/** `scheme://host[:port]` -> registry access; the error names the key. */
export function parseRegistryUrl(key: string, url: string, caFile?: string): RegistryAccess {
  const match = registryUrlPattern.exec(url);
  if (!match) {
    throw new ConfigError(key, url, "scheme://host[:port] with scheme http or https, no path");
  }
  const scheme = match[1] as "http" | "https";
  return {
    host: `${match[2]}${match[3] ?? ""}`,
    scheme,
    ...(scheme === "https" && caFile ? { caFile } : {}),
  };
}

function oneOf<T extends string>(key: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(key, value, allowed.join(", "));
  }
  return value as T;
}

/** One `nodes` entry, parsed. */
export interface NodeEntry {
  name: string;
  address?: string;
  runtime: string;
  access:
    | { kind: "docker-exec"; container: string }
    | { kind: "ssh"; user?: string; port?: number; sudo?: boolean }
    | { kind: "manual" };
}

/** An ssh:// node's access with how its host key is checked. */
export interface SshHostKeyCheck {
  /** The node's host key (`ssh-ed25519 AAAA...`). */
  hostKey?: string;
  /** The stack said explicitly that host keys are not checked. */
  skipHostKeyCheck?: boolean;
}

const nodeEntryForm =
  "docker://<container>?runtime=<flavour>, ssh://[user@]host[:port]?runtime=<flavour>[&name=<node>][&sudo=true] or manual://<node>?runtime=<flavour>";

/** Parses one `nodes` entry; the error names the key and index. The flavour is checked by the component. */
export function parseNodeEntry(key: string, entry: string): NodeEntry {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw new ConfigError(key, entry, nodeEntryForm);
  }
  const runtime = url.searchParams.get("runtime");
  const known = new Set(["runtime", "name", "sudo"]);
  const unknown = [...url.searchParams.keys()].filter((name) => !known.has(name));
  if (!runtime || unknown.length > 0 || url.pathname.replace(/^\/+/, "") !== "") {
    throw new ConfigError(key, entry, nodeEntryForm);
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (url.protocol === "docker:") {
    if (!host || url.username || url.port) throw new ConfigError(key, entry, nodeEntryForm);
    return {
      name: url.searchParams.get("name") ?? host,
      runtime,
      access: { kind: "docker-exec", container: host },
    };
  }
  if (url.protocol === "manual:") {
    // Pulumi does not reach the node: its script is written for an operator to run.
    if (!host || url.username || url.port || url.searchParams.has("sudo"))
      throw new ConfigError(key, entry, nodeEntryForm);
    return { name: url.searchParams.get("name") ?? host, runtime, access: { kind: "manual" } };
  }
  if (url.protocol === "ssh:") {
    if (url.password) {
      // Never echo the password: show the entry with it blanked out.
      const redacted = new URL(entry);
      redacted.password = "***";
      throw new ConfigError(
        key,
        redacted.toString(),
        `no password in the entry (it would be stored in plain text and is not used); ssh nodes log in with nodesSshPrivateKey. Form: ${nodeEntryForm}`,
      );
    }
    if (!host) throw new ConfigError(key, entry, nodeEntryForm);
    const sudo = url.searchParams.get("sudo");
    if (sudo !== null && sudo !== "true" && sudo !== "false")
      throw new ConfigError(key, entry, nodeEntryForm);
    return {
      name: url.searchParams.get("name") ?? host,
      address: host,
      runtime,
      access: {
        kind: "ssh",
        ...(url.username ? { user: decodeURIComponent(url.username) } : {}),
        ...(url.port ? { port: Number(url.port) } : {}),
        ...(sudo !== null ? { sudo: sudo === "true" } : {}),
      },
    };
  }
  throw new ConfigError(key, entry, nodeEntryForm);
}

/** k3s/rke2 node options; set without a k3s or rke2 node they would silently do nothing. */
function k3sNodeOptions(
  values: Record<string, Scalar>,
  key: (name: string) => string,
): StackConfig["nodes"]["k3s"] {
  const options = {
    systemDefaultRegistry: values.nodesK3sSystemDefaultRegistry as boolean,
    embeddedRegistry: values.nodesK3sEmbeddedRegistry as boolean,
  };
  const rancherNodes = (values.nodes as string[]).some((entry) =>
    /[?&]runtime=(k3s|rke2)(&|$)/.test(entry),
  );
  for (const [name, on] of [
    ["nodesK3sSystemDefaultRegistry", options.systemDefaultRegistry],
    ["nodesK3sEmbeddedRegistry", options.embeddedRegistry],
  ] as const) {
    if (on && !rancherNodes) {
      throw new ConfigError(
        key(name),
        "true",
        "false unless nodes lists a runtime=k3s or runtime=rke2 node",
      );
    }
  }
  return options;
}

/** Where nodesPreload takes the images from. */
export const preloadSources = ["mirror", "archive"] as const;
export type PreloadSource = (typeof preloadSources)[number];

/**
 * nodesPreloadSource: mirror, or archive (which needs the archive directory, the Kubernetes
 * version naming the image set, and, when the stack has no mirror, no conformance run).
 */
function preloadSourceOption(
  values: Record<string, Scalar>,
  key: (name: string) => string,
): PreloadSource {
  const source = oneOf(
    key("nodesPreloadSource"),
    values.nodesPreloadSource as string,
    preloadSources,
  );
  if (source === "mirror") return source;
  if (!(values.nodesPreload as boolean)) {
    throw new ConfigError(
      key("nodesPreloadSource"),
      source,
      "mirror (the default) unless nodesPreload is true",
    );
  }
  if (!optionalString(values.imagesArchiveDirectory)) {
    throw new ConfigError(
      key("imagesArchiveDirectory"),
      undefined,
      "required when nodesPreloadSource is archive (the OCI layout directory with images.lock.json)",
    );
  }
  if ((values.kubernetesVersion as string) === "") {
    throw new ConfigError(
      key("kubernetesVersion"),
      undefined,
      "required when nodesPreloadSource is archive (it names the image set to preload), e.g. 1.31.4",
    );
  }
  const hasMirror =
    (values.registryEnabled as boolean) || Boolean(optionalString(values.mirrorEndpoint));
  if (!hasMirror && (values.conformanceEnabled as boolean)) {
    throw new ConfigError(
      key("conformanceEnabled"),
      "true",
      "false when the stack has no mirror (registryEnabled false, no mirrorEndpoint): the run pulls from a mirror",
    );
  }
  return source;
}

/** Preload serves nodes whose image store it knows; the error names the first other node. */
function preloadOption(values: Record<string, Scalar>, key: (name: string) => string): boolean {
  const preload = values.nodesPreload as boolean;
  if (!preload) return false;
  const fromArchive = values.nodesPreloadSource === "archive";
  const stores = fromArchive
    ? ["containerd", "containerd2", "crio", "podman", "k3s", "rke2"]
    : ["containerd", "containerd2", "crio", "podman"];
  for (const entry of values.nodes as string[]) {
    if (entry.startsWith("manual://")) {
      throw new ConfigError(
        key("nodesPreload"),
        "true",
        `false while nodes lists ${entry.split("?")[0]} (Pulumi does not reach manual nodes)`,
      );
    }
    const runtime = /[?&]runtime=([^&]+)/.exec(entry)?.[1];
    if (runtime !== undefined && !stores.includes(runtime)) {
      throw new ConfigError(
        key("nodesPreload"),
        "true",
        fromArchive
          ? `false while nodes lists a runtime=${runtime} node (preload from the archive serves containerd, containerd2, crio, podman, k3s and rke2 nodes)`
          : `false while nodes lists a runtime=${runtime} node (preload from the mirror serves containerd, containerd2, crio and podman nodes; k3s and rke2 nodes need nodesPreloadSource archive)`,
      );
    }
  }
  if ((values.nodes as string[]).length === 0) {
    throw new ConfigError(
      key("nodesPreload"),
      "true",
      "false unless nodes lists the nodes to preload",
    );
  }
  return true;
}

function openshiftVersionOf(value: Scalar | undefined, key: string): string | undefined {
  const version = optionalString(value);
  if (version !== undefined && !/^4\.\d{1,3}(\.\d{1,4})?$/.test(version)) {
    throw new ConfigError(key, version, "an OpenShift 4 version such as 4.12 or 4.16.3, or empty");
  }
  return version;
}

const hostKeyPattern =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}$/;

/**
 * Gives every ssh:// node its host key from `nodesSshHostKeys` (keyed by the host as written in
 * its entry). A node without one is an error unless `nodesSshHostKeyCheck` is false.
 */
export function withHostKeys(
  nodes: NodeEntry[],
  hostKeyEntries: string[],
  check: boolean,
  key: (name: string) => string,
): (NodeEntry & { hostKeyCheck?: SshHostKeyCheck })[] {
  const hostKeys = parseAssignments(
    key("nodesSshHostKeys"),
    hostKeyEntries.map((entry) => entry.trim()),
    "host=<key type> <base64 key>, e.g. 10.0.0.11=ssh-ed25519 AAAAC3Nza... (ssh-keyscan -t ed25519 <host>)",
    hostKeyPattern,
  );
  const sshHosts = new Set(nodes.map((node) => node.address).filter((host) => host !== undefined));
  for (const [index, host] of Object.keys(hostKeys).entries()) {
    if (!sshHosts.has(host)) {
      throw new ConfigError(
        `${key("nodesSshHostKeys")}[${index}]`,
        host,
        `the host of an ssh:// node in nodes (${[...sshHosts].join(", ") || "none"})`,
      );
    }
  }
  return nodes.map((node) => {
    // OpenShift nodes are never contacted: the cluster gets mirror objects instead.
    if (node.access.kind !== "ssh" || node.runtime === "openshift") return node;
    const hostKey = hostKeys[node.address!];
    if (hostKey === undefined && check) {
      throw new ConfigError(
        key("nodesSshHostKeys"),
        undefined,
        `no host key for ssh node ${node.name} (${node.address}); add ${node.address}=<key type> <base64 key> as \`ssh-keyscan -t ed25519 ${node.address}\` prints it, or set nodesSshHostKeyCheck to false to connect without checking host keys`,
      );
    }
    return {
      ...node,
      hostKeyCheck: hostKey === undefined ? { skipHostKeyCheck: true } : { hostKey },
    };
  });
}

/** Secrets of the stack, read by the caller with `getSecret` so they stay secrets. */
export interface StackSecrets {
  registryPassword?: pulumi.Output<string>;
  imagesSourcePassword?: pulumi.Output<string>;
  mirrorPassword?: pulumi.Output<string>;
  nodesSshPrivateKey?: pulumi.Output<string>;
}

/** Builds the program's config from typed values. Passwords arrive already wrapped as secrets. */
export function buildStackConfig(
  values: Record<string, Scalar>,
  project: string,
  secrets: StackSecrets = {},
): StackConfig {
  const key = (name: string) => `${project}:${name}`;
  const password = secrets.registryPassword;
  const certificateFile = optionalString(values.registryTlsCertificateFile);
  const keyFile = optionalString(values.registryTlsKeyFile);
  const username = optionalString(values.registryUsername);
  checkExportStack(values, key);
  return {
    dockerHost: optionalString(values.dockerHost),
    registry: {
      enabled: values.registryEnabled as boolean,
      image: values.registryImage as string,
      imageTar: optionalString(values.registryImageTar),
      containerName: values.registryContainerName as string,
      checkHostPort: values.registryCheckHostPort as boolean,
      hostPort: values.registryHostPort as number,
      bindAddress: values.registryBindAddress as string,
      advertisedEndpoint: optionalString(values.registryAdvertisedEndpoint),
      networks: values.registryNetworks as string[],
      volumeName: optionalString(values.registryVolumeName),
      hostPath: optionalString(values.registryHostPath),
      retainStorage: values.registryRetainStorage as boolean,
      deleteEnabled: values.registryDeleteEnabled as boolean,
      tls: certificateFile || keyFile ? { certificateFile, keyFile } : undefined,
      auth: username || password ? { username, password } : undefined,
      // Checked against the allowed policies by RegistryContainer.
      restartPolicy: values.registryRestartPolicy as RestartPolicy,
      extraSettings: parseExtraSettings(
        `${project}:registryExtraSettings`,
        values.registryExtraSettings as string[],
      ),
    },
    kubernetesVersion: values.kubernetesVersion as string,
    cluster: {
      kubeconfig: optionalString(values.kubeconfig),
      context: optionalString(values.kubeContext),
    },
    nodes: {
      list: withHostKeys(
        (values.nodes as string[]).map((entry, index) =>
          parseNodeEntry(`${key("nodes")}[${index}]`, entry),
        ),
        values.nodesSshHostKeys as string[],
        values.nodesSshHostKeyCheck as boolean,
        key,
      ),
      sshPrivateKey: secrets.nodesSshPrivateKey,
      forbidFallback: values.nodesForbidFallback as boolean,
      caFile: optionalString(values.nodesMirrorCaFile) ?? optionalString(values.mirrorCaFile),
      caFileKey: optionalString(values.nodesMirrorCaFile)
        ? key("nodesMirrorCaFile")
        : optionalString(values.mirrorCaFile)
          ? key("mirrorCaFile")
          : undefined,
      k3s: k3sNodeOptions(values, key),
      // The source first: which nodes preload serves depends on it.
      preloadSource: preloadSourceOption(values, key),
      preload: preloadOption(values, key),
      openshiftVersion: openshiftVersionOf(
        values.nodesOpenshiftVersion,
        key("nodesOpenshiftVersion"),
      ),
    },
    conformance: buildConformanceConfig(values, key),
    images: buildImagesConfig(values, key, secrets),
    mirror: buildMirrorConfig(values, key, secrets),
  };
}

/**
 * An export stack (imagesDestination archive) writes images to removable media on the connected
 * side: no registry, no cluster. Said first, because the keys it needs are not the defaults.
 */
function checkExportStack(values: Record<string, Scalar>, key: (name: string) => string): void {
  if (!(values.imagesEnabled as boolean) || values.imagesDestination !== "archive") return;
  const example = "see Pulumi.export.yaml, the example export stack";
  if (values.conformanceEnabled as boolean) {
    throw new ConfigError(
      key("conformanceEnabled"),
      "true",
      `false when imagesDestination is archive: the suite runs on the air-gapped side (${example})`,
    );
  }
  if (values.registryEnabled as boolean) {
    throw new ConfigError(
      key("registryEnabled"),
      "true",
      `false when imagesDestination is archive: an export stack writes an archive, not a registry (${example})`,
    );
  }
}

function buildConformanceConfig(
  values: Record<string, Scalar>,
  key: (name: string) => string,
): StackConfig["conformance"] {
  const enabled = values.conformanceEnabled as boolean;
  const atLeast = (name: string, minimum: number) => {
    const value = values[name] as number;
    if (value < minimum)
      throw new ConfigError(key(name), String(value), `an integer of at least ${minimum}`);
    return value;
  };
  if (enabled && (values.kubernetesVersion as string) === "") {
    throw new ConfigError(
      key("kubernetesVersion"),
      undefined,
      "required when conformanceEnabled is true, e.g. 1.31.4 or auto",
    );
  }
  return {
    enabled,
    runId: values.conformanceRunId as string,
    namespace: values.conformanceNamespace as string,
    focus: values.conformanceFocus as string,
    skip: optionalString(values.conformanceSkip),
    parallelism: atLeast("conformanceParallelism", 1),
    dryRun: values.conformanceDryRun as boolean,
    extraArgs: values.conformanceExtraArgs as string[],
    ginkgoArgs: values.conformanceGinkgoArgs as string[],
    resultsDirectory: values.conformanceResultsDirectory as string,
    failOnTestFailures: values.conformanceFailOnTestFailures as boolean,
    failOnNoTests: values.conformanceFailOnNoTests as boolean,
    timeoutMinutes: atLeast("conformanceTimeoutMinutes", 1),
    startupTimeoutMinutes: atLeast("conformanceStartupTimeoutMinutes", 1),
  };
}

function buildImagesConfig(
  values: Record<string, Scalar>,
  key: (name: string) => string,
  secrets: StackSecrets,
): StackConfig["images"] {
  const enabled = values.imagesEnabled as boolean;
  const caFile = optionalString(values.imagesSourceCaFile);
  const archiveDirectory = optionalString(values.imagesArchiveDirectory);
  const sourceKind = oneOf(
    key("imagesSource"),
    values.imagesSource as string,
    ["upstream", "registry", "archive"] as const,
  );
  let source: ImageSource;
  if (sourceKind === "upstream") {
    const overrides = parseAssignments(
      key("imagesSourceOverrides"),
      values.imagesSourceOverrides as string[],
      "upstream=scheme://host[:port], e.g. registry.k8s.io=https://proxy.corp:8443",
      registryUrlPattern,
    );
    source = {
      kind: "upstream",
      registries: Object.fromEntries(
        Object.entries(overrides).map(([upstream, url]) => [
          upstream,
          parseRegistryUrl(key("imagesSourceOverrides"), url, caFile),
        ]),
      ),
    };
  } else if (sourceKind === "registry") {
    const url = optionalString(values.imagesSourceRegistry);
    if (!url) {
      throw new ConfigError(
        key("imagesSourceRegistry"),
        undefined,
        "required when imagesSource is registry (scheme://host[:port])",
      );
    }
    const username = optionalString(values.imagesSourceUsername);
    source = {
      kind: "registry",
      access: {
        ...parseRegistryUrl(key("imagesSourceRegistry"), url, caFile),
        ...(username ? { username } : {}),
      },
    };
  } else {
    if (!archiveDirectory) {
      throw new ConfigError(
        key("imagesArchiveDirectory"),
        undefined,
        "required when imagesSource is archive",
      );
    }
    source = { kind: "archive", directory: archiveDirectory };
  }
  const destination = oneOf(
    key("imagesDestination"),
    values.imagesDestination as string,
    ["registry", "archive"] as const,
  );
  if (enabled && destination === "archive" && !archiveDirectory) {
    throw new ConfigError(
      key("imagesArchiveDirectory"),
      undefined,
      "required when imagesDestination is archive",
    );
  }
  const platforms = [...new Set(values.imagesPlatforms as string[])];
  for (const [index, platform] of platforms.entries()) {
    if (!platformPattern.test(platform)) {
      throw new ConfigError(
        `${key("imagesPlatforms")}[${index}]`,
        platform,
        "os/arch or os/arch/variant, e.g. linux/amd64, linux/arm64/v8",
      );
    }
  }
  if (platforms.length > 0 && optionalString(values.imagesPlatform)) {
    throw new ConfigError(
      key("imagesPlatforms"),
      platforms.join(","),
      `not together with imagesPlatform; list every platform in imagesPlatforms (here also ${String(values.imagesPlatform)})`,
    );
  }
  if (platforms.length > 1 && destination === "archive") {
    throw new ConfigError(
      key("imagesPlatforms"),
      platforms.join(","),
      "one platform, or none for every platform, when imagesDestination is archive (an archive keeps whole images)",
    );
  }
  if (enabled && destination === "archive" && sourceKind === "archive") {
    throw new ConfigError(
      key("imagesDestination"),
      "archive",
      "registry when imagesSource is archive (an archive is exported from a registry or upstream)",
    );
  }
  if (enabled && (values.kubernetesVersion as string) === "") {
    throw new ConfigError(
      key("kubernetesVersion"),
      undefined,
      "required when imagesEnabled is true, e.g. 1.31.4",
    );
  }
  return {
    enabled,
    includeCatalog: values.imagesIncludeCatalog as boolean,
    extra: values.imagesExtra as string[],
    listFiles: values.imagesListFiles as string[],
    conformanceImage: optionalString(values.imagesConformanceImage),
    resultsImage: values.imagesResultsImage as string,
    platform: imagesPlatform(values, key),
    platforms,
    source,
    sourcePassword: secrets.imagesSourcePassword,
    destination,
    archiveDirectory,
    k3sImagesFile: optionalString(values.imagesK3sImagesFile),
  };
}

function imagesPlatform(
  values: Record<string, Scalar>,
  key: (name: string) => string,
): string | undefined {
  const platform = optionalString(values.imagesPlatform);
  if (platform !== undefined && !platformPattern.test(platform)) {
    throw new ConfigError(
      key("imagesPlatform"),
      platform,
      "one platform as os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8), or empty for every platform of each image",
    );
  }
  return platform;
}

function buildMirrorConfig(
  values: Record<string, Scalar>,
  key: (name: string) => string,
  secrets: StackSecrets,
): StackConfig["mirror"] {
  const endpoint = optionalString(values.mirrorEndpoint);
  const pushEndpoint = optionalString(values.mirrorPushEndpoint);
  const hostPort = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
  for (const [name, value] of [
    ["mirrorEndpoint", endpoint],
    ["mirrorPushEndpoint", pushEndpoint],
  ] as const) {
    if (value !== undefined && !hostPort.test(value)) {
      throw new ConfigError(key(name), value, "host:port, e.g. 10.0.0.5:5000 (no scheme)");
    }
  }
  const registryEnabled = values.registryEnabled as boolean;
  const imagesToRegistry =
    (values.imagesEnabled as boolean) && values.imagesDestination === "registry";
  if (registryEnabled && endpoint) {
    throw new ConfigError(
      key("mirrorEndpoint"),
      endpoint,
      "empty while registryEnabled is true (the registry container is the mirror)",
    );
  }
  if (!registryEnabled && imagesToRegistry && !endpoint) {
    throw new ConfigError(
      key("mirrorEndpoint"),
      undefined,
      "required when registryEnabled is false and images are mirrored into a registry",
    );
  }
  const retries = values.mirrorRetries as number;
  if (retries < 0 || retries > 10)
    throw new ConfigError(key("mirrorRetries"), String(retries), "an integer from 0 to 10");
  const username = optionalString(values.mirrorUsername);
  return {
    external: endpoint
      ? {
          endpoint,
          pushEndpoint: pushEndpoint ?? endpoint,
          scheme: oneOf(
            key("mirrorScheme"),
            values.mirrorScheme as string,
            ["http", "https"] as const,
          ),
          ...(username ? { username } : {}),
        }
      : undefined,
    pushEndpoint,
    caFile: optionalString(values.mirrorCaFile),
    insecure: values.mirrorInsecure as boolean,
    password: secrets.mirrorPassword,
    upstreamPrefixes: parseAssignments(
      key("mirrorUpstreamPrefixes"),
      values.mirrorUpstreamPrefixes as string[],
      "upstream=prefix, e.g. quay.io=quay",
      /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/,
    ),
    retries,
    deleteOnDestroy: values.mirrorDeleteOnDestroy as boolean,
  };
}

/** Which config key sets each RegistryContainer argument (for errors raised by the component). */
export const registryArgConfigKeys: Record<string, string> = {
  containerName: "registryContainerName",
  image: "registryImage",
  imageTar: "registryImageTar",
  hostPort: "registryHostPort",
  bindAddress: "registryBindAddress",
  advertisedEndpoint: "registryAdvertisedEndpoint",
  networks: "registryNetworks",
  volumeName: "registryVolumeName",
  hostPath: "registryHostPath",
  "tls.certificateFile": "registryTlsCertificateFile",
  "tls.keyFile": "registryTlsKeyFile",
  "auth.username": "registryUsername",
  "auth.password": "registryPassword",
  restartPolicy: "registryRestartPolicy",
  extraSettings: "registryExtraSettings",
};

/** Which config key sets each NodeRegistryConfig argument. */
export const nodeArgConfigKeys: Record<string, string> = {
  nodes: "nodes",
  "mirror.caCertificate": "nodesMirrorCaFile",
  "mirror.auth": "registryUsername",
  mirror: "mirrorEndpoint",
  upstreams: "mirrorUpstreamPrefixes",
  forbidFallback: "nodesForbidFallback",
  openshiftVersion: "nodesOpenshiftVersion",
  "k3s.systemDefaultRegistry": "nodesK3sSystemDefaultRegistry",
  "k3s.embeddedRegistry": "nodesK3sEmbeddedRegistry",
};

/** Which config key sets each ConformanceRun argument. */
export const conformanceArgConfigKeys: Record<string, string> = {
  kubeconfig: "kubeconfig",
  context: "kubeContext",
  kubernetesVersion: "kubernetesVersion",
  namespace: "conformanceNamespace",
  runId: "conformanceRunId",
  focus: "conformanceFocus",
  skip: "conformanceSkip",
  parallelism: "conformanceParallelism",
  dryRun: "conformanceDryRun",
  extraArgs: "conformanceExtraArgs",
  ginkgoArgs: "conformanceGinkgoArgs",
  resultsDirectory: "conformanceResultsDirectory",
  failOnTestFailures: "conformanceFailOnTestFailures",
  failOnNoTests: "conformanceFailOnNoTests",
  timeoutMinutes: "conformanceTimeoutMinutes",
  startupTimeoutMinutes: "conformanceStartupTimeoutMinutes",
  conformanceImage: "imagesConformanceImage",
  resultsImage: "imagesResultsImage",
  extraImages: "imagesExtra",
  imageListFiles: "imagesListFiles",
  "mirror.username": "mirrorUsername",
  "mirror.password": "mirrorPassword",
  mirror: "mirrorEndpoint",
};

/**
 * The config key behind a component argument path such as `networks[1]`, `extraSettings.X` or
 * `mirror.access.caFile`, from the component's table; the longest known prefix wins.
 */
export function configKeyForArg(
  project: string,
  table: Record<string, string>,
  arg: string,
): string | undefined {
  let path = arg.replace(/\[\d+\]/g, "");
  for (;;) {
    if (table[path]) return `${project}:${table[path]}`;
    const dot = path.lastIndexOf(".");
    if (dot < 0) return undefined;
    path = path.slice(0, dot);
  }
}

/** The config key behind a RegistryContainer argument path. */
export function configKeyForRegistryArg(project: string, arg: string): string | undefined {
  return configKeyForArg(project, registryArgConfigKeys, arg);
}

/** Reads and validates this stack's config (call once from the program). */
export function loadStackConfig(): StackConfig {
  const schema = loadProjectSchema();
  const values = readTypedConfig(pulumi.runtime.allConfig(), schema);
  const config = new pulumi.Config(schema.project);
  return buildStackConfig(values, schema.project, {
    registryPassword: config.getSecret("registryPassword"),
    imagesSourcePassword: config.getSecret("imagesSourcePassword"),
    mirrorPassword: config.getSecret("mirrorPassword"),
    nodesSshPrivateKey: config.getSecret("nodesSshPrivateKey"),
  });
}
