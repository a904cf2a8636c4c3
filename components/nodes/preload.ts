import * as path from "node:path";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  NodeConfigError,
  archivePreloadStoreFor,
  nodeCommands,
  archivePreloadDockerCreate,
  preloadIncomingPath,
  preloadStoreFor,
  renderArchivePreloadScript,
  renderPreloadScript,
  type ArchivePreloadStore,
  type PreloadStore,
} from "../../core/nodes";
import type { NodeDockerExecAccess, NodeSshAccess } from "./index";
import { preloadTarballProviderModule } from "./preload-provider";
import { NodeRegistryArgsError } from "./spec";

/** `host/path:tag@sha256:...` -> `host/path:tag` (what ctr and podman tag from); kept when untagged. */
function pullableName(reference: string): string {
  const named = reference.split("@")[0];
  return /:[^/]+$/.test(named) ? named : reference;
}

/** The archive a preload takes its images from instead of the mirror. */
export interface PreloadArchive {
  /** The OCI layout directory carried across the gap (with images.lock.json). */
  readonly directory: string;
  /** The images to preload, by canonical upstream name, with the digest the lock pins. */
  readonly images: readonly { readonly source: string; readonly digest: string }[];
  /** The nodes' platform (os/arch[/variant]): the tarball holds that platform of each image. */
  readonly platform: string;
  /** Where the tarball is written on the machine running Pulumi. */
  readonly tarballDirectory: string;
}

/** Arguments of {@link NodeImagePreload}. */
export interface NodeImagePreloadArgs {
  /**
   * Nodes to preload; `runtime` picks the store (containerd/containerd2, podman/crio, and with
   * an archive k3s/rke2).
   */
  readonly nodes: {
    readonly name: string;
    readonly address?: string;
    readonly runtime: string;
    readonly access: NodeSshAccess | NodeDockerExecAccess;
  }[];
  /** The mirror as the nodes reach it (preload from the mirror). */
  readonly mirror?: { readonly endpoint: string; readonly scheme: "http" | "https" };
  /** Upstream name -> the same image in the mirror (ImageMirror's `mapping`), with `mirror`. */
  readonly images?: pulumi.Input<Record<string, string>>;
  /** Preload from this archive instead: no mirror or registry is used. */
  readonly archive?: PreloadArchive;
  /** Where each node records what it imported. Default `/var/lib/airgap-conformance`. */
  readonly stateDir?: string;
}

/** The images of the archive as one tarball on this machine, declared like a dynamic resource. */
class PreloadTarball extends pulumi.CustomResource {
  declare readonly file: pulumi.Output<string>;
  declare readonly sha256: pulumi.Output<string>;
  declare readonly repoTags: pulumi.Output<string[]>;
  declare readonly skipped: pulumi.Output<{ image: string; reason: string }[]>;

  constructor(name: string, inputs: pulumi.Inputs, opts: pulumi.CustomResourceOptions) {
    super(
      "pulumi-nodejs:dynamic/nodes:PreloadTarball",
      name,
      {
        ...inputs,
        __provider: preloadTarballProviderModule,
        file: undefined,
        sha256: undefined,
        size: undefined,
        repoTags: undefined,
        skipped: undefined,
      },
      opts,
    );
  }
}

function rethrowAsArg(error: unknown, prefix: string): never {
  if (error instanceof NodeConfigError) {
    throw new NodeRegistryArgsError(`${prefix}.${error.arg}`, error.message);
  }
  throw error;
}

/**
 * Puts the image set straight into each node's image store under the upstream names: pulled
 * from the mirror by its own names, or imported from one tarball built from the archive (no
 * registry at all). The node needs no registry configuration. Destroy removes what each node
 * imported, and nothing it had before.
 */
export class NodeImagePreload extends pulumi.ComponentResource {
  /** Per node: its store. */
  public readonly stores: pulumi.Output<Record<string, string>>;
  /** With an archive: the tarball every node imports (path on this machine, sha256, names). */
  public readonly tarball?: pulumi.Output<{ file: string; sha256: string; images: string[] }>;
  /** With an archive: images left out of the tarball, and why. */
  public readonly skipped?: pulumi.Output<{ image: string; reason: string }[]>;

  constructor(name: string, args: NodeImagePreloadArgs, opts?: pulumi.ComponentResourceOptions) {
    super("airgap:nodes:NodeImagePreload", name, {}, opts);
    const stateDir = args.stateDir ?? "/var/lib/airgap-conformance";
    if ((args.archive === undefined) === (args.mirror === undefined)) {
      throw new NodeRegistryArgsError(
        "archive",
        "preload takes its images from the mirror or from an archive: give exactly one of mirror and archive",
      );
    }
    const childOpts = { parent: this, dependsOn: opts?.dependsOn, deleteBeforeReplace: true };
    let tarball: PreloadTarball | undefined;
    // The tarball's path is relative to the program's working directory (where the engine also
    // runs the providers, so state holds no path into the project); the engine reads the copy's
    // source from an absolute one.
    const programDir = process.cwd();
    if (args.archive) {
      tarball = new PreloadTarball(
        `${name}-tarball`,
        {
          archiveDirectory: args.archive.directory,
          images: args.archive.images.map(({ source, digest }) => ({ source, digest })),
          platform: args.archive.platform,
          outputDirectory: args.archive.tarballDirectory,
        },
        { parent: this, dependsOn: opts?.dependsOn },
      );
      this.tarball = pulumi
        .all([tarball.file, tarball.sha256, tarball.repoTags])
        .apply(([file, sha256, images]) => ({ file, sha256, images }));
      this.skipped = tarball.skipped;
    }
    const stores: Record<string, string> = {};
    for (const [index, node] of args.nodes.entries()) {
      const archiveStore: ArchivePreloadStore | undefined = tarball
        ? archivePreloadStoreFor(node.runtime)
        : undefined;
      const mirrorStore: PreloadStore | undefined = tarball
        ? undefined
        : preloadStoreFor(node.runtime);
      const store = archiveStore ?? mirrorStore;
      if (!store) {
        throw new NodeRegistryArgsError(
          `nodes[${index}].runtime`,
          tarball
            ? `node '${node.name}' runs ${node.runtime}, which cannot be preloaded; preload from the archive serves containerd, containerd2, crio, podman, k3s and rke2 nodes`
            : `node '${node.name}' runs ${node.runtime}, which cannot be preloaded; preload from the mirror serves containerd, containerd2, crio and podman nodes`,
        );
      }
      stores[node.name] = store;
      if (node.access.kind === "ssh") {
        if (node.access.hostKey === undefined && node.access.skipHostKeyCheck !== true) {
          throw new NodeRegistryArgsError(
            `nodes[${index}].access.hostKey`,
            `ssh node ${node.name} (${node.address}) needs its host key (as ssh-keyscan prints it), or skipHostKeyCheck: true to connect without checking it`,
          );
        }
      }
      const script: pulumi.Output<string> = tarball
        ? pulumi.all([tarball.sha256, tarball.repoTags]).apply(([sha256, images]) => {
            try {
              return renderArchivePreloadScript({
                store: archiveStore!,
                tarball: { sha256, images },
                nodeName: node.name,
                stateDir,
              });
            } catch (error) {
              rethrowAsArg(error, "preload");
            }
          })
        : pulumi.output(args.images ?? {}).apply((mapping) => {
            try {
              return renderPreloadScript({
                store: mirrorStore!,
                mirror: args.mirror!,
                images: Object.entries(mapping).map(([source, reference]) => ({
                  source,
                  mirrorReference: pullableName(reference),
                })),
                nodeName: node.name,
                stateDir,
              });
            } catch (error) {
              rethrowAsArg(error, "preload");
            }
          });
      const lines = nodeCommands(
        node.access.kind === "ssh"
          ? { kind: "ssh", sudo: node.access.sudo ?? (node.access.user ?? "root") !== "root" }
          : { kind: "docker-exec", container: node.access.container ?? node.name },
      );
      // A new tarball replaces the node's import (delete the old names, then import again).
      const triggers = tarball ? [tarball.sha256] : undefined;
      if (node.access.kind === "ssh") {
        const connection = {
          host: node.address!,
          port: node.access.port,
          user: node.access.user ?? "root",
          privateKey: pulumi.secret(node.access.privateKey),
          ...(node.access.hostKey === undefined ? {} : { hostKey: node.access.hostKey }),
        };
        let copy: command.remote.CopyToRemote | undefined;
        if (tarball) {
          copy = new command.remote.CopyToRemote(
            `${name}-${node.name}-tarball`,
            {
              connection,
              source: tarball.file.apply(
                (file) => new pulumi.asset.FileAsset(path.resolve(programDir, file)),
              ),
              remotePath: tarball.sha256.apply(preloadIncomingPath),
              triggers: [tarball.sha256],
            },
            { parent: this, dependsOn: opts?.dependsOn },
          );
        }
        new command.remote.Command(
          `${name}-${node.name}`,
          { connection, create: lines.create, delete: lines.delete, stdin: script, triggers },
          copy ? { ...childOpts, dependsOn: [copy] } : childOpts,
        );
      } else {
        const container = node.access.container ?? node.name;
        // docker cp, then the same script: it takes the tarball from where it arrived.
        const create = tarball
          ? pulumi
              .all([tarball.file, tarball.sha256])
              .apply(([file, sha256]) => archivePreloadDockerCreate(container, file, sha256))
          : lines.create;
        new command.local.Command(
          `${name}-${node.name}`,
          { create, delete: lines.delete, stdin: script, triggers },
          childOpts,
        );
      }
    }
    this.stores = pulumi.output(stores);
    this.registerOutputs({ stores: this.stores, tarball: this.tarball, skipped: this.skipped });
  }
}
