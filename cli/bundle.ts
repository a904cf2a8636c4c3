/**
 * The carry-in bundle: everything the air-gapped bastion needs from the connected side, in one
 * directory (and a tar of it) for removable media, with a sha256 manifest checked on arrival.
 *
 *   npm run bundle -- --out /media/usb/airgap-bundle [--images DIR] [--registry-image NAME]
 *   npm run bundle -- verify /media/usb/airgap-bundle
 *
 * Layout of a bundle:
 *   project/                 this project with node_modules (npm ci needs no registry inside)
 *   plugins/                 pulumi-resource-<name>-v<version>-<os>-<arch>.tar.gz per provider
 *   registry-image.tar       `docker save` of the registry image (stack key registryImageTar)
 *   images/                  the exported images archive with images.lock.json, when given
 *   extra/                   files added with --add (the Pulumi CLI tarball, packages, ...)
 *   bundle.json              what is inside, with versions
 *   GAP-STEPS.txt            the commands to run on the air-gapped side
 *   SHA256SUMS               sha256 of every file above, in `sha256sum -c` format
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadProjectSchema } from "../infra/schema";

export const projectRoot = path.resolve(__dirname, "..");
export const manifestName = "SHA256SUMS";
export const bundleInfoName = "bundle.json";
export const gapStepsName = "GAP-STEPS.txt";
const lockFileName = "images.lock.json";

/** A provider plugin the program needs, at the exact version its npm package was built for. */
export interface ProviderPlugin {
  /** Plugin name, e.g. "docker". */
  name: string;
  /** Exact version, without a leading "v", e.g. "5.2.0". */
  version: string;
  /** The npm package that declares it, e.g. "@pulumi/docker". */
  npmPackage: string;
}

/**
 * The resource plugins of the project's dependencies: each installed package whose package.json
 * says `"pulumi": {"resource": true}`; its version is the package's `pulumi.version`, else the
 * package's own version (the two are released together).
 */
export function providerPlugins(root = projectRoot): ProviderPlugin[] {
  const manifest = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
  };
  const plugins: ProviderPlugin[] = [];
  for (const npmPackage of Object.keys(manifest.dependencies ?? {}).sort()) {
    const installed = path.join(root, "node_modules", npmPackage, "package.json");
    if (!existsSync(installed)) {
      throw new Error(`${npmPackage} is not installed in ${root}: run npm ci first`);
    }
    const info = JSON.parse(readFileSync(installed, "utf8")) as {
      version: string;
      pulumi?: { resource?: boolean; name?: string; version?: string };
    };
    if (!info.pulumi?.resource) continue;
    plugins.push({
      name: info.pulumi.name ?? npmPackage.replace(/^@pulumi\//, ""),
      version: (info.pulumi.version ?? info.version).replace(/^v/, ""),
      npmPackage,
    });
  }
  return plugins;
}

/** `linux-amd64`, as Pulumi names plugin archives. */
export function pluginPlatform(platform = process.platform, arch = process.arch): string {
  const arches: Record<string, string> = { x64: "amd64", arm64: "arm64" };
  return `${platform}-${arches[arch] ?? arch}`;
}

/** File name of a plugin archive in the bundle. */
export function pluginArchiveName(plugin: ProviderPlugin, platform = pluginPlatform()): string {
  return `pulumi-resource-${plugin.name}-v${plugin.version}-${platform}.tar.gz`;
}

/** The plugin cache directory Pulumi installs a plugin into (`$PULUMI_HOME/plugins/...`). */
export function pluginCacheDirectory(plugin: ProviderPlugin, pluginsDir: string): string {
  return path.join(pluginsDir, `resource-${plugin.name}-v${plugin.version}`);
}

/** What to run on the gap side for one plugin in the bundle. */
export function pluginInstallCommand(plugin: ProviderPlugin, archive: string): string {
  return `pulumi plugin install resource ${plugin.name} ${plugin.version} --file ${archive}`;
}

/** Plugins absent from the cache, each with how to get it on this (connected) machine. */
export function missingPlugins(
  plugins: ProviderPlugin[],
  pluginsDir: string,
): { plugin: ProviderPlugin; fix: string }[] {
  return plugins
    .filter((plugin) => {
      const binary = path.join(
        pluginCacheDirectory(plugin, pluginsDir),
        `pulumi-resource-${plugin.name}`,
      );
      return !existsSync(binary);
    })
    .map((plugin) => ({
      plugin,
      fix:
        `pulumi plugin install resource ${plugin.name} ${plugin.version}` +
        ` (or download ${pluginArchiveName(plugin)} from` +
        ` https://github.com/pulumi/pulumi-${plugin.name}/releases/tag/v${plugin.version}` +
        ` and add --file <that file>)`,
    }));
}

function sha256(file: string): string {
  const hash = createHash("sha256");
  const buffer = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(file, "r");
  try {
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) break;
      hash.update(buffer.subarray(0, read));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** Regular files under `dir`, relative, sorted; symlinks (node_modules/.bin) are not followed. */
function regularFiles(dir: string, prefix = ""): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...regularFiles(dir, relative));
    else if (entry.isFile()) files.push(relative);
  }
  return files.sort();
}

/** The `sha256sum` format: `<hex>  <path>` per line. */
export function renderManifest(dir: string, files: string[]): string {
  return files.map((file) => `${sha256(path.join(dir, file))}  ${file}\n`).join("");
}

/**
 * Project paths that do not travel: VCS data, local scratch, results, build output, and the
 * scripts written for manual nodes (they may hold the mirror password).
 */
export const projectExcludes = new Set([
  ".git",
  ".lab",
  // Preload tarballs built from the archive on this machine (nodesPreloadSource archive).
  ".airgap-conformance",
  "conformance-results",
  "results",
  "bench/out",
  "dist",
  "node-scripts",
  "node_modules/.cache",
]);

function run(command: string, args: string[]): { ok: boolean; output: string } {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 16 << 20 });
  return {
    ok: result.status === 0 && result.error === undefined,
    output: `${result.stderr ?? ""}${result.error?.message ?? ""}`.trim(),
  };
}

export interface BundleOptions {
  out: string;
  /** Pulumi's plugin cache. Default `$PULUMI_HOME/plugins` or ~/.pulumi/plugins. */
  pluginsDir?: string;
  /** Registry image to `docker save`. Default: Pulumi.yaml's default registryImage. */
  registryImage?: string;
  /** An existing `docker save` tar of the registry image to carry instead. */
  registryImageTar?: string;
  /** An exported images archive (OCI layout with images.lock.json). */
  images?: string;
  /** More files to carry (the Pulumi CLI tarball, skopeo/kubectl packages). */
  extra?: string[];
  tarball?: boolean;
  root?: string;
}

export interface BundleResult {
  directory: string;
  tarball?: string;
  files: number;
  plugins: { plugin: ProviderPlugin; file: string }[];
}

export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleError";
  }
}

function defaultPluginsDir(): string {
  return path.join(process.env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi"), "plugins");
}

/**
 * What to run on the gap side. `directory` is where the bundle is now; GAP-STEPS.txt written on
 * the connected side starts with a BUNDLE= line to change to where the media is mounted.
 */
export function gapSteps(
  directory: string,
  info: { plugins: { name: string; version: string; file: string }[]; images?: boolean },
): string {
  const lines = [
    `BUNDLE=${directory}   # where the bundle is on this machine`,
    `# 1. check the bundle (either line)`,
    `(cd "$BUNDLE/project" && npm run bundle -- verify "$BUNDLE")`,
    `(cd "$BUNDLE" && sha256sum -c --quiet ${manifestName})`,
    `# 2. provider plugins, at the exact versions the program was built with`,
    ...info.plugins.map((plugin) =>
      pluginInstallCommand({ ...plugin, npmPackage: "" }, `"$BUNDLE/${plugin.file}"`),
    ),
    `# 3. in the project, on the cluster's stack: the registry image comes from the tar`,
    `cd "$BUNDLE/project"`,
    `pulumi config set registryImageTar "$BUNDLE/registry-image.tar"`,
  ];
  if (info.images) {
    lines.push(
      `# 4. the images come from the archive`,
      `pulumi config set imagesSource archive`,
      `pulumi config set imagesArchiveDirectory "$BUNDLE/images"`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Writes the bundle; checks everything it needs first, so nothing is half-written. */
export function createBundle(options: BundleOptions): BundleResult {
  const root = options.root ?? projectRoot;
  const out = path.resolve(options.out);
  const pluginsDir = options.pluginsDir ?? defaultPluginsDir();
  const plugins = providerPlugins(root);
  const missing = missingPlugins(plugins, pluginsDir);
  if (missing.length > 0) {
    throw new BundleError(
      `provider plugins missing from ${pluginsDir}:\n` +
        missing
          .map(
            ({ plugin, fix }) =>
              `  ${plugin.name} ${plugin.version} (${plugin.npmPackage}): ${fix}`,
          )
          .join("\n"),
    );
  }
  const registryImage =
    options.registryImage ??
    String(loadProjectSchema().keys.registryImage?.default ?? "registry:2");
  if (options.registryImageTar) {
    if (!existsSync(options.registryImageTar))
      throw new BundleError(`--registry-image-tar ${options.registryImageTar}: no such file`);
  } else if (!run("docker", ["image", "inspect", registryImage]).ok) {
    throw new BundleError(
      `registry image ${registryImage} is not in the local Docker engine: run docker pull ${registryImage} ` +
        `(or name another image with --registry-image, or give a saved tar with --registry-image-tar)`,
    );
  }
  if (options.images && !existsSync(path.join(options.images, lockFileName))) {
    throw new BundleError(
      `--images ${options.images}: no ${lockFileName}; export the images first with the export stack (pulumi up on Pulumi.export.yaml)`,
    );
  }
  for (const file of options.extra ?? []) {
    if (!existsSync(file) || !statSync(file).isFile())
      throw new BundleError(`--add ${file}: not a file`);
  }
  if (existsSync(out)) throw new BundleError(`--out ${out} exists; give a new directory`);
  const insideProject = path.relative(root, out).split(path.sep).join("/");
  const excluded = [...projectExcludes].some(
    (dir) => insideProject === dir || insideProject.startsWith(`${dir}/`),
  );
  if ((out === root || !insideProject.startsWith("..")) && !excluded) {
    throw new BundleError(`--out ${out} is inside the project; give a directory outside it`);
  }

  // Written next to the target and renamed at the end: a failed run leaves no bundle behind.
  const work = `${out}.partial-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    // Entry by entry: the bundle may be written under an excluded directory (e.g. .lab), and a
    // copy of the whole root would contain its own destination.
    for (const entry of readdirSync(root)) {
      if (projectExcludes.has(entry)) continue;
      cpSync(path.join(root, entry), path.join(work, "project", entry), {
        recursive: true,
        verbatimSymlinks: true,
        filter: (source) => {
          const relative = path.relative(root, source).split(path.sep).join("/");
          return !projectExcludes.has(relative);
        },
      });
    }

    mkdirSync(path.join(work, "plugins"));
    const bundled = plugins.map((plugin) => {
      const file = `plugins/${pluginArchiveName(plugin)}`;
      const packed = run("tar", [
        "-czf",
        path.join(work, file),
        "-C",
        pluginCacheDirectory(plugin, pluginsDir),
        ".",
      ]);
      if (!packed.ok) throw new BundleError(`packing plugin ${plugin.name}: ${packed.output}`);
      return { plugin, file };
    });

    const imageTar = path.join(work, "registry-image.tar");
    if (options.registryImageTar) cpSync(options.registryImageTar, imageTar);
    else {
      const saved = run("docker", ["save", "-o", imageTar, registryImage]);
      if (!saved.ok) throw new BundleError(`docker save ${registryImage}: ${saved.output}`);
    }

    let imageCount: number | undefined;
    if (options.images) {
      cpSync(options.images, path.join(work, "images"), { recursive: true });
      const lock = JSON.parse(readFileSync(path.join(work, "images", lockFileName), "utf8")) as {
        images?: unknown[];
      };
      imageCount = lock.images?.length ?? 0;
    }
    const extras = (options.extra ?? []).map((file) => {
      mkdirSync(path.join(work, "extra"), { recursive: true });
      cpSync(file, path.join(work, "extra", path.basename(file)));
      return `extra/${path.basename(file)}`;
    });

    const info = {
      bundleVersion: 1,
      created: new Date().toISOString(),
      platform: pluginPlatform(),
      plugins: bundled.map(({ plugin, file }) => ({ ...plugin, file })),
      registryImage: { name: registryImage, file: "registry-image.tar" },
      ...(imageCount !== undefined ? { images: { directory: "images", count: imageCount } } : {}),
      extra: extras,
    };
    writeFileSync(path.join(work, bundleInfoName), `${JSON.stringify(info, null, 2)}\n`);
    writeFileSync(
      path.join(work, gapStepsName),
      gapSteps(out, { plugins: info.plugins, images: imageCount !== undefined }),
    );
    const files = regularFiles(work);
    writeFileSync(path.join(work, manifestName), renderManifest(work, files));
    renameSync(work, out);

    let tarball: string | undefined;
    if (options.tarball !== false) {
      tarball = `${out}.tar`;
      const packed = run("tar", ["-cf", tarball, "-C", path.dirname(out), path.basename(out)]);
      if (!packed.ok) throw new BundleError(`writing ${tarball}: ${packed.output}`);
      writeFileSync(`${tarball}.sha256`, `${sha256(tarball)}  ${path.basename(tarball)}\n`);
    }
    return { directory: out, tarball, files: files.length + 1, plugins: bundled };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  problems: string[];
}

/** Checks every file against SHA256SUMS, and that nothing was added and nothing is missing. */
export function verifyBundle(directory: string): VerifyResult {
  const manifestFile = path.join(directory, manifestName);
  if (!existsSync(manifestFile)) {
    return { ok: false, checked: 0, problems: [`${manifestFile}: missing; not a bundle`] };
  }
  const problems: string[] = [];
  const listed = new Map<string, string>();
  for (const [index, line] of readFileSync(manifestFile, "utf8").split("\n").entries()) {
    if (line === "") continue;
    const match = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (!match) {
      problems.push(`${manifestName}:${index + 1}: not "<sha256>  <path>"`);
      continue;
    }
    listed.set(match[2], match[1]);
  }
  for (const [file, expected] of listed) {
    const full = path.join(directory, file);
    if (!existsSync(full) || !lstatSync(full).isFile()) problems.push(`${file}: missing`);
    else if (sha256(full) !== expected) problems.push(`${file}: checksum differs`);
  }
  for (const file of regularFiles(directory)) {
    if (file !== manifestName && !listed.has(file))
      problems.push(`${file}: not in ${manifestName}`);
  }
  if (!listed.has(bundleInfoName)) problems.push(`${bundleInfoName}: missing`);
  return { ok: problems.length === 0, checked: listed.size, problems };
}

const usage = `usage:
  npm run bundle -- --out DIR [--images DIR] [--registry-image NAME | --registry-image-tar FILE]
                    [--plugins-dir DIR] [--add FILE]... [--no-tarball]
  npm run bundle -- verify DIR

Writes the carry-in bundle for the air-gapped side (DIR and DIR.tar): the project with
node_modules, the provider plugins from Pulumi's plugin cache at the exact versions of
package.json, a docker save of the registry image, the images archive (--images), any --add
files, and SHA256SUMS. "verify" checks a bundle against SHA256SUMS and prints the gap-side steps.

options:
  --out DIR                 the bundle directory to create (must not exist)
  --images DIR              an exported images archive (the export stack's imagesArchiveDirectory)
  --registry-image NAME     image to docker save (default: registryImage's default, registry:2)
  --registry-image-tar FILE carry this docker save tar instead
  --plugins-dir DIR         Pulumi's plugin cache (default: $PULUMI_HOME/plugins or ~/.pulumi/plugins)
  --add FILE                another file to carry (repeatable): the Pulumi CLI tarball, packages
  --no-tarball              write the directory only
  -h, --help                this help`;

export function runBundleCli(argv: string[]): { code: number; stdout: string; stderr: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: "string" },
        images: { type: "string" },
        "registry-image": { type: "string" },
        "registry-image-tar": { type: "string" },
        "plugins-dir": { type: "string" },
        add: { type: "string", multiple: true },
        "no-tarball": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n${usage}\n` };
  }
  const values = parsed.values;
  if (values.help) return { code: 0, stdout: `${usage}\n`, stderr: "" };
  const [command, target] = parsed.positionals;
  if (command === "verify") {
    if (!target) return { code: 2, stdout: "", stderr: `verify needs the bundle DIR\n${usage}\n` };
    const directory = path.resolve(target);
    const result = verifyBundle(directory);
    if (!result.ok) {
      return {
        code: 1,
        stdout: "",
        stderr: `${directory}: ${result.problems.length} problem(s):\n${result.problems.map((p) => `  ${p}`).join("\n")}\n`,
      };
    }
    const info = JSON.parse(readFileSync(path.join(directory, bundleInfoName), "utf8")) as {
      plugins: { name: string; version: string; file: string }[];
      images?: unknown;
    };
    return {
      code: 0,
      stdout: `${directory}: ${result.checked} files match ${manifestName}\n\n${gapSteps(directory, { plugins: info.plugins, images: info.images !== undefined })}`,
      stderr: "",
    };
  }
  if (command !== undefined) {
    return { code: 2, stdout: "", stderr: `unknown command '${command}'\n${usage}\n` };
  }
  if (!values.out) return { code: 2, stdout: "", stderr: `--out DIR is required\n${usage}\n` };
  try {
    const result = createBundle({
      out: values.out,
      images: values.images,
      registryImage: values["registry-image"],
      registryImageTar: values["registry-image-tar"],
      pluginsDir: values["plugins-dir"],
      extra: values.add,
      tarball: !values["no-tarball"],
    });
    const lines = [
      `wrote ${result.directory} (${result.files} files, checksums in ${manifestName})`,
      ...(result.tarball ? [`wrote ${result.tarball} and ${result.tarball}.sha256`] : []),
      ...result.plugins.map(
        ({ plugin, file }) => `  plugin ${plugin.name} ${plugin.version}: ${file}`,
      ),
      `carry it across, then follow ${path.join(result.directory, gapStepsName)}`,
    ];
    return { code: 0, stdout: `${lines.join("\n")}\n`, stderr: "" };
  } catch (error) {
    return { code: 1, stdout: "", stderr: `bundle: ${(error as Error).message}\n` };
  }
}

if (require.main === module) {
  const result = runBundleCli(process.argv.slice(2));
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exitCode = result.code;
}
