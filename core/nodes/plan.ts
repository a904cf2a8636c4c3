/**
 * Which files a node of each runtime flavour gets, with their exact contents, modes and what
 * must happen when one changes. The node script (script.ts) is generated from this plan only.
 *
 * Pure: no I/O.
 */

import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import {
  type ContainerdConfigVersion,
  renderContainerdConfigFile,
  renderContainerdConfigFragment,
  renderContainerdHostsToml,
  renderContainerdMirrorHostsToml,
  containerdHostsTomlPath,
  renderHostsBlock,
  renderRegistriesConfDropIn,
  renderRegistriesYaml,
  spoofedHostnames,
} from "./renderers";
import { needsRancherConfigDropIn, renderRancherConfigDropIn, validateRancherOptions } from "./k3s";
import {
  NodeConfigError,
  type NodeMirror,
  type NodeRenderOptions,
  type NodeUpstream,
  type RuntimeFlavour,
  isRuntimeFlavour,
  parseMirrorEndpoint,
  runtimeFlavours,
  validateNodeMirror,
  validateNodeUpstreams,
} from "./settings";

/** Where containerd looks for hosts.toml files once config_path points there. */
export const containerdHostsDir = "/etc/containerd/certs.d";
export const containerdConfigPath = "/etc/containerd/config.toml";
/** The mirror's CA on containerd and k3s/rke2 nodes (referenced from their config). */
export const mirrorCaPath = "/etc/airgap-conformance/mirror-ca.crt";
/** CRI-O/Podman find a registry's CA only by directory name: certs.d/<host:port>/ca.crt. */
export const containersCertsDir = "/etc/containers/certs.d";
export const registriesConfDropInPath = "/etc/containers/registries.conf.d/50-airgap-mirror.conf";
/**
 * hosts spoofing: the CA joins the system trust store, where update-ca-certificates (Debian,
 * Ubuntu, SUSE) reads it; on nodes with update-ca-trust (RHEL, Fedora) the script puts it in
 * {@link systemCaPathRhel} instead.
 */
export const systemCaPath = "/usr/local/share/ca-certificates/airgap-conformance-mirror.crt";
export const systemCaPathRhel = "/etc/pki/ca-trust/source/anchors/airgap-conformance-mirror.crt";
export const etcHostsPath = "/etc/hosts";

/** What must happen on the node after a file changed (or was restored). */
export const afterChangeActions = [
  "none",
  "update-ca-trust",
  "restart-containerd",
  "restart-k3s",
  "restart-rke2",
  "reload-crio",
] as const;
export type AfterChange = (typeof afterChangeActions)[number];

/** A whole file we own while the config is applied. */
export interface WholeFile {
  readonly kind: "file";
  readonly path: string;
  readonly content: string;
  readonly mode: "0644" | "0600";
  readonly afterChange: AfterChange;
  /** Holds a secret (the mirror password): the script carrying it must be a secret too. */
  readonly secret: boolean;
}

/**
 * containerd's config.toml, which we only extend: `config_path` is set (an empty one filled in,
 * or the registry table appended for the file's config version); a missing file is created.
 */
export interface ContainerdConfigEdit {
  readonly kind: "containerd-config";
  readonly path: string;
  readonly hostsDir: string;
  /** Whole file for a node without one (version 2 for containerd 1.x, 3 for 2.x). */
  readonly newFile: string;
  /** Table to append to an existing file, by the version that file declares. */
  readonly fragments: Readonly<Record<ContainerdConfigVersion, string>>;
  readonly afterChange: "restart-containerd";
}

/** Lines between markers in a file others own too (/etc/hosts). */
export interface ManagedBlock {
  readonly kind: "block";
  readonly path: string;
  readonly block: string;
  readonly begin: string;
  readonly end: string;
  readonly afterChange: "none";
}

export type NodeFile = WholeFile | ContainerdConfigEdit | ManagedBlock;

/** Checks the script runs after applying, so a silent misconfiguration fails the update. */
export interface NodeVerification {
  /** `containerd config dump` must show this config_path. */
  readonly containerdConfigPath?: string;
  /** `getent hosts <name>` must answer this address. */
  readonly resolves?: { readonly names: readonly string[]; readonly address: string };
}

export interface NodePlan {
  readonly runtime: RuntimeFlavour;
  readonly files: readonly NodeFile[];
  readonly verify: NodeVerification;
  /** True when a file holds the mirror password. */
  readonly secret: boolean;
}

/** The mirror as the component knows it: the CA as PEM text, installed on the node by the plan. */
export interface NodeMirrorInput {
  readonly endpoint: string;
  readonly scheme: "http" | "https";
  /** PEM of the CA that signed the mirror's certificate. */
  readonly caCertificate?: string;
  readonly skipVerify?: boolean;
  readonly auth?: { readonly username: string; readonly password: string };
  /**
   * PEM of the mirror's own (server) certificate. The hosts flavour needs it: the plan checks
   * that it covers every spoofed name and the mirror's address before anything is deployed.
   */
  readonly certificate?: string;
}

export interface NodePlanInput {
  readonly runtime: RuntimeFlavour;
  readonly mirror: NodeMirrorInput;
  readonly upstreams: readonly NodeUpstream[];
  readonly options?: NodeRenderOptions;
}

/** Runtime flavours whose node files can carry the mirror's credentials. */
export const runtimesTakingCredentials: readonly RuntimeFlavour[] = [
  "containerd",
  "containerd2",
  "k3s",
  "rke2",
];

/** Where a runtime flavour expects the mirror's CA. */
export function mirrorCaPathFor(runtime: RuntimeFlavour, endpoint: string): string {
  switch (runtime) {
    case "crio":
    case "podman":
      return `${containersCertsDir}/${endpoint}/ca.crt`;
    case "hosts":
      return systemCaPath;
    default:
      return mirrorCaPath;
  }
}

function checkedCaPem(pem: string): string {
  try {
    new X509Certificate(pem);
  } catch (error) {
    throw new NodeConfigError(
      "mirror.caCertificate",
      `is not a PEM certificate (${(error as Error).message})`,
    );
  }
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}

/**
 * A spoofed name is only pulled if the mirror's certificate is valid for it: checked here, at
 * preview, rather than found by the first pod that cannot pull.
 */
function checkCertificateCovers(pem: string | undefined, names: readonly string[]): void {
  if (pem === undefined) {
    throw new NodeConfigError(
      "mirror.certificate",
      `hosts spoofing needs the mirror's own certificate (PEM) to check that it covers ${names.join(", ")}`,
    );
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch (error) {
    throw new NodeConfigError(
      "mirror.certificate",
      `is not a PEM certificate (${(error as Error).message})`,
    );
  }
  const uncovered = names.filter((name) =>
    isIP(name) === 0
      ? certificate.checkHost(name, { subject: "never" }) === undefined
      : certificate.checkIP(name) === undefined,
  );
  if (uncovered.length > 0) {
    throw new NodeConfigError(
      "mirror.certificate",
      `does not cover ${uncovered.join(", ")} (it names ${certificate.subjectAltName ?? "no subject alternative names"}); hosts spoofing needs a certificate whose subject alternative names include every spoofed name and the mirror's IP`,
    );
  }
}

function wholeFile(
  path: string,
  content: string,
  afterChange: AfterChange,
  secret = false,
): WholeFile {
  return { kind: "file", path, content, mode: secret ? "0600" : "0644", afterChange, secret };
}

/**
 * The files for one node. Validates everything first: an error names the input and says what
 * is allowed.
 */
export function planNodeFiles(input: NodePlanInput): NodePlan {
  const { runtime } = input;
  if (!isRuntimeFlavour(runtime)) {
    throw new NodeConfigError(
      "runtime",
      `'${String(runtime)}' is not a runtime flavour; use one of ${runtimeFlavours.join(", ")}`,
    );
  }
  const upstreams = validateNodeUpstreams(input.upstreams);
  const options = input.options ?? {};
  const given = input.mirror;
  if (given.scheme === "http" && given.caCertificate !== undefined) {
    throw new NodeConfigError(
      "mirror.caCertificate",
      "only applies to an https mirror; this one is plain http",
    );
  }
  const caPem = given.caCertificate === undefined ? undefined : checkedCaPem(given.caCertificate);
  const mirror: NodeMirror = {
    endpoint: given.endpoint,
    scheme: given.scheme,
    caFile: caPem === undefined ? undefined : mirrorCaPathFor(runtime, given.endpoint),
    skipVerify: given.skipVerify,
    auth: given.auth,
  };
  validateNodeMirror(mirror);
  if (mirror.auth && !runtimesTakingCredentials.includes(runtime)) {
    throw new NodeConfigError(
      "mirror.auth",
      `${runtime} nodes cannot be given the mirror's credentials (only ${runtimesTakingCredentials.join(", ")} nodes can), so every pull would fail with 401; use a mirror that allows anonymous pulls for these nodes, or another runtime flavour`,
    );
  }
  const mirrorItself = upstreams.findIndex((upstream) => upstream.registry === mirror.endpoint);
  if (mirrorItself >= 0) {
    throw new NodeConfigError(
      `upstreams[${mirrorItself}].registry`,
      `'${mirror.endpoint}' is the mirror itself, which nodes always reach under its own name; list only the registries it stands in for`,
    );
  }

  const files: NodeFile[] = [];
  const caAfter: AfterChange = runtime === "hosts" ? "update-ca-trust" : "none";
  let verify: NodeVerification = {};
  if (runtime === "containerd" || runtime === "containerd2") {
    // First: a config.toml that cannot take config_path stops the run before any file changes.
    files.push({
      kind: "containerd-config",
      path: containerdConfigPath,
      hostsDir: containerdHostsDir,
      newFile: renderContainerdConfigFile(runtime === "containerd" ? 2 : 3, containerdHostsDir),
      fragments: {
        2: renderContainerdConfigFragment(2, containerdHostsDir),
        3: renderContainerdConfigFragment(3, containerdHostsDir),
      },
      afterChange: "restart-containerd",
    });
  }
  if (caPem !== undefined) files.push(wholeFile(mirror.caFile!, caPem, caAfter));

  switch (runtime) {
    case "containerd":
    case "containerd2": {
      // With credentials, every hosts.toml naming the mirror carries its Authorization header.
      const secret = mirror.auth !== undefined;
      // containerd re-reads hosts.toml on every pull: no restart.
      files.push(
        wholeFile(
          containerdHostsTomlPath(containerdHostsDir, mirror.endpoint),
          renderContainerdMirrorHostsToml(mirror),
          "none",
          secret,
        ),
      );
      for (const upstream of upstreams) {
        files.push(
          wholeFile(
            containerdHostsTomlPath(containerdHostsDir, upstream.registry),
            renderContainerdHostsToml(upstream, mirror, options),
            "none",
            secret,
          ),
        );
      }
      verify = { containerdConfigPath: containerdHostsDir };
      break;
    }
    case "k3s":
    case "rke2": {
      const after: AfterChange = runtime === "k3s" ? "restart-k3s" : "restart-rke2";
      const dir = `/etc/rancher/${runtime}`;
      validateRancherOptions(upstreams, options);
      files.push(
        wholeFile(
          `${dir}/registries.yaml`,
          renderRegistriesYaml(mirror, upstreams, options),
          after,
          mirror.auth !== undefined,
        ),
      );
      if (needsRancherConfigDropIn(options)) {
        files.push(
          wholeFile(
            `${dir}/config.yaml.d/50-airgap-mirror.yaml`,
            renderRancherConfigDropIn(mirror, options),
            after,
          ),
        );
      }
      break;
    }
    case "crio":
    case "podman": {
      files.push(
        wholeFile(
          registriesConfDropInPath,
          renderRegistriesConfDropIn(mirror, upstreams, options),
          runtime === "crio" ? "reload-crio" : "none",
        ),
      );
      break;
    }
    case "hosts": {
      const block = renderHostsBlock(mirror, upstreams);
      checkCertificateCovers(given.certificate, [
        ...upstreams.flatMap((upstream) => spoofedHostnames(upstream.registry)),
        parseMirrorEndpoint(mirror.endpoint, mirror.scheme).host,
      ]);
      files.push({
        kind: "block",
        path: etcHostsPath,
        block,
        begin: block.split("\n")[0],
        end: block.trimEnd().split("\n").at(-1)!,
        afterChange: "none",
      });
      verify = {
        resolves: {
          names: upstreams.flatMap((upstream) => spoofedHostnames(upstream.registry)),
          address: parseMirrorEndpoint(mirror.endpoint, mirror.scheme).host,
        },
      };
      break;
    }
  }
  return {
    runtime,
    files,
    verify,
    secret: files.some((file) => file.kind === "file" && file.secret),
  };
}
