import { isIP } from "node:net";
import {
  type NodeAccessKind,
  type NodePlan,
  type NodeUpstream,
  type RuntimeFlavour,
  NodeConfigError,
  defaultStateDir,
  isRuntimeFlavour,
  isSafeNodePath,
  isValidNodeName,
  nodeCommands,
  planNodeFiles,
  runtimeFlavours,
  sha256Hex,
} from "../../core/nodes";

/**
 * The pure core of NodeRegistryConfig: arguments in, one validated plan per node out. The
 * component turns each plan into a command resource; the lab runs the very same scripts.
 */

/** Raised for any invalid NodeRegistryConfig argument; `arg` names it. */
export class NodeRegistryArgsError extends Error {
  override readonly name = "NodeRegistryArgsError";
  constructor(
    readonly arg: string,
    message: string,
  ) {
    super(`NodeRegistryConfig: ${arg}: ${message}`);
  }
}

/** Node access as plain values (the private key stays opaque: only whether it was given). */
export type NodeAccessInput =
  | {
      kind: "ssh";
      user?: string;
      port?: number;
      hasPrivateKey: boolean;
      sudo?: boolean;
    }
  | { kind: "docker-exec"; container?: string }
  | { kind: "manual" };

export interface NodeInput {
  name: string;
  address?: string;
  access: NodeAccessInput;
  runtime: string;
}

export interface NodeRegistrySettingsInput {
  nodes: NodeInput[];
  mirror: {
    endpoint: string;
    scheme?: string;
    caCertificate?: string;
    skipVerify?: boolean;
    auth?: { username?: string; hasPassword: boolean };
    /** The mirror's own certificate (PEM); the hosts flavour checks its names. */
    certificate?: string;
  };
  upstreams: NodeUpstream[];
  forbidFallback?: boolean;
  /** k3s/rke2 node options (system-default-registry, embedded registry). */
  k3s?: { systemDefaultRegistry?: boolean; embeddedRegistry?: boolean };
  stateDir?: string;
}

/** How one node is reached, resolved. */
export type ResolvedAccess =
  | { kind: "ssh"; host: string; port: number; user: string; sudo: boolean }
  | { kind: "docker-exec"; container: string }
  | { kind: "manual"; node: string };

export interface ResolvedNode {
  name: string;
  runtime: RuntimeFlavour;
  access: ResolvedAccess;
  /** Command lines for create and delete (the script goes on stdin). */
  commands: { create: string; delete: string };
  /**
   * The node's plan. When the mirror has a password this plan was made with a placeholder for
   * validation only; the component renders the real one inside an Output.
   */
  plan: NodePlan;
}

export interface NodeRegistrySettings {
  nodes: ResolvedNode[];
  stateDir: string;
  mirror: { endpoint: string; scheme: "http" | "https" };
}

/** Never sent anywhere: stands in for the password while the arguments are validated. */
export const passwordPlaceholder = "password-placeholder";

const dockerObjectName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const dnsName =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const userName = /^[a-z_][a-z0-9_-]*[$]?$/i;

function isValidAddress(address: string): boolean {
  return isIP(address) !== 0 || dnsName.test(address);
}

function resolveAccess(node: NodeInput, at: string): ResolvedAccess {
  const access = node.access;
  if (access?.kind === "ssh") {
    if (node.address === undefined || node.address === "") {
      throw new NodeRegistryArgsError(
        `${at}.address`,
        "an ssh node needs the address to connect to",
      );
    }
    if (!isValidAddress(node.address)) {
      throw new NodeRegistryArgsError(
        `${at}.address`,
        `'${node.address}' is not an IP address or DNS name (no scheme, no port: use access.port)`,
      );
    }
    const port = access.port ?? 22;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new NodeRegistryArgsError(
        `${at}.access.port`,
        `${String(port)} is out of range; use an integer from 1 to 65535`,
      );
    }
    const user = access.user ?? "root";
    if (!userName.test(user)) {
      throw new NodeRegistryArgsError(`${at}.access.user`, `'${user}' is not a user name`);
    }
    if (!access.hasPrivateKey) {
      throw new NodeRegistryArgsError(
        `${at}.access.privateKey`,
        "an ssh node needs a private key (its contents, kept as a Pulumi secret)",
      );
    }
    return { kind: "ssh", host: node.address, port, user, sudo: access.sudo ?? user !== "root" };
  }
  if (access?.kind === "docker-exec") {
    const container = access.container ?? node.name;
    if (!dockerObjectName.test(container)) {
      throw new NodeRegistryArgsError(
        `${at}.access.container`,
        `'${container}' is not a container name (letters, digits, '_', '.', '-')`,
      );
    }
    if (node.address !== undefined && !isValidAddress(node.address)) {
      throw new NodeRegistryArgsError(
        `${at}.address`,
        `'${node.address}' is not an IP address or DNS name`,
      );
    }
    return { kind: "docker-exec", container };
  }
  if (access?.kind === "manual") {
    if (node.address !== undefined && !isValidAddress(node.address)) {
      throw new NodeRegistryArgsError(
        `${at}.address`,
        `'${node.address}' is not an IP address or DNS name`,
      );
    }
    return { kind: "manual", node: node.name };
  }
  throw new NodeRegistryArgsError(
    `${at}.access.kind`,
    `'${String((access as { kind?: unknown } | undefined)?.kind)}' is not an access kind; use ssh, docker-exec or manual`,
  );
}

function accessKey(access: ResolvedAccess): string {
  switch (access.kind) {
    case "ssh":
      return `ssh://${access.user}@${access.host}:${access.port}`;
    case "docker-exec":
      return `docker-exec:${access.container}`;
    case "manual":
      return `manual:${access.node}`;
  }
}

/**
 * Validates NodeRegistryConfig arguments and plans every node. Every error names the argument
 * (and the node) and says what is allowed; nothing is created before this has passed.
 */
export function resolveNodeRegistrySettings(
  input: NodeRegistrySettingsInput,
): NodeRegistrySettings {
  const scheme = input.mirror?.scheme ?? "http";
  if (scheme !== "http" && scheme !== "https") {
    throw new NodeRegistryArgsError(
      "mirror.scheme",
      `'${scheme}' is not a scheme; use http or https`,
    );
  }
  const stateDir = input.stateDir ?? defaultStateDir;
  if (!isSafeNodePath(stateDir) || stateDir === "/") {
    throw new NodeRegistryArgsError(
      "stateDir",
      `'${stateDir}' must be an absolute directory path of letters, digits, '.', '_', '-' and '/'`,
    );
  }
  let auth: { username: string; password: string } | undefined;
  if (input.mirror.auth) {
    if (!input.mirror.auth.username) {
      throw new NodeRegistryArgsError(
        "mirror.auth.username",
        "a password was given without a user name",
      );
    }
    if (!input.mirror.auth.hasPassword) {
      throw new NodeRegistryArgsError(
        "mirror.auth.password",
        `user '${input.mirror.auth.username}' needs a password`,
      );
    }
    auth = { username: input.mirror.auth.username, password: passwordPlaceholder };
  }
  if (!Array.isArray(input.nodes) || input.nodes.length === 0) {
    throw new NodeRegistryArgsError("nodes", "list at least one node");
  }

  const names = new Map<string, number>();
  const targets = new Map<string, number>();
  const nodes = input.nodes.map((node, index) => {
    const at = `nodes[${index}]`;
    if (typeof node.name !== "string" || !isValidNodeName(node.name)) {
      throw new NodeRegistryArgsError(
        `${at}.name`,
        `'${String(node.name)}' is not a node name (lowercase letters, digits, '-' and '.', as Kubernetes names nodes)`,
      );
    }
    const earlier = names.get(node.name);
    if (earlier !== undefined) {
      throw new NodeRegistryArgsError(
        `${at}.name`,
        `node '${node.name}' is listed twice (also nodes[${earlier}]); list each node once`,
      );
    }
    names.set(node.name, index);
    if (!isRuntimeFlavour(node.runtime)) {
      throw new NodeRegistryArgsError(
        `${at}.runtime`,
        `'${String(node.runtime)}' is not a runtime flavour; use one of ${runtimeFlavours.join(", ")}`,
      );
    }
    const access = resolveAccess(node, at);
    const target = accessKey(access);
    const sameTarget = targets.get(target);
    if (sameTarget !== undefined) {
      throw new NodeRegistryArgsError(
        `${at}.access`,
        `node '${node.name}' is reached the same way as nodes[${sameTarget}] (${target}); each node is configured once`,
      );
    }
    targets.set(target, index);
    let plan: NodePlan;
    try {
      plan = planNodeFiles({
        runtime: node.runtime,
        mirror: {
          endpoint: input.mirror.endpoint,
          scheme,
          caCertificate: input.mirror.caCertificate,
          skipVerify: input.mirror.skipVerify,
          auth,
          certificate: input.mirror.certificate,
        },
        upstreams: input.upstreams ?? [],
        options: { forbidFallback: input.forbidFallback ?? false, ...input.k3s },
      });
    } catch (error) {
      if (!(error instanceof NodeConfigError)) throw error;
      const reason = error.message.slice(error.arg.length + 2);
      throw new NodeRegistryArgsError(
        error.arg,
        `${reason} (node '${node.name}', runtime ${node.runtime})`,
      );
    }
    const accessKind: NodeAccessKind =
      access.kind === "ssh"
        ? { kind: "ssh", sudo: access.sudo }
        : access.kind === "docker-exec"
          ? { kind: "docker-exec", container: access.container }
          : { kind: "manual" };
    return {
      name: node.name,
      runtime: node.runtime,
      access,
      commands: nodeCommands(accessKind),
      plan,
    };
  });
  return { nodes, stateDir, mirror: { endpoint: input.mirror.endpoint, scheme } };
}

/** Where the script keeps the original of `path` on the node (mirrors the script's entry_of). */
export function backupPathFor(stateDir: string, path: string): string {
  return `${stateDir}/entries/${sha256Hex(path).slice(0, 16)}/original`;
}

/** What a node reports: the files written and where their originals are kept. */
export interface NodeFileReport {
  path: string;
  /** sha256 of the whole file written; absent for edits of shared files and secret files. */
  sha256?: string;
  /** Where the original is kept, if the node had one before. */
  backupPath: string;
}

export interface NodeReport {
  name: string;
  runtime: RuntimeFlavour;
  files: NodeFileReport[];
  stateDir: string;
}

export function nodeReport(node: ResolvedNode, stateDir: string): NodeReport {
  return {
    name: node.name,
    runtime: node.runtime,
    stateDir,
    files: node.plan.files.map((file) => ({
      path: file.path,
      ...(file.kind === "file" && !file.secret ? { sha256: sha256Hex(file.content) } : {}),
      backupPath: backupPathFor(stateDir, file.path),
    })),
  };
}
