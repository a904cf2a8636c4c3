import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import {
  E2E_TEST_PATH,
  E2eImagesError,
  bastionPlatform,
  e2eImagesCacheFile,
  entryNameIn,
  layerHolding,
  parseListImagesOutput,
  transportString,
  type TransportReference,
} from "../../../core/images/e2e-images";
import type { RegistryAccess } from "./registry-client";
import { authFileContent, copyImage, redactCredentials, type CopyLocation } from "./skopeo";

/**
 * Reads the image set of a conformance image from the image itself: e2e.test for this machine's
 * platform is taken from the image's layers (skopeo copies the image to a private OCI layout,
 * tar extracts the one file; no container engine, no cluster), run with `--list-images`, and the
 * list is cached by the image's digest, so each image is read once.
 */

const run = promisify(execFile);

export interface DeriveE2eImagesOptions {
  /** Where lists are cached, one file per image digest and platform. */
  cacheDirectory: string;
  /** `os/arch` to read e2e.test for. Default: this machine's. */
  platform?: string;
  /** How the registry of a `docker` reference is reached. Default: its host over verified https. */
  access?: RegistryAccess;
  /** Limit for e2e.test to print its list. Default 120 seconds. */
  timeoutSeconds?: number;
}

export interface DerivedE2eImages {
  /** Canonical references, sorted. */
  readonly images: readonly string[];
  /** Digest of the manifest or index the reference names (the cache key). */
  readonly digest: string;
  readonly platform: string;
  /** Whether the list came from the cache. */
  readonly cached: boolean;
}

function locationOf(reference: TransportReference, access?: RegistryAccess): CopyLocation {
  if (reference.transport === "oci") {
    return { transport: "oci", directory: reference.directory, refName: reference.refName };
  }
  const image = reference.reference;
  return {
    transport: "docker",
    access: access ?? { host: image.registry, scheme: "https" },
    repository: image.repository,
    reference: image.digest ?? image.tag ?? "latest",
  };
}

/** The digest of what the reference names, from `skopeo inspect --raw` (no layer is read). */
async function referenceDigest(
  location: CopyLocation,
  image: string,
  scratch: string,
): Promise<string> {
  const args = ["inspect", "--raw", "--retry-times=2"];
  let secret: string | undefined;
  if (location.transport === "docker") {
    const { access } = location;
    if (access.scheme === "http" || access.insecureSkipVerify) args.push("--tls-verify=false");
    else if (access.caFile) {
      const certs = path.join(scratch, "certs");
      mkdirSync(certs, { recursive: true });
      copyFileSync(access.caFile, path.join(certs, "ca.crt"));
      args.push(`--cert-dir=${certs}`);
    }
    const auth = authFileContent([location]);
    if (auth !== undefined) {
      const authFile = path.join(scratch, "auth.json");
      writeFileSync(authFile, auth, { mode: 0o600 });
      args.push(`--authfile=${authFile}`);
      secret = access.password;
    }
    const separator = location.reference.startsWith("sha256:") ? "@" : ":";
    args.push(`docker://${access.host}/${location.repository}${separator}${location.reference}`);
  } else {
    args.push(`oci:${location.directory}:${location.refName}`);
  }
  try {
    const { stdout } = await run("skopeo", args, {
      encoding: "buffer",
      maxBuffer: 16 * 1024 * 1024,
    });
    return `sha256:${createHash("sha256").update(stdout).digest("hex")}`;
  } catch (error) {
    const failure = error as { code?: unknown; stderr?: Buffer; message: string };
    if (failure.code === "ENOENT") {
      throw new E2eImagesError(
        "cannot run skopeo; install it (Debian/Ubuntu: apt-get install skopeo)",
      );
    }
    const detail = (failure.stderr?.toString("utf8") ?? failure.message).trim().split("\n").pop();
    throw new E2eImagesError(
      `${image}: cannot read the image (${redactCredentials(detail ?? "", [secret])})`,
    );
  }
}

interface OciDescriptor {
  mediaType?: string;
  digest: string;
}

function readBlob(layout: string, digest: string): Buffer {
  return readFileSync(path.join(layout, "blobs", "sha256", digest.replace(/^sha256:/, "")));
}

/** The layers of the single image in a layout skopeo wrote for one platform, bottom first. */
function layersOf(layout: string, image: string): string[] {
  const index = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8")) as {
    manifests: OciDescriptor[];
  };
  const manifest = JSON.parse(readBlob(layout, index.manifests[0].digest).toString("utf8")) as {
    layers?: OciDescriptor[];
  };
  if (manifest.layers === undefined) {
    throw new E2eImagesError(`${image}: the copied image has no layers`);
  }
  return manifest.layers.map((layer) =>
    path.join(layout, "blobs", "sha256", layer.digest.replace(/^sha256:/, "")),
  );
}

async function tarList(layer: string): Promise<string[]> {
  // tar recognises gzip (and zstd, when installed) by itself.
  const { stdout } = await run("tar", ["-tf", layer], { maxBuffer: 256 * 1024 * 1024 });
  return stdout.split("\n").filter((name) => name !== "");
}

/** e2e.test for the platform, extracted from the topmost layer that holds it; its path. */
async function extractE2eTest(
  location: CopyLocation,
  image: string,
  platform: string,
  scratch: string,
): Promise<string> {
  const layout = path.join(scratch, "layout");
  await copyImage(
    {
      source: image,
      from: location,
      to: { transport: "oci", directory: layout, refName: "conformance" },
      platform,
    },
    { retries: 2 },
  );
  const layers = layersOf(layout, image);
  const listings = [];
  for (const layer of layers) listings.push(await tarList(layer));
  const holder = layerHolding(listings, E2E_TEST_PATH);
  if (holder === undefined) {
    throw new E2eImagesError(
      `${image}: no /${E2E_TEST_PATH} in the image for ${platform}; is it a conformance image?`,
    );
  }
  const entry = entryNameIn(listings[holder], E2E_TEST_PATH)!;
  const root = path.join(scratch, "root");
  mkdirSync(root, { recursive: true });
  await run("tar", ["-xf", layers[holder], "-C", root, "--no-same-owner", entry]);
  const binary = path.join(root, E2E_TEST_PATH);
  chmodSync(binary, 0o755);
  return binary;
}

/** Runs `e2e.test --list-images` with upstream names (no repo list remapping). */
async function listImages(binary: string, image: string, timeoutSeconds: number): Promise<string> {
  const env = { ...process.env };
  delete env.KUBE_TEST_REPO_LIST;
  delete env.KUBE_TEST_REPO;
  try {
    const { stdout } = await run(binary, ["--list-images"], {
      env,
      timeout: timeoutSeconds * 1000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const failure = error as { stderr?: string; killed?: boolean; message: string };
    const detail = failure.killed
      ? `did not finish within ${timeoutSeconds}s`
      : (failure.stderr ?? failure.message).trim().split("\n").slice(-2).join(" ");
    throw new E2eImagesError(`${image}: e2e.test --list-images failed: ${detail}`);
  }
}

/** Writes a file so that readers see the old content or the new one, never a part. */
function writeAtomically(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, file);
}

/**
 * The image set of a conformance image, from its own e2e.test.
 *
 * @throws E2eImagesError saying which image could not be read and why.
 */
export async function deriveE2eImages(
  reference: TransportReference,
  options: DeriveE2eImagesOptions,
): Promise<DerivedE2eImages> {
  const image = transportString(reference);
  const platform = options.platform ?? bastionPlatform(process.platform, process.arch);
  const location = locationOf(reference, options.access);
  const scratch = mkdtempSync(path.join(os.tmpdir(), "airgap-e2e-images-"));
  try {
    const digest = await referenceDigest(location, image, scratch);
    const cacheFile = e2eImagesCacheFile(options.cacheDirectory, digest, platform);
    if (existsSync(cacheFile)) {
      const images = parseListImagesOutput(readFileSync(cacheFile, "utf8"), image);
      return { images, digest, platform, cached: true };
    }
    const binary = await extractE2eTest(location, image, platform, scratch);
    const images = parseListImagesOutput(
      await listImages(binary, image, options.timeoutSeconds ?? 120),
      image,
    );
    writeAtomically(cacheFile, `${images.join("\n")}\n`);
    return { images, digest, platform, cached: false };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Default cache: $XDG_CACHE_HOME (or ~/.cache)/airgap-conformance/e2e-images. */
export function defaultE2eImagesCache(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "airgap-conformance", "e2e-images");
}
