/**
 * Offline CLI over the same core the program uses: no Pulumi engine, no cluster, no network.
 *
 *   npm run cli -- images  --stack dev            the images the stack mirrors, and why
 *   npm run cli -- mapping --stack dev            source -> mirror reference
 *   npm run cli -- render  --stack dev --out DIR  repo list, mapping and lists for review
 *   npm run cli -- images  --conformance-image docker://registry.k8s.io/conformance:v1.33.4
 *                          the image set that conformance image's own e2e.test lists
 *   npm run cli -- --help                         usage; `<command> --help` for one command
 *
 * `--stack NAME` reads Pulumi.NAME.yaml next to Pulumi.yaml; `--file PATH` reads any stack file.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import {
  joinArchive,
  parseByteSize,
  partsManifestName,
  splitArchive,
} from "../components/mirror/actions/archive-parts";
import {
  applyDifferentialArchive,
  writeDifferentialArchive,
} from "../components/mirror/actions/archive-diff";
import { applyDifferentialToRegistry } from "../components/mirror/actions/archive-diff-registry";
import type { RegistryAccess } from "../components/mirror/actions/registry-client";
import {
  humanBytes,
  measureArchive,
  renderSizeReport,
} from "../components/mirror/actions/archive-size";
import { measureRegistryImages } from "../components/mirror/actions/registry-size";
import { planImageCopies } from "../components/mirror/plan";
import { registryImagesForStack } from "../infra/archive-size";
import { defaultE2eImagesCache, deriveE2eImages } from "../components/mirror/actions/e2e-images";
import { parseTransportReference } from "../core/images/e2e-images";
import { RegistryArgsError, resolveRegistrySettings } from "../components/registry/spec";
import { renderRepoList } from "../core/images/repo-list";
import { MirrorMappingError, mirrorPathPrefixFor } from "../core/images/mapping";
import { DOCKER_HUB_REGISTRY } from "../core/images/reference";
import {
  basicAuthorization,
  nodeScriptFileName,
  openshiftFlavour,
  planNodeFiles,
  planOpenShiftMirror,
  renderNodeScript,
  renderOpenShiftManifests,
  type RuntimeFlavour,
} from "../core/nodes";
import {
  buildStackConfig,
  ConfigError,
  configKeyForRegistryArg,
  readTypedConfig,
  type NodeEntry,
  type StackConfig,
} from "../infra/config";
import { imageSetForStack, upstreamsForStack, withImageConfigKeys } from "../infra/images";
import { loadProjectSchema, projectFile } from "../infra/schema";
import { readStackFile } from "../infra/stack-file";

/** Where archive-apply --onto-registry reads the mirror's password (never from argv). */
export const mirrorPasswordVariable = "AIRGAP_MIRROR_PASSWORD";

/** What each subcommand does and prints; `airgap <command> --help` shows one. */
export const commandHelp: Record<string, string> = {
  images: `airgap images (--stack NAME | --file PATH) [--json]
airgap images --conformance-image (docker://IMAGE | oci:DIR:TAG) [--insecure] [--platform OS/ARCH] [--cache-dir DIR]

Lists every image the stack mirrors, one per line: the canonical reference, a tab, and why it is
in the set (catalog <minor>, conformance, results, config imagesExtra[i], list file <file>:<line>).
A first "# catalog" line says which image list was used and whether it is known to be complete;
"# not mirrored:" lines name images the suite uses that cannot be mirrored, and why.
--json prints the whole image set as JSON.

With --conformance-image: the images that conformance image's own e2e.test lists, one per line
(a summary line with the image's digest on stderr). Reads the image with skopeo and runs its
e2e.test here (this one needs the image's registry, or an OCI layout); cached by digest.`,
  mapping: `airgap mapping (--stack NAME | --file PATH) [--json]

Prints "<source> -> <mirror reference>" per image: the name nodes and the run pod use in the
mirror. On an export stack (imagesDestination archive) the target is the image's name in the
archive ("oci:<directory>:<source>"). --json prints the same as one JSON object.`,
  render: `airgap render (--stack NAME | --file PATH) --out DIR

Writes, for review, what the program would produce, and prints the paths it wrote:
  images.txt         every image mirrored
  mapping.txt        "<source> <target>" per image
  unmirrorable.txt   images that cannot be mirrored, with the reason
  repo-list.yaml     the KUBE_TEST_REPO_LIST document (stacks with a mirror registry)
  nodes/<node>/...   the files each node gets (whole files; containerd config.toml as the table
                     added per config version; /etc/hosts as the block inserted); none for
                     openshift nodes, whose files the cluster manages
  openshift/mirror-objects.yaml
                     the ImageDigestMirrorSet and ImageTagMirrorSet (ImageContentSourcePolicy
                     before OpenShift 4.13) for \`oc apply -f\` (stacks with openshift nodes)
Nothing is written unless everything could be rendered. Passwords are never rendered.`,
  size: `airgap size (--stack NAME | --file PATH) [--json]

The size of the stack's image set before anything is written: per image, per platform, the total,
and the total with layers shared between images counted once. Reads only manifests and configs
from the source registries (or the archive a stack imports); exits 1 if an image could not be
measured, naming it. Signatures and attestations found are listed as carried or dropped.`,
  "archive-size": `airgap archive-size ARCHIVE_DIR [--json]

The same size report for an archive already written (an export stack's imagesArchiveDirectory).`,
  "archive-split": `airgap archive-split ARCHIVE_DIR --max-part-size SIZE --out PARTS_DIR

Prints the archive's size report, then cuts the archive into parts of at most SIZE bytes (a
number with an optional K, M, G or T suffix, powers of 1024; e.g. 4095M for FAT32) and writes
a manifest with each part's checksum next to them.`,
  "archive-join": `airgap archive-join PARTS_DIR --out ARCHIVE_DIR

Reassembles parts written by archive-split; every part's checksum and every image in the
archive's lock are checked before the archive is usable.`,
  "archive-diff": `airgap archive-diff ARCHIVE_DIR --against OTHER_SIDE_LOCK --out DIFF_DIR

Writes only what the other side lacks: the images and blobs of ARCHIVE_DIR that are not in
OTHER_SIDE_LOCK (the images.lock.json of the archive or mirror across the gap).`,
  "archive-apply": `airgap archive-apply DIFF_DIR --onto ARCHIVE_DIR
airgap archive-apply DIFF_DIR --onto-registry (https|http)://HOST[:PORT] [--ca-file PEM]
                     [--insecure] [--username USER [--password-file FILE]]
                     [--upstream-prefix REGISTRY=PREFIX ...]

Applies a differential archive on top of the existing archive it was made against; every new
image is checked.

With --onto-registry: applies it straight onto the mirror registry that holds the images of the
lock it was made against. Carried blobs are pushed; blobs it left out must be in the mirror
(in the image's repository, or mounted from the repository of an image the mirror keeps),
otherwise nothing is written. Manifests are pushed by digest and the tags written last; then
every carried image is checked to be served at its lock digest.
  https://...       TLS verified against the system CAs, or --ca-file PEM
  --insecure        https without verifying the certificate
  http://...        a plain-HTTP registry
  --username USER   the password from the environment variable ${mirrorPasswordVariable}
                    or --password-file FILE (never on the command line)
  --upstream-prefix the mirror's path prefix for an upstream registry, as the stack's
                    upstreamPrefixes (repeat per registry)`,
};

const usage = `usage: airgap <command> (--stack NAME | --file PATH) [--out DIR] [--json]
       airgap archive-<command> DIR [options]

Offline: reads a stack file with the program's own config code; needs no Pulumi, no cluster
and no network.

commands:
  images    the images the stack mirrors, and why each is there (or, with
            --conformance-image, the list that image's e2e.test prints)
  mapping   source -> mirror (or archive) reference per image
  render    the repo list, mapping, image lists, node files and OpenShift mirror objects,
            written to --out DIR
  size      the size of the image set (per image, per platform, total, deduplicated), before
            anything is written
  archive-size   the size report of an archive
  archive-split  cut an archive into parts of at most --max-part-size, with checksums
  archive-join   reassemble and verify parts
  archive-diff   write only what the other side's images.lock.json lacks
  archive-apply  apply a differential archive onto an existing archive or mirror registry

options:
  --stack NAME   read Pulumi.NAME.yaml next to Pulumi.yaml
  --file PATH    read any stack file
  --out DIR      where render writes
  --json         machine-readable output (images, mapping, size, archive-size)
  -h, --help     this help; "airgap <command> --help" for one command`;

/** The commands runCli answers itself (the others read registries or archives). */
const stackCommands = ["images", "mapping", "render"];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The stack's config as the program would read it (secrets are not needed offline). */
export function loadStackFileConfig(file: string): { config: StackConfig; project: string } {
  const schema = loadProjectSchema();
  const { config: raw } = readStackFile(file);
  return {
    config: buildStackConfig(readTypedConfig(raw, schema), schema.project),
    project: schema.project,
  };
}

/** host:port nodes use for the mirror: the existing registry, or the container's endpoint. */
function mirrorHostFor(config: StackConfig, project: string): string {
  if (config.mirror.external) return config.mirror.external.endpoint;
  try {
    return resolveRegistrySettings({
      containerName: config.registry.containerName,
      hostPort: config.registry.hostPort,
      bindAddress: config.registry.bindAddress,
      advertisedEndpoint: config.registry.advertisedEndpoint,
      networks: config.registry.networks,
    }).endpoint;
  } catch (error) {
    const key = error instanceof RegistryArgsError && configKeyForRegistryArg(project, error.arg);
    if (key) throw new ConfigError(key, undefined, error.message);
    throw error;
  }
}

/** Whether the stack writes an archive (export) rather than a mirror registry. */
function isExport(config: StackConfig): boolean {
  return config.images.destination === "archive";
}

function mappingLines(config: StackConfig, project: string): { source: string; target: string }[] {
  const imageSet = imageSetForStack(config, project);
  const images = imageSet.images.map((image) => image.canonical);
  if (isExport(config)) {
    const directory = config.images.archiveDirectory!;
    return images.map((source) => ({ source, target: `oci:${directory}:${source}` }));
  }
  const mirrorHost = mirrorHostFor(config, project);
  const plan = withImageConfigKeys(config, project, () =>
    planImageCopies({
      images,
      // The archive is on the other side of the gap; the mapping does not depend on the source.
      source: config.images.source.kind === "archive" ? { kind: "upstream" } : config.images.source,
      destination: {
        kind: "registry",
        access: { host: mirrorHost, scheme: "https" },
        nodeEndpoint: mirrorHost,
      },
      upstreamPrefixes: config.mirror.upstreamPrefixes,
    }),
  );
  return plan.copies.map((copy) => ({ source: copy.source, target: copy.mirrorReference }));
}

/** Stands in for the mirror password while rendering; replaced before anything is written. */
const reviewPassword = "review-password-placeholder";

/**
 * What NodeRegistryConfig would write on a node, as files for review under nodes/<node>/...: whole
 * files as they will be, containerd's config.toml as the table that is added, /etc/hosts as the
 * block that is inserted. The mirror password is a Pulumi secret and is never rendered: where a
 * file carries credentials, it says which config key they come from. Also
 * nodes/<node>/node-script.sh, the exact script the node runs (`sh -s apply < node-script.sh`,
 * `sh -s delete < node-script.sh`), for nodes whose files carry no credentials; with
 * credentials, that script exists only where the password does (Pulumi writes it for
 * `manual://` nodes).
 */
function nodeFilesForReview(
  config: StackConfig,
  project: string,
  node: NodeEntry,
): { name: string; content: string }[] {
  const mirrorHost = mirrorHostFor(config, project);
  const scheme = config.mirror.external?.scheme ?? (config.registry.tls ? "https" : "http");
  let caCertificate: string | undefined;
  if (config.nodes.caFile) {
    try {
      caCertificate = readFileSync(config.nodes.caFile, "utf8");
    } catch (error) {
      throw new ConfigError(
        config.nodes.caFileKey ?? `${project}:nodesMirrorCaFile`,
        config.nodes.caFile,
        `a readable PEM file with the CA that signed the mirror's certificate (${(error as Error).message})`,
      );
    }
  }
  const certificateFile = config.registry.tls?.certificateFile;
  const username = config.mirror.external
    ? config.mirror.external.username
    : config.registry.auth?.username;
  const passwordKey = config.mirror.external ? "mirrorPassword" : "registryPassword";
  const plan = planNodeFiles({
    runtime: node.runtime as RuntimeFlavour,
    mirror: {
      endpoint: mirrorHost,
      scheme,
      caCertificate,
      skipVerify: config.mirror.insecure || undefined,
      certificate:
        node.runtime === "hosts" && certificateFile
          ? readFileSync(certificateFile, "utf8")
          : undefined,
      auth: username ? { username, password: reviewPassword } : undefined,
    },
    upstreams: upstreamsForStack(config, project, mirrorHost),
    options: { forbidFallback: config.nodes.forbidFallback, ...config.nodes.k3s },
  });
  const withoutPassword = (content: string): string =>
    username
      ? content
          .replaceAll(
            basicAuthorization({ username, password: reviewPassword }),
            `Basic <base64 of ${username}:<${project}:${passwordKey}>>`,
          )
          .replaceAll(reviewPassword, `<${project}:${passwordKey}>`)
      : content;
  const base = path.join("nodes", node.name);
  const files = plan.files.flatMap((file) => {
    if (file.kind === "containerd-config") {
      return Object.entries(file.fragments).map(([version, fragment]) => ({
        name: path.join(base, `${file.path}.add-if-version-${version}`),
        content: fragment,
      }));
    }
    if (file.kind === "block")
      return [{ name: path.join(base, `${file.path}.block`), content: file.block }];
    return [{ name: path.join(base, file.path), content: withoutPassword(file.content) }];
  });
  if (plan.secret) return files;
  const script = renderNodeScript(plan, { nodeName: node.name });
  return [...files, { name: path.join(base, nodeScriptFileName), content: script }];
}

/** Every file `render` writes, computed before anything is written. */
function renderFiles(config: StackConfig, project: string): { name: string; content: string }[] {
  const imageSet = imageSetForStack(config, project);
  const mapping = mappingLines(config, project);
  const files = [
    {
      name: "images.txt",
      content: imageSet.images.map((image) => image.canonical).join("\n") + "\n",
    },
    {
      name: "mapping.txt",
      content: mapping.map((m) => `${m.source} ${m.target}`).join("\n") + "\n",
    },
    {
      name: "unmirrorable.txt",
      content:
        imageSet.unmirrorable.map((image) => `${image.canonical}\t${image.reason}`).join("\n") +
        "\n",
    },
  ];
  if (!isExport(config)) {
    files.push({
      name: "repo-list.yaml",
      content: renderRepoList({
        mirrorHost: mirrorHostFor(config, project),
        upstreamPrefixes: config.mirror.upstreamPrefixes,
      }),
    });
    for (const node of config.nodes.list) {
      // The cluster manages an openshift node's files; it gets the mirror objects instead.
      if (node.runtime === openshiftFlavour) continue;
      files.push(...nodeFilesForReview(config, project, node));
    }
    if (config.nodes.list.some((node) => node.runtime === openshiftFlavour)) {
      files.push({
        name: "openshift/mirror-objects.yaml",
        content: openshiftManifests(config, project),
      });
    }
  }
  return files;
}

function imagesText(imageSet: ReturnType<typeof imageSetForStack>): string {
  const lines = imageSet.images.map((image) => `${image.canonical}\t${image.origins.join(", ")}`);
  const notes = imageSet.unmirrorable.map(
    (image) => `# not mirrored: ${image.canonical} (${image.reason})`,
  );
  const catalog = imageSet.catalog
    ? [
        `# catalog ${imageSet.catalog.kubernetesVersion}: ${imageSet.catalog.provenance.kind}, ${imageSet.catalog.completeness.complete ? "complete" : "not known to be complete"} (${imageSet.catalog.provenance.source})`,
      ]
    : [];
  return [...catalog, ...lines, ...notes].join("\n") + "\n";
}

/** The OpenShift cluster objects the program declares, as one file for `oc apply -f`. */
function openshiftManifests(config: StackConfig, project: string): string {
  const mirrorHost = mirrorHostFor(config, project);
  return renderOpenShiftManifests(
    planOpenShiftMirror({
      endpoint: mirrorHost,
      scheme: config.mirror.external?.scheme ?? (config.registry.tls ? "https" : "http"),
      upstreams: upstreamsForStack(config, project, mirrorHost),
      forbidFallback: config.nodes.forbidFallback,
      openshiftVersion: config.nodes.openshiftVersion,
    }),
  );
}

/** Runs one CLI invocation and returns what it would print (pure but for reading/writing files). */
export function runCli(argv: string[]): CliResult {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        stack: { type: "string" },
        file: { type: "string" },
        out: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${usage}\n` };
  }
  const [command, ...extra] = parsed.positionals;
  const { stack, file, out, json, help } = parsed.values;
  if (help || command === "help") {
    const topic = command === "help" ? extra[0] : command;
    if (topic === undefined) return { code: 0, stdout: `${usage}\n`, stderr: "" };
    if (commandHelp[topic]) return { code: 0, stdout: `${commandHelp[topic]}\n`, stderr: "" };
    return { code: 2, stdout: "", stderr: `unknown command '${topic}'\n${usage}\n` };
  }
  if (!command) return { code: 2, stdout: "", stderr: `${usage}\n` };
  if (!commandHelp[command]) {
    return { code: 2, stdout: "", stderr: `unknown command '${command}'\n${usage}\n` };
  }
  if (!stackCommands.includes(command)) {
    // size and archive-* are asynchronous: runAirgap runs them.
    return { code: 2, stdout: "", stderr: `${command} runs through runAirgap\n` };
  }
  if (extra.length > 0) {
    return {
      code: 2,
      stdout: "",
      stderr: `unexpected argument '${extra[0]}'\n${commandHelp[command]}\n`,
    };
  }
  if (!stack && !file) {
    return {
      code: 2,
      stdout: "",
      stderr: `${command} needs --stack NAME or --file PATH\n${commandHelp[command]}\n`,
    };
  }
  if (command === "render" && !out) {
    return { code: 2, stdout: "", stderr: `render needs --out DIR\n${commandHelp.render}\n` };
  }
  const projectDir = path.dirname(projectFile);
  const stackFile = file ?? path.join(projectDir, `Pulumi.${stack}.yaml`);
  if (!existsSync(stackFile)) {
    const stacks = readdirSync(projectDir)
      .map((name) => /^Pulumi\.(.+)\.yaml$/.exec(name)?.[1])
      .filter((name): name is string => name !== undefined);
    return {
      code: 1,
      stdout: "",
      stderr: `no stack file ${stackFile} (stacks here: ${stacks.join(", ")})\n`,
    };
  }
  try {
    const { config, project } = loadStackFileConfig(stackFile);
    if (!config.images.enabled) {
      return {
        code: 1,
        stdout: "",
        stderr: `${stackFile}: config ${project}:imagesEnabled is false; this stack mirrors no images\n`,
      };
    }
    if (command === "images") {
      const imageSet = imageSetForStack(config, project);
      if (json) return { code: 0, stdout: `${JSON.stringify(imageSet, null, 2)}\n`, stderr: "" };
      return { code: 0, stdout: imagesText(imageSet), stderr: "" };
    }
    if (command === "mapping") {
      const mapping = mappingLines(config, project);
      const text = json
        ? JSON.stringify(Object.fromEntries(mapping.map((m) => [m.source, m.target])), null, 2)
        : mapping.map((m) => `${m.source} -> ${m.target}`).join("\n");
      return { code: 0, stdout: `${text}\n`, stderr: "" };
    }
    const files = renderFiles(config, project);
    for (const { name, content } of files) {
      mkdirSync(path.dirname(path.join(out!, name)), { recursive: true });
      writeFileSync(path.join(out!, name), content);
    }
    return {
      code: 0,
      stdout: `wrote ${files.map(({ name }) => path.join(out!, name)).join("\n      ")}\n`,
      stderr: "",
    };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { code: 1, stdout: "", stderr: `${stackFile}: ${message}\n` };
  }
}

/**
 * `images --conformance-image REF`: the image set the conformance image's own e2e.test lists,
 * normalised, one per line; nothing from a shipped list. Reads the image (skopeo) and runs
 * e2e.test on this machine; the list is cached by the image's digest.
 */
export async function runConformanceImageCli(argv: string[]): Promise<CliResult> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "conformance-image": { type: "string" },
        insecure: { type: "boolean" },
        platform: { type: "string" },
        "cache-dir": { type: "string" },
      },
    });
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${commandHelp.images}\n` };
  }
  const reference = parsed.values["conformance-image"];
  if (parsed.positionals.join(" ") !== "images" || reference === undefined) {
    return { code: 2, stdout: "", stderr: `${commandHelp.images}\n` };
  }
  try {
    const transport = parseTransportReference(reference);
    const derived = await deriveE2eImages(transport, {
      cacheDirectory: parsed.values["cache-dir"] ?? defaultE2eImagesCache(),
      platform: parsed.values.platform,
      access:
        transport.transport === "docker" && parsed.values.insecure
          ? { host: transport.reference.registry, scheme: "https", insecureSkipVerify: true }
          : undefined,
    });
    return {
      code: 0,
      stdout: `${derived.images.join("\n")}\n`,
      stderr: `# ${derived.images.length} images from e2e.test of ${reference} (${derived.digest}, ${derived.platform}${derived.cached ? ", cached" : ""})\n`,
    };
  } catch (error) {
    return { code: 1, stdout: "", stderr: `${(error as Error).message}\n` };
  }
}

/** A command-line argument the user got wrong: the message names it and says what is allowed. */
export class CliArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliArgumentError";
  }
}

export interface RegistryFlags {
  "onto-registry"?: string;
  "ca-file"?: string;
  insecure?: boolean;
  username?: string;
  "password-file"?: string;
  password?: string;
}

/**
 * How archive-apply reaches the mirror, from its flags and the environment: TLS verified unless
 * --insecure or an http:// URL says otherwise; the password only from the environment or a file.
 */
export function registryAccessFromFlags(
  flags: RegistryFlags,
  env: NodeJS.ProcessEnv,
): RegistryAccess {
  if (flags.password !== undefined) {
    throw new CliArgumentError(
      `--password is not accepted: every user of the machine can read a command line; give the password in ${mirrorPasswordVariable} or --password-file FILE`,
    );
  }
  const url = /^(https?):\/\/([^/?#@\s]+)\/?$/.exec(flags["onto-registry"] ?? "");
  if (!url) {
    throw new CliArgumentError(
      `--onto-registry '${flags["onto-registry"]}': give the mirror as https://HOST[:PORT] (TLS verified; --ca-file for a private CA, --insecure to skip verification) or http://HOST[:PORT] for a plain-HTTP registry`,
    );
  }
  const scheme = url[1] as "http" | "https";
  const host = url[2];
  if (scheme === "http" && (flags.insecure || flags["ca-file"])) {
    throw new CliArgumentError(
      `--onto-registry http://${host} is plain HTTP: --insecure and --ca-file apply to https:// only`,
    );
  }
  if (flags.insecure && flags["ca-file"]) {
    throw new CliArgumentError(
      "--insecure skips certificate verification and --ca-file verifies against a CA: give one",
    );
  }
  const caFile = flags["ca-file"];
  if (caFile !== undefined) {
    try {
      readFileSync(caFile);
    } catch (error) {
      throw new CliArgumentError(
        `--ca-file ${caFile}: a readable PEM file with the CA that signed the mirror's certificate (${(error as Error).message})`,
      );
    }
  }
  const access: RegistryAccess = {
    host,
    scheme,
    ...(caFile !== undefined ? { caFile } : {}),
    ...(flags.insecure ? { insecureSkipVerify: true } : {}),
  };
  const passwordFile = flags["password-file"];
  if (flags.username === undefined) {
    if (passwordFile !== undefined) {
      throw new CliArgumentError("--password-file needs --username USER");
    }
    return access;
  }
  let password = env[mirrorPasswordVariable];
  if (passwordFile !== undefined) {
    try {
      password = readFileSync(passwordFile, "utf8").split(/\r?\n/, 1)[0];
    } catch (error) {
      throw new CliArgumentError(
        `--password-file ${passwordFile}: a readable file whose first line is the password (${(error as Error).message})`,
      );
    }
  }
  if (!password) {
    throw new CliArgumentError(
      `--username ${flags.username} needs a password: set ${mirrorPasswordVariable} or give --password-file FILE`,
    );
  }
  return { ...access, username: flags.username, password };
}

/** --upstream-prefix REGISTRY=PREFIX values as the mapping's upstreamPrefixes. */
export function upstreamPrefixesFromFlags(values: readonly string[]): Record<string, string> {
  const prefixes: Record<string, string> = {};
  for (const value of values) {
    const match = /^([^=\s]+)=([^=\s]+)$/.exec(value);
    if (!match) {
      throw new CliArgumentError(
        `--upstream-prefix '${value}': give REGISTRY=PREFIX, e.g. docker.io=dockerhub`,
      );
    }
    prefixes[match[1]] = match[2];
  }
  try {
    // The mapping's own validation: the same prefixes a stack's upstreamPrefixes accepts.
    mirrorPathPrefixFor(DOCKER_HUB_REGISTRY, {
      mirrorHost: "mirror.invalid:5000",
      upstreamPrefixes: prefixes,
    });
  } catch (error) {
    if (error instanceof MirrorMappingError)
      throw new CliArgumentError(`--upstream-prefix: ${error.message}`);
    throw error;
  }
  return prefixes;
}

/**
 * The archive commands: the size report of an archive; cutting it into parts of at most a size
 * (the report is printed first, before any part is written); joining parts back with every
 * part and image checked.
 */
export async function runArchiveCli(
  argv: string[],
  print: (text: string) => void = (text) => process.stdout.write(text),
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliResult> {
  const help = commandHelp[argv[0] ?? ""] ?? usage;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: "string" },
        "max-part-size": { type: "string" },
        against: { type: "string" },
        onto: { type: "string" },
        "onto-registry": { type: "string" },
        "ca-file": { type: "string" },
        insecure: { type: "boolean" },
        username: { type: "string" },
        "password-file": { type: "string" },
        password: { type: "string" },
        "upstream-prefix": { type: "string", multiple: true },
        json: { type: "boolean" },
      },
    });
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${help}\n` };
  }
  const [command, directory] = parsed.positionals;
  const { out, json } = parsed.values;
  const maxPartSize = parsed.values["max-part-size"];
  const { against, onto } = parsed.values;
  const ontoRegistry = parsed.values["onto-registry"];
  const needsOut = ["archive-split", "archive-join", "archive-diff"].includes(command ?? "");
  if (
    !directory ||
    (needsOut && !out) ||
    (command === "archive-diff" && !against) ||
    (command === "archive-apply" && (onto === undefined) === (ontoRegistry === undefined))
  ) {
    return { code: 2, stdout: "", stderr: `${help}\n` };
  }
  try {
    if (command === "archive-size") {
      const report = await measureArchive(directory);
      return {
        code: 0,
        stdout: json ? `${JSON.stringify(report, null, 2)}\n` : renderSizeReport(report),
        stderr: "",
      };
    }
    if (command === "archive-split") {
      if (!maxPartSize)
        return { code: 2, stdout: "", stderr: `archive-split needs --max-part-size\n${help}\n` };
      const maxPartBytes = parseByteSize(maxPartSize, "--max-part-size");
      print(renderSizeReport(await measureArchive(directory)));
      const manifest = await splitArchive(directory, out!, maxPartBytes);
      return {
        code: 0,
        stdout: `wrote ${manifest.parts.length} parts of at most ${humanBytes(maxPartBytes)} (${manifest.totalBytes} bytes) and ${partsManifestName} to ${out}\n`,
        stderr: "",
      };
    }
    if (command === "archive-join") {
      const manifest = await joinArchive(directory, out!);
      return {
        code: 0,
        stdout: `joined ${manifest.parts.length} parts into ${out}; every part and every image in the lock checked\n`,
        stderr: "",
      };
    }
    if (command === "archive-diff") {
      const manifest = writeDifferentialArchive(directory, against!, out!);
      return {
        code: 0,
        stdout:
          `wrote ${manifest.images.length} images (${manifest.blobCount} blobs, ${humanBytes(manifest.blobBytes)}) to ${out}; ` +
          `${manifest.unchanged.length} images and ${manifest.requiredBlobs.length} shared blobs the other side has were left out\n`,
        stderr: "",
      };
    }
    if (command === "archive-apply" && ontoRegistry !== undefined) {
      const access = registryAccessFromFlags(parsed.values, env);
      const result = await applyDifferentialToRegistry(directory, {
        access,
        upstreamPrefixes: upstreamPrefixesFromFlags(parsed.values["upstream-prefix"] ?? []),
        onRetry: (retry) =>
          print(`retry ${retry.attempt}/${retry.of} in ${retry.delayMs} ms: ${retry.reason}\n`),
      });
      const { stats } = result;
      return {
        code: 0,
        stdout:
          `applied ${result.images.length} images onto ${access.host}: ${stats.blobsUploaded} blobs pushed (${humanBytes(stats.bytesUploaded)}), ` +
          `${stats.blobsMounted} mounted, ${stats.blobsPresent} already there, ${stats.manifestsPushed} manifests; ` +
          `every carried image is served at its lock digest\n`,
        stderr: "",
      };
    }
    if (command === "archive-apply") {
      const manifest = applyDifferentialArchive(directory, onto!);
      return {
        code: 0,
        stdout: `applied ${manifest.images.length} images onto ${onto}; every new image checked\n`,
        stderr: "",
      };
    }
    return { code: 2, stdout: "", stderr: `${help}\n` };
  } catch (error) {
    const code = error instanceof CliArgumentError ? 2 : 1;
    return { code, stdout: "", stderr: `${(error as Error).message}\n` };
  }
}

/**
 * The size of a stack's image set before anything is written: read from the source registries
 * (manifests and configs only), or from the archive when the stack imports one.
 */
export async function runSizeCli(argv: string[]): Promise<CliResult> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { stack: { type: "string" }, file: { type: "string" }, json: { type: "boolean" } },
    });
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${commandHelp.size}\n` };
  }
  const { stack, file, json } = parsed.values;
  if (!stack && !file) return { code: 2, stdout: "", stderr: `${commandHelp.size}\n` };
  const stackFile = file ?? path.join(path.dirname(projectFile), `Pulumi.${stack}.yaml`);
  try {
    const { config, project } = loadStackFileConfig(stackFile);
    const images = imageSetForStack(config, project).images.map((image) => image.canonical);
    const report =
      config.images.source.kind === "archive"
        ? { ...(await measureArchive(config.images.source.directory)), unmeasured: [] }
        : await measureRegistryImages(registryImagesForStack(config, images));
    return {
      code: report.unmeasured.length > 0 ? 1 : 0,
      stdout: json ? `${JSON.stringify(report, null, 2)}\n` : renderSizeReport(report),
      stderr:
        report.unmeasured.length > 0
          ? `${report.unmeasured.length} of ${images.length} images could not be measured\n`
          : "",
    };
  } catch (error) {
    return { code: 1, stdout: "", stderr: `${stackFile}: ${(error as Error).message}\n` };
  }
}

/**
 * One `airgap` invocation: help for any command, the archive and size commands, `images
 * --conformance-image`, or the stack commands.
 */
export function runAirgap(argv: string[]): Promise<CliResult> {
  if (argv.includes("--help") || argv.includes("-h")) {
    // Help never needs the command's other arguments: `airgap archive-split DIR --help` too.
    const command = argv[0]?.startsWith("-") ? undefined : argv[0];
    return Promise.resolve(runCli(command ? [command, "--help"] : ["--help"]));
  }
  if (argv[0]?.startsWith("archive-")) return runArchiveCli(argv);
  if (argv[0] === "size") return runSizeCli(argv.slice(1));
  if (argv.some((arg) => arg.startsWith("--conformance-image"))) {
    return runConformanceImageCli(argv);
  }
  return Promise.resolve(runCli(argv));
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const pending = runAirgap(argv);
  void pending.then((result) => {
    process.stdout.write(result.stdout);
    process.stderr.write(result.stderr);
    process.exitCode = result.code;
  });
}
