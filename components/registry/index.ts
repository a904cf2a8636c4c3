import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { withoutPropertyStackTraces } from "../../core/runtime/stack-traces";
import { containerArgsFromSpec } from "./docker-args";
import { HtpasswdEntry } from "./htpasswd-entry";
import { dockerLoadEnvironment, dockerLoadScript, dockerUnloadScript } from "./image-load";
import { assertHostPortUsable, stackLabel } from "./port-check";
import {
  RegistryArgsError,
  type RegistrySettings,
  type RestartPolicy,
  registryContainerSpec,
  registryScheme,
  resolveRegistrySettings,
} from "./spec";

export { RegistryArgsError, resolveRegistrySettings, registryContainerSpec } from "./spec";
export type { RegistryContainerSpec, RegistrySettings, RestartPolicy } from "./spec";

/** Arguments of {@link RegistryContainer}. Structural values are plain so they can be checked at preview. */
export interface RegistryContainerArgs {
  /** Registry image. Default `registry:2` (CNCF distribution 2.x). */
  readonly image?: string;
  /**
   * A `docker save` tar that holds `image`, loaded with `docker load` before the container is
   * created: inside the gap the registry image itself arrives on removable media.
   */
  readonly imageTar?: string;
  /** Container name. Default: the resource name. */
  readonly containerName?: string;
  /** Host port the registry is published on. Default 5000. */
  readonly hostPort?: number;
  /** Host address the port is bound to. Default `0.0.0.0`. */
  readonly bindAddress?: string;
  /**
   * `host:port` nodes use to reach the registry. Default: `<containerName>:5000` when attached to
   * `networks` (kind), else `bindAddress:hostPort`; required when binding 0.0.0.0 without networks.
   */
  readonly advertisedEndpoint?: string;
  /** Named volume for the registry's storage. Default `<containerName>-data`. */
  readonly volumeName?: string;
  /** Host directory for the registry's storage, instead of a named volume. */
  readonly hostPath?: string;
  /** Keep the named volume (and so the mirrored images) when the stack is destroyed. Default false. */
  readonly retainStorage?: boolean;
  /** Allow deleting manifests and blobs by digest. Default true. */
  readonly deleteEnabled?: boolean;
  /** Serve TLS with this certificate and key (PEM files on the machine running Pulumi). */
  readonly tls?: { readonly certificateFile?: string; readonly keyFile?: string };
  /** htpasswd (bcrypt) authentication for one user. The password is kept as a Pulumi secret. */
  readonly auth?: { readonly username?: string; readonly password?: pulumi.Input<string> };
  /** Docker restart policy. Default `unless-stopped`. */
  readonly restartPolicy?: RestartPolicy;
  /** Further distribution settings as `REGISTRY_*` environment variables. */
  readonly extraSettings?: Record<string, string>;
  /** Docker networks to attach the container to (e.g. `kind`). */
  readonly networks?: string[];
  /** Docker engine to use instead of the local one (e.g. `ssh://admin@bastion`). */
  readonly dockerHost?: string;
  /** Check at preview that hostPort is free on the local engine. Default true without dockerHost. */
  readonly checkHostPort?: boolean;
}

/** Container label holding the sha256 of the image tar the container's image was loaded from. */
export const imageTarLabel = "airgap-conformance.image-tar-sha256";

function readArgFile(arg: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new RegistryArgsError(arg, `cannot read '${file}': ${(error as Error).message}`);
  }
}

function fileSha256(arg: string, file: string): string {
  try {
    if (!statSync(file).isFile()) throw new Error("not a regular file");
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch (error) {
    throw new RegistryArgsError(arg, `cannot read '${file}': ${(error as Error).message}`);
  }
}

/**
 * An internal OCI registry (CNCF distribution) run as a Docker container on the bastion, with
 * persistent storage, delete enabled, optional TLS and htpasswd auth; `pulumi up` waits until
 * it is healthy.
 */
export class RegistryContainer extends pulumi.ComponentResource {
  /** `host:port` as nodes and image copies should use it. */
  public readonly endpoint: pulumi.Output<string>;
  /** `host:port` on the bastion itself (loopback when bound to all addresses). */
  public readonly localEndpoint: pulumi.Output<string>;
  /** `http` or `https`. */
  public readonly scheme: pulumi.Output<"http" | "https">;
  public readonly containerId: pulumi.Output<string>;
  public readonly containerName: pulumi.Output<string>;
  public readonly authEnabled: pulumi.Output<boolean>;
  public readonly tlsEnabled: pulumi.Output<boolean>;
  /** The validated settings, known at preview (endpoints, user name), for composing components. */
  public readonly settings: RegistrySettings;

  constructor(name: string, args: RegistryContainerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("airgap:registry:RegistryContainer", name, {}, opts);

    const tlsPem = args.tls
      ? {
          certificatePem:
            args.tls.certificateFile === undefined
              ? undefined
              : readArgFile("tls.certificateFile", args.tls.certificateFile),
          keyPem:
            args.tls.keyFile === undefined
              ? undefined
              : readArgFile("tls.keyFile", args.tls.keyFile),
        }
      : undefined;
    const settings = resolveRegistrySettings({
      containerName: args.containerName ?? name,
      image: args.image,
      hostPort: args.hostPort,
      bindAddress: args.bindAddress,
      advertisedEndpoint: args.advertisedEndpoint,
      volumeName: args.volumeName,
      hostPath: args.hostPath,
      deleteEnabled: args.deleteEnabled,
      tls: tlsPem,
      auth: args.auth
        ? { username: args.auth.username, hasPassword: args.auth.password !== undefined }
        : undefined,
      restartPolicy: args.restartPolicy,
      extraSettings: args.extraSettings,
      networks: args.networks,
    });
    const imageTarHash =
      args.imageTar === undefined ? undefined : fileSha256("imageTar", args.imageTar);
    for (const warning of settings.warnings)
      pulumi.log.warn(`RegistryContainer ${name}: ${warning}`, this);

    const provider = args.dockerHost
      ? new docker.Provider(`${name}-docker`, { host: args.dockerHost }, { parent: this })
      : undefined;
    const childOpts = { parent: this, provider };

    const dependencies: pulumi.Resource[] = [];
    if (args.imageTar !== undefined) {
      dependencies.push(
        new command.local.Command(
          `${name}-load-image`,
          {
            create: dockerLoadScript,
            delete: dockerUnloadScript,
            environment: dockerLoadEnvironment({
              imageTar: args.imageTar,
              image: settings.image,
              dockerHost: args.dockerHost,
            }),
            // A different tar (by content) loads again, after the old image is removed.
            triggers: [imageTarHash],
          },
          { parent: this, deleteBeforeReplace: true },
        ),
      );
    }
    if (settings.storage.kind === "volume") {
      dependencies.push(
        new docker.Volume(
          `${name}-data`,
          { name: settings.storage.volumeName },
          { ...childOpts, retainOnDelete: args.retainStorage ?? false },
        ),
      );
    }

    const password = args.auth?.password;
    const spec = registryContainerSpec<pulumi.Input<string>>(settings, {
      tlsKeyPem: tlsPem?.keyPem === undefined ? undefined : pulumi.secret(tlsPem.keyPem),
      htpasswd:
        password === undefined || settings.authUsername === undefined
          ? undefined
          : pulumi.secret(
              new HtpasswdEntry(
                `${name}-htpasswd`,
                { username: settings.authUsername, password },
                { parent: this },
              ).line,
            ),
    });

    const containerArgs = containerArgsFromSpec(spec);
    const stack = `${pulumi.getProject()}/${pulumi.getStack()}`;
    // The stack label lets the port check tell this stack's container (under any name) from
    // others. The container names the image by tag: a new tar under the same tag must still
    // replace it, hence the tar's hash (labels are replace-on-change).
    containerArgs.labels = [
      { label: stackLabel, value: stack },
      ...(imageTarHash === undefined ? [] : [{ label: imageTarLabel, value: imageTarHash }]),
    ];
    const secretSettings = Object.keys(settings.extraSettings).length > 0;
    if (secretSettings) {
      // registryExtraSettings may hold secrets (e.g. a storage driver's keys): the environment
      // they travel in stays a secret in state and previews.
      containerArgs.envs = pulumi.secret(spec.env);
    }
    if (!args.dockerHost && args.checkHostPort !== false) {
      // Fail at preview, before anything is created, when another process holds the port.
      const portUsable = pulumi.output(
        assertHostPortUsable({
          hostPort: settings.hostPort,
          bindAddress: settings.bindAddress,
          containerName: settings.containerName,
          stack,
        }).then(() => true),
      );
      containerArgs.image = portUsable.apply(() => spec.image);
    }

    // A container has about a hundred properties, each with a stack trace otherwise.
    const container = withoutPropertyStackTraces(
      () =>
        new docker.Container(`${name}-container`, containerArgs, {
          ...childOpts,
          dependsOn: dependencies,
          // The fixed name and host port cannot be held by two containers at once.
          deleteBeforeReplace: true,
          ...(secretSettings ? { additionalSecretOutputs: ["envs"] } : {}),
        }),
    );

    this.settings = settings;
    this.endpoint = pulumi.output(settings.endpoint);
    this.localEndpoint = pulumi.output(settings.localEndpoint);
    this.scheme = pulumi.output(registryScheme(settings));
    this.containerId = container.id;
    this.containerName = container.name;
    this.authEnabled = pulumi.output(settings.authUsername !== undefined);
    this.tlsEnabled = pulumi.output(settings.tls !== undefined);
    this.registerOutputs({
      endpoint: this.endpoint,
      localEndpoint: this.localEndpoint,
      scheme: this.scheme,
      containerId: this.containerId,
      containerName: this.containerName,
      authEnabled: this.authEnabled,
      tlsEnabled: this.tlsEnabled,
    });
  }
}
