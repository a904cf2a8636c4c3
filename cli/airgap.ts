/**
 * Offline CLI over the same core the program uses: no Pulumi engine, no cluster, no network.
 *
 *   npm run cli -- images  --stack dev            the images the stack mirrors, and why
 *   npm run cli -- mapping --stack dev            source -> mirror reference
 *   npm run cli -- render  --stack dev --out DIR  repo list, mapping and lists for review
 *   npm run cli -- images  --conformance-image docker://registry.k8s.io/conformance:v1.33.4
 *                          the image set that conformance image's own e2e.test lists
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
import { resolveRegistrySettings } from "../components/registry/spec";
import { renderRepoList } from "../core/images/repo-list";
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
  readTypedConfig,
  type NodeEntry,
  type StackConfig,
} from "../infra/config";
import { imageSetForStack, upstreamsForStack } from "../infra/images";
import { loadProjectSchema, projectFile } from "../infra/schema";
import { readStackFile } from "../infra/stack-file";

const usage = [
  `usage: airgap <images|mapping|render> (--stack NAME | --file PATH) [--out DIR] [--json]`,
  `       airgap images --conformance-image (docker://IMAGE | oci:DIR:TAG) [--insecure] [--platform OS/ARCH] [--cache-dir DIR]`,
  `       airgap size (--stack NAME | --file PATH) [--json]`,
  `       airgap archive-size ARCHIVE_DIR [--json]`,
  `       airgap archive-split ARCHIVE_DIR --max-part-size SIZE --out PARTS_DIR`,
  `       airgap archive-join PARTS_DIR --out ARCHIVE_DIR`,
  `       airgap archive-diff ARCHIVE_DIR --against OTHER_SIDE_LOCK --out DIFF_DIR`,
  `       airgap archive-apply DIFF_DIR --onto ARCHIVE_DIR`,
].join("\n");

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
function mirrorHostFor(config: StackConfig): string {
  if (config.mirror.external) return config.mirror.external.endpoint;
  return resolveRegistrySettings({
    containerName: config.registry.containerName,
    hostPort: config.registry.hostPort,
    bindAddress: config.registry.bindAddress,
    advertisedEndpoint: config.registry.advertisedEndpoint,
    networks: config.registry.networks,
  }).endpoint;
}

function mappingLines(config: StackConfig, project: string): { source: string; mirror: string }[] {
  const imageSet = imageSetForStack(config, project);
  const plan = planImageCopies({
    images: imageSet.images.map((image) => image.canonical),
    source: config.images.source.kind === "archive" ? { kind: "upstream" } : config.images.source,
    destination: {
      kind: "registry",
      access: { host: mirrorHostFor(config), scheme: "https" },
      nodeEndpoint: mirrorHostFor(config),
    },
    upstreamPrefixes: config.mirror.upstreamPrefixes,
  });
  return plan.copies.map((copy) => ({ source: copy.source, mirror: copy.mirrorReference }));
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
  const mirrorHost = mirrorHostFor(config);
  const scheme = config.mirror.external?.scheme ?? (config.registry.tls ? "https" : "http");
  const caCertificate = config.nodes.caFile ? readFileSync(config.nodes.caFile, "utf8") : undefined;
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

/** The OpenShift cluster objects the program declares, as one file for `oc apply -f`. */
function openshiftManifests(config: StackConfig, project: string): string {
  const mirrorHost = mirrorHostFor(config);
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
      },
    });
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${usage}\n` };
  }
  const [command] = parsed.positionals;
  const { stack, file, out, json } = parsed.values;
  if (!command || !["images", "mapping", "render"].includes(command) || (!stack && !file)) {
    return { code: 2, stdout: "", stderr: `${usage}\n` };
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
        stderr: `${stackFile}: imagesEnabled is false; this stack mirrors no images\n`,
      };
    }
    const imageSet = imageSetForStack(config, project);
    if (command === "images") {
      if (json) return { code: 0, stdout: `${JSON.stringify(imageSet, null, 2)}\n`, stderr: "" };
      const lines = imageSet.images.map(
        (image) => `${image.canonical}\t${image.origins.join(", ")}`,
      );
      const notes = imageSet.unmirrorable.map(
        (image) => `# not mirrored: ${image.canonical} (${image.reason})`,
      );
      const catalog = imageSet.catalog
        ? [
            `# catalog ${imageSet.catalog.kubernetesVersion}: ${imageSet.catalog.provenance.kind}, ${imageSet.catalog.completeness.complete ? "complete" : "not known to be complete"} (${imageSet.catalog.provenance.source})`,
          ]
        : [];
      return { code: 0, stdout: [...catalog, ...lines, ...notes].join("\n") + "\n", stderr: "" };
    }
    const mapping = mappingLines(config, project);
    if (command === "mapping") {
      const text = json
        ? JSON.stringify(Object.fromEntries(mapping.map((m) => [m.source, m.mirror])), null, 2)
        : mapping.map((m) => `${m.source} -> ${m.mirror}`).join("\n");
      return { code: 0, stdout: `${text}\n`, stderr: "" };
    }
    if (!out) return { code: 2, stdout: "", stderr: `render needs --out DIR\n${usage}\n` };
    mkdirSync(out, { recursive: true });
    const written: string[] = [];
    const write = (name: string, content: string) => {
      mkdirSync(path.dirname(path.join(out, name)), { recursive: true });
      writeFileSync(path.join(out, name), content);
      written.push(name);
    };
    write(
      "repo-list.yaml",
      renderRepoList({
        mirrorHost: mirrorHostFor(config),
        upstreamPrefixes: config.mirror.upstreamPrefixes,
      }),
    );
    write("mapping.txt", mapping.map((m) => `${m.source} ${m.mirror}`).join("\n") + "\n");
    write("images.txt", imageSet.images.map((image) => image.canonical).join("\n") + "\n");
    write(
      "unmirrorable.txt",
      imageSet.unmirrorable.map((image) => `${image.canonical}\t${image.reason}`).join("\n") + "\n",
    );
    for (const node of config.nodes.list) {
      if (node.runtime === openshiftFlavour) continue;
      for (const file of nodeFilesForReview(config, project, node)) write(file.name, file.content);
    }
    if (config.nodes.list.some((node) => node.runtime === openshiftFlavour)) {
      write("openshift/mirror-objects.yaml", openshiftManifests(config, project));
    }
    return {
      code: 0,
      stdout: `wrote ${written.map((name) => path.join(out, name)).join("\n      ")}\n`,
      stderr: "",
    };
  } catch (error) {
    const message =
      error instanceof ConfigError || error instanceof Error ? error.message : String(error);
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
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${usage}\n` };
  }
  const reference = parsed.values["conformance-image"];
  if (parsed.positionals.join(" ") !== "images" || reference === undefined) {
    return { code: 2, stdout: "", stderr: `${usage}\n` };
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

/**
 * The archive commands: the size report of an archive; cutting it into parts of at most a size
 * (the report is printed first, before any part is written); joining parts back with every
 * part and image checked.
 */
export async function runArchiveCli(
  argv: string[],
  print: (text: string) => void = (text) => process.stdout.write(text),
): Promise<CliResult> {
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
        json: { type: "boolean" },
      },
    });
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${usage}\n` };
  }
  const [command, directory] = parsed.positionals;
  const { out, json } = parsed.values;
  const maxPartSize = parsed.values["max-part-size"];
  const { against, onto } = parsed.values;
  const needsOut = ["archive-split", "archive-join", "archive-diff"].includes(command ?? "");
  if (
    !directory ||
    (needsOut && !out) ||
    (command === "archive-diff" && !against) ||
    (command === "archive-apply" && !onto)
  ) {
    return { code: 2, stdout: "", stderr: `${usage}\n` };
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
        return { code: 2, stdout: "", stderr: `archive-split needs --max-part-size\n${usage}\n` };
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
    if (command === "archive-apply") {
      const manifest = applyDifferentialArchive(directory, onto!);
      return {
        code: 0,
        stdout: `applied ${manifest.images.length} images onto ${onto}; every new image checked\n`,
        stderr: "",
      };
    }
    return { code: 2, stdout: "", stderr: `${usage}\n` };
  } catch (error) {
    return { code: 1, stdout: "", stderr: `${(error as Error).message}\n` };
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
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${usage}\n` };
  }
  const { stack, file, json } = parsed.values;
  if (!stack && !file) return { code: 2, stdout: "", stderr: `${usage}\n` };
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

if (require.main === module) {
  const argv = process.argv.slice(2);
  const pending = argv[0]?.startsWith("archive-")
    ? runArchiveCli(argv)
    : argv[0] === "size"
      ? runSizeCli(argv.slice(1))
      : argv.some((arg) => arg.startsWith("--conformance-image"))
        ? runConformanceImageCli(argv)
        : Promise.resolve(runCli(argv));
  void pending.then((result) => {
    process.stdout.write(result.stdout);
    process.stderr.write(result.stderr);
    process.exitCode = result.code;
  });
}
