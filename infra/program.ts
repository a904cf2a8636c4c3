import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ConformanceArgsError } from "../core/conformance";
import { ConformanceRun } from "../components/conformance";
import { ImageMirror, type ImageDestination, type LockDocument } from "../components/mirror";
import {
  NodeRegistryArgsError,
  NodeRegistryConfig,
  type NodeRegistryConfigArgs,
  type NodeReport,
} from "../components/nodes";
import { OpenShiftMirrorConfig } from "../components/nodes/openshift";
import { NodeImagePreload, type NodeImagePreloadArgs } from "../components/nodes/preload";
import { ArchiveError, lockFileName, readLock } from "../components/mirror/actions/archive";
import { openshiftFlavour, type RuntimeFlavour } from "../core/nodes";
import { linuxPlatformOf } from "../core/images/platforms";
import {
  RegistryArgsError,
  RegistryContainer,
  type RegistryContainerArgs,
} from "../components/registry";
import { renderRepoList } from "../core/images/repo-list";
import {
  ConfigError,
  configKeyForArg,
  configKeyForRegistryArg,
  conformanceArgConfigKeys,
  nodeArgConfigKeys,
  type StackConfig,
} from "./config";
import { archiveSizeAtPreview, type ArchiveSizeSummary } from "./archive-size";
import { fallbackWarning, type StackE2eImages } from "./e2e-images";
import { imageSetForStack, upstreamsForStack, withImageConfigKeys } from "./images";

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
  /** Bytes not copied because platforms were chosen (imagesPlatform/imagesPlatforms). */
  imagesPlatformBytesSaved?: pulumi.Output<number>;
  repoList?: pulumi.Output<string | undefined>;
  upstreamRegistries?: pulumi.Output<string[]>;
  unmirrorableImages?: { image: string; reason: string }[];
  nodeFiles?: pulumi.Output<NodeReport[]>;
  archiveSize?: pulumi.Output<ArchiveSizeSummary>;
  openshiftMirrorObjects?: pulumi.Output<string[]>;
  openshiftMirrorWarnings?: pulumi.Output<string[]>;
  /** manual:// nodes: where each one's script was written, by node name. */
  nodeScripts?: pulumi.Output<Record<string, string>>;
  conformanceVerdict?: pulumi.Output<string>;
  conformancePassed?: pulumi.Output<number>;
  conformanceFailed?: pulumi.Output<number>;
  conformanceSkipped?: pulumi.Output<number>;
  conformanceTotal?: pulumi.Output<number>;
  conformanceFailedTests?: pulumi.Output<string[]>;
  conformanceFailures?: pulumi.Output<Array<{ name: string; state: string; message: string }>>;
  conformanceResultsDirectory?: pulumi.Output<string>;
  conformanceImage?: pulumi.Output<string>;
  /** The suite's image list as read from the conformance image's own e2e.test. */
  e2eImageList?: { conformanceImage: string; digest: string; count: number };
  imageCatalog?: {
    kubernetesVersion: string;
    kind: string;
    source: string;
    note: string;
    complete: boolean;
    caveats: string[];
  };
}

/**
 * Re-raises a component's argument error as a config error naming the stack config key.
 * `nodeKeys` overrides entries of the NodeRegistryConfig table for this stack.
 */
function withRegistryConfigKeys<T>(
  project: string,
  declare: () => T,
  nodeKeys: Record<string, string> = {},
): T {
  try {
    return declare();
  } catch (error) {
    if (error instanceof RegistryArgsError) {
      const key = configKeyForRegistryArg(project, error.arg);
      if (key) throw new ConfigError(key, undefined, error.message);
    }
    if (error instanceof NodeRegistryArgsError) {
      const key = configKeyForArg(project, { ...nodeArgConfigKeys, ...nodeKeys }, error.arg);
      if (key) throw new ConfigError(key, undefined, error.message);
    }
    if (error instanceof ConformanceArgsError) {
      const key = configKeyForArg(project, conformanceArgConfigKeys, error.arg);
      if (key) throw new ConfigError(key, undefined, error.message);
    }
    throw error;
  }
}

/** The registry container's arguments for this stack. */
export function registryContainerArgs(config: StackConfig): RegistryContainerArgs {
  return {
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
  };
}

function declareRegistry(config: StackConfig, project: string): RegistryContainer {
  return withRegistryConfigKeys(
    project,
    () => new RegistryContainer("registry", registryContainerArgs(config)),
  );
}

/** Where ImageMirror writes, and with which password: the registry container, another registry, or an archive. */
function mirrorDestination(
  config: StackConfig,
  registry: RegistryContainer | undefined,
): { destination: ImageDestination; password?: pulumi.Input<string> } {
  return mirrorDestinationFor(config, registry?.settings);
}

function mirrorDestinationFor(
  config: StackConfig,
  registrySettings: RegistryContainer["settings"] | undefined,
): { destination: ImageDestination; password?: pulumi.Input<string> } {
  if (config.images.destination === "archive") {
    return { destination: { kind: "archive", directory: config.images.archiveDirectory! } };
  }
  const tls = {
    caFile: config.mirror.caFile,
    insecureSkipVerify: config.mirror.insecure || undefined,
  };
  if (registrySettings) {
    const settings = registrySettings;
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

/** Declares the environment for one stack: registry -> mirrored images -> conformance run. */
export function defineProgram(
  config: StackConfig,
  project = pulumi.getProject(),
  e2eImages: StackE2eImages = { kind: "off" },
): ProgramOutputs {
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

  let mirror: ImageMirror | undefined;
  if (config.images.enabled) {
    const imageSet = imageSetForStack(config, project, undefined, e2eImages);
    for (const image of imageSet.unmirrorable) {
      pulumi.log.info(`not mirrored: ${image.canonical} (${image.reason})`);
    }
    if (imageSet.catalog && e2eImages.kind === "fallback") {
      pulumi.log.warn(fallbackWarning(e2eImages, imageSet.catalog.kubernetesVersion));
    }
    if (e2eImages.kind === "derived") {
      outputs.e2eImageList = {
        conformanceImage: e2eImages.conformanceImage,
        digest: e2eImages.digest,
        count: e2eImages.images.length,
      };
    }
    const { destination, password } = mirrorDestination(config, registry);
    const sourceRegistry =
      config.images.source.kind === "registry" ? config.images.source.access.host : undefined;
    mirror = withImageConfigKeys(
      config,
      project,
      () =>
        new ImageMirror(
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
            platforms: config.images.platforms,
            retries: config.mirror.retries,
            deleteOnDestroy: config.mirror.deleteOnDestroy,
          },
          { dependsOn: registry ? [registry] : [] },
        ),
    );
    if (config.images.destination === "archive" && config.images.source.kind !== "archive") {
      outputs.archiveSize = archiveSizeAtPreview(
        config,
        imageSet.images.map((image) => image.canonical),
      );
    }
    outputs.imageCount = mirror.imageCount;
    outputs.imageMapping = mirror.mapping;
    outputs.imageLock = mirror.lock;
    if (config.images.platform !== undefined || config.images.platforms.length > 0) {
      // Known at preview: what choosing platforms leaves out.
      outputs.imagesPlatformBytesSaved = mirror.platformBytesSaved;
    }
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

  const nodeResources: pulumi.Resource[] = [];
  // Preloaded from the archive, a stack needs no mirror at all; its nodes then get no registry
  // configuration (there is nothing to point them at), only the images.
  const hasMirror = config.registry.enabled || config.mirror.external !== undefined;
  const preloadFromArchive = config.nodes.preload && config.nodes.preloadSource === "archive";
  if (
    config.nodes.list.some((node) => node.runtime !== openshiftFlavour) &&
    (hasMirror || !preloadFromArchive)
  ) {
    const nodes = declareNodes(config, project, registry, mirror, e2eImages);
    outputs.nodeFiles = nodes.nodes;
    if (config.nodes.list.some((node) => node.access.kind === "manual")) {
      outputs.nodeScripts = nodes.manualScripts;
    }
    nodeResources.push(nodes);
  }
  if (preloadFromArchive) {
    nodeResources.push(declareArchivePreload(config, project, e2eImages));
  } else if (config.nodes.preload && mirror) {
    nodeResources.push(declarePreload(config, registry, mirror));
  }
  if (config.nodes.list.some((node) => node.runtime === openshiftFlavour)) {
    const openshift = declareOpenShiftMirror(config, project, registry, mirror);
    outputs.openshiftMirrorObjects = openshift.objects;
    outputs.openshiftMirrorWarnings = openshift.warnings;
    nodeResources.push(openshift);
  }

  if (config.conformance.enabled) {
    const run = declareConformanceRun(config, project, registry, mirror, nodeResources, e2eImages);
    outputs.conformanceVerdict = run.verdict;
    outputs.conformancePassed = run.passed;
    outputs.conformanceFailed = run.failed;
    outputs.conformanceSkipped = run.skipped;
    outputs.conformanceTotal = run.total;
    outputs.conformanceFailedTests = run.failedTests;
    outputs.conformanceFailures = run.failures;
    outputs.conformanceResultsDirectory = run.resultsDirectory;
    outputs.conformanceImage = run.conformanceImage;
  }
  return outputs;
}

/**
 * What NodeRegistryConfig is given for this stack: the nodes, and the mirror exactly as the
 * run names it (its node endpoint, scheme, CA, and the credentials every node pulls with).
 * Pure but for reading the CA file; the CLI renders node files from the same arguments.
 */
export function nodeRegistryArgs(
  config: StackConfig,
  project: string,
  registrySettings: RegistryContainer["settings"] | undefined,
  e2eImages: StackE2eImages = { kind: "off" },
): NodeRegistryConfigArgs {
  const key = (name: string) => `${project}:${name}`;
  const { destination, password } = mirrorDestinationFor(
    { ...config, images: { ...config.images, destination: "registry" } },
    registrySettings,
  );
  if (destination.kind !== "registry") throw new Error("unreachable: nodes need a registry mirror");
  // OpenShift nodes get cluster objects instead (declareOpenShiftMirror).
  const nodeList = config.nodes.list.filter((node) => node.runtime !== openshiftFlavour);
  const needsKey = nodeList.some((node) => node.access.kind === "ssh");
  if (needsKey && !config.nodes.sshPrivateKey) {
    throw new ConfigError(
      key("nodesSshPrivateKey"),
      undefined,
      "required for ssh:// nodes (pulumi config set --secret nodesSshPrivateKey < key)",
    );
  }
  let caCertificate: string | undefined;
  if (config.nodes.caFile) {
    try {
      caCertificate = readFileSync(config.nodes.caFile, "utf8");
    } catch (error) {
      throw new ConfigError(
        config.nodes.caFileKey ?? key("nodesMirrorCaFile"),
        config.nodes.caFile,
        `a readable PEM file (${(error as Error).message})`,
      );
    }
  }
  // hosts nodes check the mirror's own certificate covers every spoofed name (preview).
  const hostsNodes = nodeList.some((node) => node.runtime === "hosts");
  const certificateFile = config.registry.tls?.certificateFile;
  let certificate: string | undefined;
  if (hostsNodes && certificateFile) {
    try {
      certificate = readFileSync(certificateFile, "utf8");
    } catch (error) {
      throw new ConfigError(
        key("registryTlsCertificateFile"),
        certificateFile,
        `a readable PEM file (${(error as Error).message})`,
      );
    }
  }
  return {
    nodes: nodeList.map((node) => ({
      name: node.name,
      address: node.address,
      // Checked against the known flavours by NodeRegistryConfig (the error names `nodes`).
      runtime: node.runtime as RuntimeFlavour,
      access:
        node.access.kind === "ssh"
          ? { ...node.access, ...node.hostKeyCheck, privateKey: config.nodes.sshPrivateKey! }
          : node.access,
    })),
    mirror: {
      endpoint: destination.nodeEndpoint,
      scheme: destination.access.scheme,
      caCertificate,
      certificate,
      skipVerify: destination.access.insecureSkipVerify,
      // Every node pulls the run's images with the mirror's credentials: a flavour that cannot
      // carry them is refused at preview (naming the key below), never a 401 during the run.
      auth: destination.access.username
        ? { username: destination.access.username, password }
        : undefined,
    },
    upstreams: upstreamsForStack(config, project, destination.nodeEndpoint, e2eImages),
    forbidFallback: config.nodes.forbidFallback,
    k3s: config.nodes.k3s,
  };
}

/** Each node's runtime told to pull through the mirror, once the images are in. */
function declareNodes(
  config: StackConfig,
  project: string,
  registry: RegistryContainer | undefined,
  mirror: ImageMirror | undefined,
  e2eImages: StackE2eImages,
): NodeRegistryConfig {
  return withRegistryConfigKeys(
    project,
    () =>
      new NodeRegistryConfig(
        "nodes",
        nodeRegistryArgs(config, project, registry?.settings, e2eImages),
        { dependsOn: mirror ? [mirror] : registry ? [registry] : [] },
      ),
    // The mirror's user name comes from registryUsername, or mirrorUsername for another registry.
    config.mirror.external ? { "mirror.auth": "mirrorUsername" } : {},
  );
}

/** The preload's nodes: every node Pulumi reaches, with its SSH key and host key check. */
function preloadNodes(config: StackConfig): NodeImagePreloadArgs["nodes"] {
  // manual:// nodes are refused with nodesPreload by the config (Pulumi cannot reach them).
  return config.nodes.list.flatMap((node) =>
    node.access.kind === "manual"
      ? []
      : [
          {
            name: node.name,
            address: node.address,
            runtime: node.runtime,
            access:
              node.access.kind === "ssh"
                ? {
                    ...node.access,
                    ...node.hostKeyCheck,
                    privateKey: config.nodes.sshPrivateKey!,
                  }
                : node.access,
          },
        ],
  );
}

/**
 * Every image of the stack's set imported into each node's store from the archive: one tarball
 * built here, copied to each node. No mirror, registry or image copy is involved.
 */
function declareArchivePreload(
  config: StackConfig,
  project: string,
  e2eImages: StackE2eImages,
): NodeImagePreload {
  const key = (name: string) => `${project}:${name}`;
  const directory = config.images.archiveDirectory!;
  const imageSet = imageSetForStack(config, project, undefined, e2eImages);
  let lock: LockDocument;
  try {
    lock = readLock(directory);
  } catch (error) {
    if (error instanceof ArchiveError) {
      throw new ConfigError(key("imagesArchiveDirectory"), directory, error.message);
    }
    throw error;
  }
  const locked = new Map(lock.images.map((image) => [image.source, image.digest]));
  const images = imageSet.images.map((image) => {
    const digest = locked.get(image.canonical);
    if (digest === undefined) {
      throw new ConfigError(
        key("imagesArchiveDirectory"),
        directory,
        `an archive holding every image to preload; ${image.canonical} is not in its ${lockFileName} (export it on the connected side, or remove it from the image set)`,
      );
    }
    return { source: image.canonical, digest };
  });
  if (
    config.nodes.sshPrivateKey === undefined &&
    config.nodes.list.some((node) => node.access.kind === "ssh")
  ) {
    throw new ConfigError(
      key("nodesSshPrivateKey"),
      undefined,
      "required for ssh:// nodes (pulumi config set --secret nodesSshPrivateKey < key)",
    );
  }
  const preload = withRegistryConfigKeys(
    project,
    () =>
      new NodeImagePreload("preload", {
        nodes: preloadNodes(config),
        archive: {
          directory,
          images,
          // Default: this machine's platform, as for reading the conformance image's own list.
          platform: config.images.platform ?? linuxPlatformOf(process.arch),
          // Per stack: two stacks never remove each other's tarball. Relative to the program's
          // working directory, where the engine also runs the providers: state holds no path
          // into the project, which can move.
          tarballDirectory: path.join(".airgap-conformance", "preload", pulumi.getStack()),
        },
      }),
  );
  preload.skipped!.apply((skipped) => {
    for (const entry of skipped) pulumi.log.warn(`not preloaded: ${entry.image} (${entry.reason})`);
  });
  return preload;
}

/** Every mirrored image put into each node's image store, once the images are in the mirror. */
function declarePreload(
  config: StackConfig,
  registry: RegistryContainer | undefined,
  mirror: ImageMirror,
): NodeImagePreload {
  const { destination } = mirrorDestination(
    { ...config, images: { ...config.images, destination: "registry" } },
    registry,
  );
  if (destination.kind !== "registry") {
    throw new Error("unreachable: preload needs a registry mirror");
  }
  return new NodeImagePreload(
    "preload",
    {
      nodes: preloadNodes(config),
      mirror: { endpoint: destination.nodeEndpoint, scheme: destination.access.scheme },
      images: mirror.mapping,
    },
    { dependsOn: [mirror] },
  );
}

/**
 * An OpenShift cluster's nodes pull through the mirror by cluster objects the machine-config
 * operator rolls out; no node file is touched. Declared once the images are in.
 */
function declareOpenShiftMirror(
  config: StackConfig,
  project: string,
  registry: RegistryContainer | undefined,
  mirror: ImageMirror | undefined,
): OpenShiftMirrorConfig {
  const { destination } = mirrorDestination(
    { ...config, images: { ...config.images, destination: "registry" } },
    registry,
  );
  if (destination.kind !== "registry") throw new Error("unreachable: nodes need a registry mirror");
  return withRegistryConfigKeys(
    project,
    () =>
      new OpenShiftMirrorConfig(
        "openshift",
        {
          kubeconfig: config.cluster.kubeconfig,
          context: config.cluster.context,
          mirror: { endpoint: destination.nodeEndpoint, scheme: destination.access.scheme },
          upstreams: upstreamsForStack(config, project, destination.nodeEndpoint),
          forbidFallback: config.nodes.forbidFallback,
          openshiftVersion: config.nodes.openshiftVersion,
        },
        { dependsOn: mirror ? [mirror] : registry ? [registry] : [] },
      ),
  );
}

/** The run, pulling from the mirror; it starts only after the images are in and nodes are configured. */
function declareConformanceRun(
  config: StackConfig,
  project: string,
  registry: RegistryContainer | undefined,
  mirror: ImageMirror | undefined,
  nodes: pulumi.Resource[],
  e2eImages: StackE2eImages,
): ConformanceRun {
  const key = (name: string) => `${project}:${name}`;
  if (mirror && config.images.destination === "archive") {
    throw new ConfigError(
      key("conformanceEnabled"),
      "true",
      "false on an export stack (imagesDestination archive): the suite runs on the air-gapped side",
    );
  }
  const { destination, password } = mirrorDestination(
    { ...config, images: { ...config.images, destination: "registry" } },
    registry,
  );
  if (destination.kind !== "registry")
    throw new Error("unreachable: the run needs a registry mirror");
  const upstreamPrefixes = config.mirror.upstreamPrefixes;
  return withRegistryConfigKeys(
    project,
    () =>
      new ConformanceRun(
        "conformance",
        {
          kubeconfig: config.cluster.kubeconfig,
          context: config.cluster.context,
          kubernetesVersion: config.kubernetesVersion,
          mirror: {
            endpoint: destination.nodeEndpoint,
            upstreamPrefixes,
            access: destination.access,
            username: destination.access.username,
            password,
          },
          repoList:
            mirror?.repoList.apply((text) => text ?? "") ??
            renderRepoList({ mirrorHost: destination.nodeEndpoint, upstreamPrefixes }),
          imageDigests: mirror?.lock.apply((lock) =>
            Object.fromEntries(lock.images.map((image) => [image.source, image.digest])),
          ),
          namespace: config.conformance.namespace,
          runId: config.conformance.runId,
          focus: config.conformance.focus,
          skip: config.conformance.skip,
          parallelism: config.conformance.parallelism,
          dryRun: config.conformance.dryRun,
          extraArgs: config.conformance.extraArgs,
          ginkgoArgs: config.conformance.ginkgoArgs,
          conformanceImage: config.images.conformanceImage,
          resultsImage: config.images.resultsImage,
          extraImages: config.images.extra,
          imageListFiles: config.images.listFiles,
          e2eImages: e2eImages.kind === "derived" ? [...e2eImages.images] : undefined,
          resultsDirectory: config.conformance.resultsDirectory,
          failOnTestFailures: config.conformance.failOnTestFailures,
          failOnNoTests: config.conformance.failOnNoTests,
          timeoutMinutes: config.conformance.timeoutMinutes,
          startupTimeoutMinutes: config.conformance.startupTimeoutMinutes,
        },
        {
          dependsOn: [...(mirror ? [mirror] : []), ...(registry ? [registry] : []), ...nodes],
        },
      ),
  );
}
