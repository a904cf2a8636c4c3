import * as smolToml from "smol-toml";
import * as YAML from "yaml";
import {
  type NodePlan,
  containerdHostsDir,
  containersCertsDir,
  registriesConfDropInPath,
} from "../../../core/nodes";

/**
 * Reads a node plan the way the node's runtime reads its files, to answer: when an image names
 * `host`, where does this node pull it from, trusting which CA, sending which credentials?
 * Written from the runtimes' documented lookup rules (containerd docs/hosts.md, k3s private
 * registry docs, containers-registries.conf(5) and containers-certs.d(5)), independently of the
 * renderers, and only over the planned files (a node with nothing else configured).
 */

/** One place a runtime tries for a host, in the order it tries them. */
export interface PullSource {
  /** `scheme://host[:port]` the runtime connects to. */
  readonly url: string;
  /** PEM the runtime trusts for it (beside the system roots), when one is configured. */
  readonly caPem?: string;
  readonly skipVerify: boolean;
  /** The Authorization header value it sends without being challenged, if any. */
  readonly authorization?: string;
}

function plain<T>(value: unknown): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function fileContent(plan: NodePlan, path: string): string | undefined {
  const file = plan.files.find((candidate) => candidate.path === path);
  return file?.kind === "file" ? file.content : undefined;
}

function withScheme(server: string): string {
  return /^https?:\/\//.test(server) ? server : `https://${server}`;
}

function origin(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}`;
}

interface HostsTomlEntry {
  ca?: string | string[];
  skip_verify?: boolean;
  header?: Record<string, string | string[]>;
}

function containerdSource(plan: NodePlan, url: string, entry: HostsTomlEntry): PullSource {
  const ca = Array.isArray(entry.ca) ? entry.ca[0] : entry.ca;
  const authorization = entry.header?.Authorization;
  return {
    url: origin(withScheme(url)),
    caPem: ca === undefined ? undefined : fileContent(plan, ca),
    skipVerify: entry.skip_verify === true,
    authorization: Array.isArray(authorization) ? authorization[0] : authorization,
  };
}

/** containerd (CRI with config_path): host_port_, then host:port, then _default; else https://host. */
function containerdSources(plan: NodePlan, host: string): PullSource[] {
  const config = plan.files.find((file) => file.kind === "containerd-config");
  if (!config || config.hostsDir !== containerdHostsDir)
    return [{ url: `https://${host}`, skipVerify: false }];
  const colon = host.lastIndexOf(":");
  const directories = [
    ...(colon > 0 ? [`${host.slice(0, colon)}_${host.slice(colon + 1)}_`] : []),
    host,
    "_default",
  ];
  for (const directory of directories) {
    const text = fileContent(plan, `${containerdHostsDir}/${directory}/hosts.toml`);
    if (text === undefined) continue;
    const parsed = plain<
      HostsTomlEntry & { server?: string; host?: Record<string, HostsTomlEntry> }
    >(smolToml.parse(text));
    // containerd 1.6 refuses a hosts.toml without a host table ("invalid `host` tree") and
    // goes on as if there were no file: https://<host>.
    if (parsed.host === undefined) break;
    const sources = Object.entries(parsed.host).map(([url, entry]) =>
      containerdSource(plan, url, entry),
    );
    const server =
      parsed.server ?? `https://${host === "docker.io" ? "registry-1.docker.io" : host}`;
    return [...sources, containerdSource(plan, server, parsed)];
  }
  return [
    { url: `https://${host === "docker.io" ? "registry-1.docker.io" : host}`, skipVerify: false },
  ];
}

/** k3s/rke2 registries.yaml: the mirror's endpoints, then the default endpoint. */
function rancherSources(plan: NodePlan, host: string): PullSource[] {
  const file = plan.files.find((candidate) => candidate.path.endsWith("/registries.yaml"));
  const document = file?.kind === "file" ? YAML.parse(file.content, { version: "1.1" }) : {};
  const mirrors = (document?.mirrors ?? {}) as Record<string, { endpoint?: string[] }>;
  const configs = (document?.configs ?? {}) as Record<
    string,
    {
      tls?: { ca_file?: string; insecure_skip_verify?: boolean };
      auth?: { username?: string; password?: string; auth?: string };
    }
  >;
  const endpoints = [...(mirrors[host]?.endpoint ?? []), `https://${host}`];
  return endpoints.map((endpoint) => {
    const url = origin(withScheme(endpoint));
    const config = configs[new URL(url).host];
    const auth = config?.auth;
    return {
      url,
      caPem: config?.tls?.ca_file ? fileContent(plan, config.tls.ca_file) : undefined,
      skipVerify: config?.tls?.insecure_skip_verify === true,
      authorization:
        auth?.username && auth.password
          ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`
          : auth?.auth
            ? `Basic ${auth.auth}`
            : undefined,
    };
  });
}

interface ConfRegistry {
  prefix?: string;
  location?: string;
  insecure?: boolean;
  mirror?: Array<{ location: string; insecure?: boolean }>;
}

/**
 * CRI-O/Podman registries.conf: the entry whose prefix is the host; its mirrors, then its
 * location. `insecure` allows plain http (after https fails) and skips verification, written
 * here as http; a location's CA is certs.d/<host:port>/ca.crt. No credentials come from these
 * files.
 */
function containersSources(plan: NodePlan, host: string): PullSource[] {
  const text = fileContent(plan, registriesConfDropInPath);
  const registries = text
    ? (plain<{ registry?: ConfRegistry[] }>(smolToml.parse(text)).registry ?? [])
    : [];
  const matching = registries
    .map((registry) => ({ registry, prefix: registry.prefix ?? registry.location ?? "" }))
    .find(({ prefix }) => prefix === host)?.registry;
  const source = (location: string, insecure: boolean): PullSource => {
    const locationHost = location.split("/")[0];
    return {
      url: `${insecure ? "http" : "https"}://${locationHost}`,
      caPem: fileContent(plan, `${containersCertsDir}/${locationHost}/ca.crt`),
      skipVerify: insecure,
    };
  };
  if (!matching) return [source(host, false)];
  return [
    ...(matching.mirror ?? []).map((mirror) => source(mirror.location, mirror.insecure === true)),
    source(matching.location ?? host, matching.insecure === true),
  ];
}

/** Where a node with this plan pulls an image naming `host` from, in the order it tries. */
export function pullSourcesFor(plan: NodePlan, host: string): PullSource[] {
  switch (plan.runtime) {
    case "containerd":
    case "containerd2":
      return containerdSources(plan, host);
    case "k3s":
    case "rke2":
      return rancherSources(plan, host);
    case "crio":
    case "podman":
      return containersSources(plan, host);
    case "hosts":
      throw new Error("hosts spoofing is resolved by name, not by these files");
  }
}

/** The mirror as the run reaches it. */
export interface ExpectedMirror {
  readonly endpoint: string;
  readonly scheme: "http" | "https";
  readonly caPem?: string;
  readonly skipVerify?: boolean;
  readonly auth?: { readonly username: string; readonly password: string };
}

/**
 * Why `host` would not be pulled from the mirror the way the run needs, or undefined when the
 * first place the node tries is the mirror with the right scheme, trust and credentials.
 */
export function mirrorCoverageProblem(
  plan: NodePlan,
  host: string,
  mirror: ExpectedMirror,
): string | undefined {
  const first = pullSourcesFor(plan, host)[0];
  const wanted = `${mirror.scheme}://${mirror.endpoint}`;
  if (first.url !== wanted) return `${host}: pulled from ${first.url}, not ${wanted}`;
  if (mirror.scheme === "https" && !mirror.skipVerify && !first.skipVerify) {
    if (mirror.caPem !== undefined && first.caPem !== mirror.caPem) {
      return `${host}: the mirror's CA is not trusted for ${first.url}`;
    }
  }
  if (mirror.skipVerify && !first.skipVerify && first.caPem === undefined) {
    return `${host}: ${first.url} is verified, but the mirror is marked insecure`;
  }
  if (mirror.auth) {
    const expected = `Basic ${Buffer.from(`${mirror.auth.username}:${mirror.auth.password}`).toString("base64")}`;
    if (first.authorization !== expected) return `${host}: no credentials for ${first.url}`;
  }
  return undefined;
}
