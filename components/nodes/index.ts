import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  type NodeUpstream,
  type RuntimeFlavour,
  nodeScriptFileName,
  planNodeFiles,
  renderNodeScript,
} from "../../core/nodes";
import { withoutPropertyStackTraces } from "../../core/runtime/stack-traces";
import {
  NodeRegistryArgsError,
  type NodeReport,
  type ResolvedNode,
  nodeReport,
  resolveNodeRegistrySettings,
} from "./spec";

export { NodeRegistryArgsError, resolveNodeRegistrySettings, backupPathFor } from "./spec";
export type { NodeFileReport, NodeReport } from "./spec";

/** Reach a node over SSH (@pulumi/command remote). */
export interface NodeSshAccess {
  readonly kind: "ssh";
  /** Login user. Default `root`; any other user needs passwordless sudo (see `sudo`). */
  readonly user?: string;
  /** SSH port. Default 22. */
  readonly port?: number;
  /** Private key contents (PEM/OpenSSH). Kept as a Pulumi secret. */
  readonly privateKey: pulumi.Input<string>;
  /** Run the script with `sudo -n`. Default: true unless the user is root. */
  readonly sudo?: boolean;
  /**
   * The node's SSH host key as `ssh-keyscan` prints it after the host name
   * (`ssh-ed25519 AAAA...`): the connection is refused when the node presents another key.
   * Required unless `skipHostKeyCheck` is true.
   */
  readonly hostKey?: pulumi.Input<string>;
  /** Connect without checking the host key (a lab, a throwaway cluster). Default false. */
  readonly skipHostKeyCheck?: boolean;
}

/** Reach a node with `docker exec` on the machine running Pulumi (kind nodes). */
export interface NodeDockerExecAccess {
  readonly kind: "docker-exec";
  /** Container name. Default: the node name (kind names containers after nodes). */
  readonly container?: string;
}

/**
 * A node Pulumi does not reach (no SSH from the machine running Pulumi, a change window, another
 * team's hosts): no command is declared for it. Its script is written on the machine running
 * Pulumi to `<manualScriptDir>/<node>/node-script.sh` (mode 0600: it may carry the mirror
 * password) and exported in `manualScripts`; an operator copies it to the node and runs, as
 * root, `sh -s apply < node-script.sh`, and after destroy `sh -s delete < node-script.sh`.
 */
export interface NodeManualAccess {
  readonly kind: "manual";
}

/** One cluster node. */
export interface NodeRegistryNode {
  /** The node's name (as Kubernetes knows it); also names its resource `<name>-<node>`. */
  readonly name: string;
  /** IP or DNS name to connect to; required for SSH. */
  readonly address?: string;
  readonly access: NodeSshAccess | NodeDockerExecAccess | NodeManualAccess;
  /**
   * Which configuration the node's runtime reads: `containerd` (1.x, hosts.toml + config.toml
   * version 2), `containerd2` (2.x, version 3), `k3s`/`rke2` (registries.yaml), `crio`/`podman`
   * (registries.conf.d drop-in), or `hosts` (/etc/hosts spoofing; mirror on port 80/443).
   */
  readonly runtime: RuntimeFlavour;
}

/** The mirror as the nodes reach it. */
export interface NodeRegistryMirror {
  /** `host[:port]` without scheme, e.g. `10.0.0.5:5000` (RegistryContainer's endpoint). */
  readonly endpoint: string;
  /** Default `http`. */
  readonly scheme?: "http" | "https";
  /**
   * PEM of the CA that signed the mirror's certificate; installed on each node at a fixed path
   * (per runtime) and referenced from its configuration.
   */
  readonly caCertificate?: string;
  /** Skip certificate verification (https only). Prefer caCertificate. */
  readonly skipVerify?: boolean;
  /**
   * PEM of the mirror's own certificate. Required by `hosts` nodes: checked at preview to cover
   * every spoofed upstream name and the mirror's IP.
   */
  readonly certificate?: string;
  /** Mirror credentials (k3s/rke2 nodes only). The password is kept as a Pulumi secret. */
  readonly auth?: { readonly username?: string; readonly password?: pulumi.Input<string> };
}

/** Arguments of {@link NodeRegistryConfig}. Structural values are plain so they are checked at preview. */
export interface NodeRegistryConfigArgs {
  /** The nodes to configure; each becomes one child resource. */
  readonly nodes: NodeRegistryNode[];
  readonly mirror: NodeRegistryMirror;
  /**
   * Upstream registries the nodes pull from by name, each with the path prefix its images have
   * in the mirror if any (core/images/mapping.ts `upstreamPrefixes`).
   */
  readonly upstreams: NodeUpstream[];
  /** Never fall back to the upstream registry (only the mirror is tried). Default false. */
  readonly forbidFallback?: boolean;
  /**
   * k3s/rke2 nodes only: `systemDefaultRegistry` pulls the distribution's system images from
   * the mirror by its own name; `embeddedRegistry` turns on the embedded registry mirror
   * (nodes serve images to each other). Both default false.
   */
  readonly k3s?: { readonly systemDefaultRegistry?: boolean; readonly embeddedRegistry?: boolean };
  /**
   * Where the scripts of `manual` nodes are written on the machine running Pulumi, one
   * `<node>/node-script.sh` each. Default `node-scripts` (relative to the working directory).
   */
  readonly manualScriptDir?: string;
  /** Where each node keeps backups and its record of changes. Default `/var/lib/airgap-conformance/node-registry`. */
  readonly stateDir?: string;
}

/** The part of a node's resource name that says how it is reached (`ssh-<host>[-<port>]`, `docker-<container>`). */
export function nodeResourceKey(access: ResolvedNode["access"]): string {
  switch (access.kind) {
    case "ssh":
      return `ssh-${access.host.replace(/:/g, ".")}${access.port === 22 ? "" : `-${access.port}`}`;
    case "docker-exec":
      return `docker-${access.container}`;
    case "manual":
      return `manual-${access.node}`;
  }
}

/**
 * Makes every node's container runtime resolve the upstream registries through the mirror, and
 * undoes it exactly on destroy: each node gets one command resource whose script (generated
 * by core/nodes) backs up what it replaces, writes atomically, restarts only what needs it and
 * verifies; its delete puts the originals back byte for byte.
 */
export class NodeRegistryConfig extends pulumi.ComponentResource {
  /** Per node: the files written and where their originals are kept on the node. */
  public readonly nodes: pulumi.Output<NodeReport[]>;
  /** The script each node runs, by node name (secret when it carries the mirror password). */
  public readonly scripts: pulumi.Output<Record<string, string>>;
  /** Where the script of each `manual` node was written, by node name. */
  public readonly manualScripts: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: NodeRegistryConfigArgs, opts?: pulumi.ComponentResourceOptions) {
    super("airgap:nodes:NodeRegistryConfig", name, {}, opts);

    const password = args.mirror?.auth?.password;
    const settings = resolveNodeRegistrySettings({
      nodes: (args.nodes ?? []).map((node) => ({
        name: node.name,
        address: node.address,
        runtime: node.runtime,
        access:
          node.access?.kind === "ssh"
            ? {
                kind: "ssh",
                user: node.access.user,
                port: node.access.port,
                sudo: node.access.sudo,
                hasPrivateKey:
                  node.access.privateKey !== undefined && node.access.privateKey !== "",
              }
            : (node.access as NodeDockerExecAccess | NodeManualAccess),
      })),
      mirror: {
        endpoint: args.mirror?.endpoint,
        scheme: args.mirror?.scheme,
        caCertificate: args.mirror?.caCertificate,
        skipVerify: args.mirror?.skipVerify,
        certificate: args.mirror?.certificate,
        auth: args.mirror?.auth
          ? { username: args.mirror.auth.username, hasPassword: password !== undefined }
          : undefined,
      },
      upstreams: args.upstreams,
      forbidFallback: args.forbidFallback,
      k3s: args.k3s,
      stateDir: args.stateDir,
    });

    const scriptFor = (node: ResolvedNode): pulumi.Output<string> => {
      if (password === undefined || !node.plan.secret) {
        return pulumi.output(
          renderNodeScript(node.plan, { nodeName: node.name, stateDir: settings.stateDir }),
        );
      }
      // The password only ever exists inside a secret Output: the script that carries it
      // travels on stdin, never in a command line.
      return pulumi.secret(
        pulumi.output(password).apply((secretPassword) =>
          renderNodeScript(
            planNodeFiles({
              runtime: node.runtime,
              mirror: {
                endpoint: settings.mirror.endpoint,
                scheme: settings.mirror.scheme,
                caCertificate: args.mirror.caCertificate,
                skipVerify: args.mirror.skipVerify,
                certificate: args.mirror.certificate,
                auth: { username: args.mirror.auth!.username!, password: secretPassword },
              },
              upstreams: args.upstreams,
              options: { forbidFallback: args.forbidFallback ?? false, ...args.k3s },
            }),
            { nodeName: node.name, stateDir: settings.stateDir },
          ),
        ),
      );
    };

    const scripts: Record<string, pulumi.Output<string>> = {};
    const manualScripts: Record<string, pulumi.Output<string>> = {};
    const commands: pulumi.Resource[] = [];
    const manualDir = args.manualScriptDir ?? "node-scripts";
    for (const [index, node] of settings.nodes.entries()) {
      const script = scriptFor(node);
      scripts[node.name] = script;
      if (node.access.kind === "manual") {
        // No command: the operator runs the script. Written on `up` only, not at preview.
        const file = path.resolve(manualDir, node.name, nodeScriptFileName);
        manualScripts[node.name] = script.apply((text) => {
          if (!pulumi.runtime.isDryRun()) {
            mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
            writeFileSync(file, text, { mode: 0o600 });
          }
          return file;
        });
        continue;
      }
      // Keyed by how the node is reached: renaming its entry keeps the resource (an update), where
      // a new resource would apply first and the old one's delete would then restore the files.
      // The alias adopts a resource named after the node by an earlier version.
      const childName = `${name}-${nodeResourceKey(node.access)}`;
      // A node reached differently is another node: delete (restore) there first, then apply.
      // Children do not inherit the component's dependsOn: nodes change only once images are in.
      const childOpts: pulumi.CustomResourceOptions = {
        parent: this,
        deleteBeforeReplace: true,
        dependsOn: opts?.dependsOn,
        aliases: [{ name: `${name}-${node.name}` }],
      };
      const reach = node.access;
      if (reach.kind === "ssh") {
        const access = args.nodes[index].access as NodeSshAccess;
        if (access.hostKey === undefined && access.skipHostKeyCheck !== true) {
          throw new NodeRegistryArgsError(
            `nodes[${index}].access.hostKey`,
            `ssh node ${node.name} (${reach.host}) needs its host key (as ssh-keyscan prints it), or skipHostKeyCheck: true to connect without checking it`,
          );
        }
        commands.push(
          withoutPropertyStackTraces(
            () =>
              new command.remote.Command(
                childName,
                {
                  connection: {
                    host: reach.host,
                    port: reach.port,
                    user: reach.user,
                    privateKey: pulumi.secret(access.privateKey),
                    ...(access.hostKey === undefined ? {} : { hostKey: access.hostKey }),
                  },
                  create: node.commands.create,
                  delete: node.commands.delete,
                  stdin: script,
                  // A script carrying the mirror password keeps its stdout out of the engine's log;
                  // stderr (progress and errors) is still shown.
                  logging:
                    password !== undefined && node.plan.secret ? "stderr" : "stdoutAndStderr",
                  triggers: [reach.host, reach.port, reach.user],
                },
                childOpts,
              ),
          ),
        );
      } else if (reach.kind === "docker-exec") {
        commands.push(
          withoutPropertyStackTraces(
            () =>
              new command.local.Command(
                childName,
                {
                  create: node.commands.create,
                  delete: node.commands.delete,
                  stdin: script,
                  triggers: [reach.container],
                },
                childOpts,
              ),
          ),
        );
      }
    }

    // Reports are known from the plans; they wait for the commands so they describe what ran.
    this.nodes = pulumi
      .all(commands.map((resource) => (resource as command.local.Command).stdout))
      .apply(() => settings.nodes.map((node) => nodeReport(node, settings.stateDir)));
    this.scripts = pulumi.all(scripts);
    this.manualScripts = pulumi.all(manualScripts);
    this.registerOutputs({
      nodes: this.nodes,
      scripts: this.scripts,
      manualScripts: this.manualScripts,
    });
  }
}
