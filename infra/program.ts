import * as pulumi from "@pulumi/pulumi";
import { ImageMirror, type ImageDestination, type LockDocument } from "../components/mirror";
import { RegistryArgsError, RegistryContainer } from "../components/registry";
import { ConfigError, configKeyForRegistryArg, type StackConfig } from "./config";
import { imageSetForStack } from "./images";

/** Stack outputs of the program. */
export interface ProgramOutputs {
  registryEndpoint?: pulumi.Output<string>;
  registryUrl?: pulumi.Output<string>;
  registryContainerId?: pulumi.Output<string>;
  registryAuthEnabled?: pulumi.Output<boolean>;
  registryTlsEnabled?: pulumi.Output<boolean>;
  imageCount?: pulumi.Output<number>;
  imageMapping?: pulumi.Output<Record<string, string>>;
  imageLock?: pulumi.Output<LockDocument>;
  repoList?: pulumi.Output<string | undefined>;
  upstreamRegistries?: pulumi.Output<string[]>;
  unmirrorableImages?: { image: string; reason: string }[];
  imageCatalog?: {
    kubernetesVersion: string;
    kind: string;
    source: string;
    note: string;
    complete: boolean;
    caveats: string[];
  };
}

/** Re-raises a component's argument error as a config error naming the stack config key. */
function withRegistryConfigKeys<T>(project: string, declare: () => T): T {
  try {
    return declare();
  } catch (error) {
    if (error instanceof RegistryArgsError) {
      const key = configKeyForRegistryArg(project, error.arg);
      if (key) throw new ConfigError(key, undefined, error.message);
    }
    throw error;
  }
}

function declareRegistry(config: StackConfig, project: string): RegistryContainer {
  return withRegistryConfigKeys(
    project,
    () =>
      new RegistryContainer("registry", {
        image: config.registry.image,
        imageTar: config.registry.imageTar,
        containerName: config.registry.containerName,
        hostPort: config.registry.hostPort,
        bindAddress: config.registry.bindAddress,
        advertisedEndpoint: config.registry.advertisedEndpoint,
        networks: config.registry.networks,
        volumeName: config.registry.volumeName,
        hostPath: config.registry.hostPath,
        retainStorage: config.registry.retainStorage,
        deleteEnabled: config.registry.deleteEnabled,
        tls: config.registry.tls,
        auth: config.registry.auth,
        restartPolicy: config.registry.restartPolicy,
        extraSettings: config.registry.extraSettings,
        dockerHost: config.dockerHost,
        checkHostPort: config.registry.checkHostPort,
      }),
  );
}

/** Where ImageMirror writes, and with which password: the registry container, another registry, or an archive. */
function mirrorDestination(
  config: StackConfig,
  registry: RegistryContainer | undefined,
): { destination: ImageDestination; password?: pulumi.Input<string> } {
  if (config.images.destination === "archive") {
    return { destination: { kind: "archive", directory: config.images.archiveDirectory! } };
  }
  const tls = {
    caFile: config.mirror.caFile,
    insecureSkipVerify: config.mirror.insecure || undefined,
  };
  if (registry) {
    const settings = registry.settings;
    return {
      destination: {
        kind: "registry",
        nodeEndpoint: settings.endpoint,
        access: {
          host: config.mirror.pushEndpoint ?? settings.localEndpoint,
          scheme: settings.tls ? "https" : "http",
          ...(settings.tls ? tls : {}),
          ...(settings.authUsername ? { username: settings.authUsername } : {}),
        },
      },
      password: config.registry.auth?.password,
    };
  }
  const external = config.mirror.external!;
  return {
    destination: {
      kind: "registry",
      nodeEndpoint: external.endpoint,
      access: {
        host: external.pushEndpoint,
        scheme: external.scheme,
        ...(external.scheme === "https" ? tls : {}),
        ...(external.username ? { username: external.username } : {}),
      },
    },
    password: config.mirror.password,
  };
}

/** Declares the environment for one stack: registry -> mirrored images. */
export function defineProgram(config: StackConfig, project = pulumi.getProject()): ProgramOutputs {
  const outputs: ProgramOutputs = {};
  let registry: RegistryContainer | undefined;
  if (config.registry.enabled) {
    registry = declareRegistry(config, project);
    outputs.registryEndpoint = registry.endpoint;
    outputs.registryUrl = pulumi.interpolate`${registry.scheme}://${registry.endpoint}`;
    outputs.registryContainerId = registry.containerId;
    outputs.registryAuthEnabled = registry.authEnabled;
    outputs.registryTlsEnabled = registry.tlsEnabled;
  }

  if (config.images.enabled) {
    const imageSet = imageSetForStack(config, project);
    for (const image of imageSet.unmirrorable) {
      pulumi.log.info(`not mirrored: ${image.canonical} (${image.reason})`);
    }
    if (imageSet.catalog && !imageSet.catalog.completeness.complete) {
      pulumi.log.warn(
        `the image catalog for Kubernetes ${imageSet.catalog.kubernetesVersion} is a ${imageSet.catalog.provenance.kind} and not known to be complete: ${imageSet.catalog.completeness.caveats.join("; ")}. Add \`e2e.test --list-images\` output of your conformance image as imagesListFiles to be sure.`,
      );
    }
    const { destination, password } = mirrorDestination(config, registry);
    const sourceRegistry =
      config.images.source.kind === "registry" ? config.images.source.access.host : undefined;
    const mirror = new ImageMirror(
      "images",
      {
        images: imageSet.images.map((image) => image.canonical),
        source: config.images.source,
        destination,
        mirrorPassword: password,
        sourcePasswords:
          sourceRegistry && config.images.sourcePassword
            ? { [sourceRegistry]: config.images.sourcePassword }
            : undefined,
        upstreamPrefixes: config.mirror.upstreamPrefixes,
        platform: config.images.platform,
        retries: config.mirror.retries,
        deleteOnDestroy: config.mirror.deleteOnDestroy,
      },
      { dependsOn: registry ? [registry] : [] },
    );
    outputs.imageCount = mirror.imageCount;
    outputs.imageMapping = mirror.mapping;
    outputs.imageLock = mirror.lock;
    outputs.repoList = mirror.repoList;
    outputs.upstreamRegistries = mirror.upstreamRegistries;
    outputs.unmirrorableImages = imageSet.unmirrorable.map((image) => ({
      image: image.canonical,
      reason: image.reason,
    }));
    if (imageSet.catalog) {
      const { kubernetesVersion, provenance, completeness } = imageSet.catalog;
      outputs.imageCatalog = {
        kubernetesVersion,
        kind: provenance.kind,
        source: provenance.source,
        note: provenance.note,
        complete: completeness.complete,
        caveats: [...completeness.caveats],
      };
    }
  }
  return outputs;
}
