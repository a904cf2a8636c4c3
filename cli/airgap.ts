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
import { defaultE2eImagesCache, deriveE2eImages } from "../components/mirror/actions/e2e-images";
import { planImageCopies } from "../components/mirror/plan";
import { parseTransportReference } from "../core/images/e2e-images";
import { RegistryArgsError, resolveRegistrySettings } from "../components/registry/spec";
import { renderRepoList } from "../core/images/repo-list";
import {
  basicAuthorization,
  nodeScriptFileName,
  planNodeFiles,
  renderNodeScript,
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
                     added per config version; /etc/hosts as the block inserted)
Nothing is written unless everything could be rendered. Passwords are never rendered.`,
};

const usage = `usage: airgap <command> (--stack NAME | --file PATH) [--out DIR] [--json]

Offline: reads a stack file with the program's own config code; needs no Pulumi, no cluster
and no network.

commands:
  images    the images the stack mirrors, and why each is there (or, with
            --conformance-image, the list that image's e2e.test prints)
  mapping   source -> mirror (or archive) reference per image
  render    the repo list, mapping, image lists and node files, written to --out DIR

options:
  --stack NAME   read Pulumi.NAME.yaml next to Pulumi.yaml
  --file PATH    read any stack file
  --out DIR      where render writes
  --json         machine-readable output (images, mapping)
  -h, --help     this help; "airgap <command> --help" for one command`;

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
    options: { forbidFallback: config.nodes.forbidFallback },
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
    for (const node of config.nodes.list) files.push(...nodeFilesForReview(config, project, node));
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

if (require.main === module) {
  const argv = process.argv.slice(2);
  const helpAsked = argv.includes("--help") || argv.includes("-h");
  const pending =
    !helpAsked && argv.some((arg) => arg.startsWith("--conformance-image"))
      ? runConformanceImageCli(argv)
      : Promise.resolve(runCli(argv));
  void pending.then((result) => {
    process.stdout.write(result.stdout);
    process.stderr.write(result.stderr);
    process.exitCode = result.code;
  });
}
