import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  NodeConfigError,
  nodeCommands,
  preloadStoreFor,
  renderPreloadScript,
} from "../../core/nodes";
import type { NodeDockerExecAccess, NodeSshAccess } from "./index";
import { NodeRegistryArgsError } from "./spec";

/** `host/path:tag@sha256:...` -> `host/path:tag` (what ctr and podman tag from); kept when untagged. */
function pullableName(reference: string): string {
  const named = reference.split("@")[0];
  return /:[^/]+$/.test(named) ? named : reference;
}

/** Arguments of {@link NodeImagePreload}. */
export interface NodeImagePreloadArgs {
  /** Nodes to preload; `runtime` picks the store (containerd/containerd2, or podman/crio). */
  readonly nodes: {
    readonly name: string;
    readonly address?: string;
    readonly runtime: string;
    readonly access: NodeSshAccess | NodeDockerExecAccess;
  }[];
  /** The mirror as the nodes reach it. */
  readonly mirror: { readonly endpoint: string; readonly scheme: "http" | "https" };
  /** Upstream name -> the same image in the mirror (ImageMirror's `mapping`). */
  readonly images: pulumi.Input<Record<string, string>>;
  /** Where each node records what it imported. Default `/var/lib/airgap-conformance`. */
  readonly stateDir?: string;
}

/**
 * Puts the image set straight into each node's image store under the upstream names, pulled
 * from the mirror by its own names: the node needs no registry configuration. Destroy removes
 * what each node imported, and nothing it had before.
 */
export class NodeImagePreload extends pulumi.ComponentResource {
  /** Per node: its store. */
  public readonly stores: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: NodeImagePreloadArgs, opts?: pulumi.ComponentResourceOptions) {
    super("airgap:nodes:NodeImagePreload", name, {}, opts);
    const stateDir = args.stateDir ?? "/var/lib/airgap-conformance";
    const stores: Record<string, string> = {};
    for (const [index, node] of args.nodes.entries()) {
      const store = preloadStoreFor(node.runtime);
      if (!store) {
        throw new NodeRegistryArgsError(
          `nodes[${index}].runtime`,
          `node '${node.name}' runs ${node.runtime}, which cannot be preloaded; preload serves containerd, containerd2, crio and podman nodes`,
        );
      }
      stores[node.name] = store;
      const script = pulumi.output(args.images).apply((mapping) => {
        try {
          return renderPreloadScript({
            store,
            mirror: args.mirror,
            images: Object.entries(mapping).map(([source, reference]) => ({
              source,
              mirrorReference: pullableName(reference),
            })),
            nodeName: node.name,
            stateDir,
          });
        } catch (error) {
          if (error instanceof NodeConfigError) {
            throw new NodeRegistryArgsError(`preload.${error.arg}`, error.message);
          }
          throw error;
        }
      });
      const lines = nodeCommands(
        node.access.kind === "ssh"
          ? { kind: "ssh", sudo: node.access.sudo ?? (node.access.user ?? "root") !== "root" }
          : { kind: "docker-exec", container: node.access.container ?? node.name },
      );
      const childOpts = { parent: this, dependsOn: opts?.dependsOn, deleteBeforeReplace: true };
      if (node.access.kind === "ssh") {
        if (node.access.hostKey === undefined && node.access.skipHostKeyCheck !== true) {
          throw new NodeRegistryArgsError(
            `nodes[${index}].access.hostKey`,
            `ssh node ${node.name} (${node.address}) needs its host key (as ssh-keyscan prints it), or skipHostKeyCheck: true to connect without checking it`,
          );
        }
        new command.remote.Command(
          `${name}-${node.name}`,
          {
            connection: {
              host: node.address!,
              port: node.access.port,
              user: node.access.user ?? "root",
              privateKey: pulumi.secret(node.access.privateKey),
              ...(node.access.hostKey === undefined ? {} : { hostKey: node.access.hostKey }),
            },
            create: lines.create,
            delete: lines.delete,
            stdin: script,
          },
          childOpts,
        );
      } else {
        new command.local.Command(
          `${name}-${node.name}`,
          { create: lines.create, delete: lines.delete, stdin: script },
          childOpts,
        );
      }
    }
    this.stores = pulumi.output(stores);
    this.registerOutputs({ stores: this.stores });
  }
}
