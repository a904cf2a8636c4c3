import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { RegistryAccess } from "./registry-client";

/**
 * Copying one image with skopeo: the argv is built by a pure function; credentials travel in a
 * private auth file (never argv); transient network failures are retried with backoff; failures
 * are reported by image and registry without echoing credentials.
 */

/** Where an image is read from or written to. */
export type CopyLocation =
  | { transport: "docker"; access: RegistryAccess; repository: string; reference: string }
  | { transport: "oci"; directory: string; refName: string };

export interface CopyRequest {
  /** The canonical upstream name, used in messages. */
  source: string;
  from: CopyLocation;
  to: CopyLocation;
  /** `os/arch` to copy one platform; default: the whole index with every platform. */
  platform?: string;
  /** Several `os/arch` to keep (a smaller index); the registry copier's, never skopeo's. */
  platforms?: string[];
  /** skopeo's own per-request retries (blob/manifest requests). */
  skopeoRetries?: number;
}

/** Files the argv refers to, prepared by the runner. */
export interface CopyFiles {
  digestFile: string;
  /** Auth file holding credentials for the registries that have them. */
  authFile?: string;
  /** Per-side certificate directories holding the CA as ca.crt. */
  srcCertDir?: string;
  destCertDir?: string;
}

function locationString(location: CopyLocation): string {
  if (location.transport === "oci") return `oci:${location.directory}:${location.refName}`;
  const separator = location.reference.startsWith("sha256:") ? "@" : ":";
  return `docker://${location.access.host}/${location.repository}${separator}${location.reference}`;
}

function tlsArgs(
  side: "src" | "dest",
  location: CopyLocation,
  certDir: string | undefined,
): string[] {
  if (location.transport !== "docker") return [];
  const { access } = location;
  // skopeo falls back to plain http only when verification is off.
  if (access.scheme === "http" || access.insecureSkipVerify) return [`--${side}-tls-verify=false`];
  return certDir ? [`--${side}-cert-dir=${certDir}`] : [];
}

function hasCredentials(location: CopyLocation): boolean {
  return location.transport === "docker" && location.access.username !== undefined;
}

/** The skopeo argv for one copy. Pure. */
export function skopeoCopyArgs(request: CopyRequest, files: CopyFiles): string[] {
  const args = ["copy", "--preserve-digests", `--digestfile=${files.digestFile}`];
  if (request.platform) {
    const [platformOs, arch, variant] = request.platform.split("/");
    args.push(`--override-os=${platformOs}`, `--override-arch=${arch}`);
    if (variant) args.push(`--override-variant=${variant}`);
  } else {
    args.push("--all");
  }
  args.push(`--retry-times=${request.skopeoRetries ?? 2}`);
  args.push(...tlsArgs("src", request.from, files.srcCertDir));
  args.push(...tlsArgs("dest", request.to, files.destCertDir));
  // Without credentials of ours, skopeo's default auth file lookup (auth.json, docker config) applies.
  if (hasCredentials(request.from) && files.authFile) args.push(`--src-authfile=${files.authFile}`);
  if (hasCredentials(request.to) && files.authFile) args.push(`--dest-authfile=${files.authFile}`);
  args.push(locationString(request.from), locationString(request.to));
  return args;
}

/** containers-auth.json content for the registries of a copy that carry credentials. Pure. */
export function authFileContent(locations: CopyLocation[]): string | undefined {
  const auths: Record<string, { auth: string }> = {};
  for (const location of locations) {
    if (location.transport === "docker" && location.access.username !== undefined) {
      const token = `${location.access.username}:${location.access.password ?? ""}`;
      auths[location.access.host] = { auth: Buffer.from(token).toString("base64") };
    }
  }
  return Object.keys(auths).length > 0 ? JSON.stringify({ auths }) : undefined;
}

export type CopyFailureKind = "unreachable" | "unauthorized" | "not-found" | "other";

/** Classifies skopeo's error text. Pure. */
export function classifyCopyFailure(stderr: string): CopyFailureKind {
  if (/unauthorized|authentication required|401|invalid username\/password|denied/i.test(stderr)) {
    return "unauthorized";
  }
  if (/manifest unknown|name unknown|not found|404/i.test(stderr)) return "not-found";
  if (
    /connection refused|connection reset|no such host|i\/o timeout|timeout|EOF|server misbehaving|network is unreachable|50[0-9]|too many requests|429/i.test(
      stderr,
    )
  ) {
    return "unreachable";
  }
  return "other";
}

function registryOf(location: CopyLocation): string {
  return location.transport === "docker" ? location.access.host : `archive ${location.directory}`;
}

/** Removes anything that looks like a credential from text shown to the user. Pure. */
export function redactCredentials(text: string, secrets: (string | undefined)[]): string {
  let redacted = text;
  for (const secret of secrets) {
    if (secret) redacted = redacted.split(secret).join("***");
  }
  return redacted.replace(/("auth"\s*:\s*")[^"]*"/g, '$1***"');
}

/** A failed copy: names the image and the registry, says what to do. */
export class ImageCopyError extends Error {
  constructor(
    readonly source: string,
    readonly kind: CopyFailureKind,
    message: string,
  ) {
    super(message);
    this.name = "ImageCopyError";
  }
}

/** The user-facing message for a failed copy. Pure. */
export function copyFailureMessage(
  request: CopyRequest,
  kind: CopyFailureKind,
  detail: string,
): string {
  const from = registryOf(request.from);
  const to = registryOf(request.to);
  switch (kind) {
    case "unauthorized":
      return `${request.source}: credentials were refused (401) by ${from} or ${to}; check the user and password for that registry. ${detail}`;
    case "not-found":
      return `${request.source}: not found in ${from}; check the name and tag, or the source override for that registry. ${detail}`;
    case "unreachable":
      return `${request.source}: cannot reach ${from} or ${to} (gave up after retries). ${detail}`;
    default:
      return `${request.source}: copy from ${from} to ${to} failed. ${detail}`;
  }
}

/** Delays before each retry: exponential, capped. Pure. */
export function retryDelays(retries: number, baseMs = 1000, capMs = 15000): number[] {
  return Array.from({ length: retries }, (_, attempt) => Math.min(baseMs * 2 ** attempt, capMs));
}

/**
 * Writers into one OCI layout must take turns: skopeo rewrites its index.json without a lock of
 * its own. `flock` (util-linux) serialises them across processes.
 */
export function skopeoCommand(request: CopyRequest, args: string[]): [string, string[]] {
  if (request.to.transport === "oci") {
    return ["flock", [`${path.resolve(request.to.directory)}.lock`, "skopeo", ...args]];
  }
  return ["skopeo", args];
}

function runSkopeo(
  request: CopyRequest,
  args: string[],
): Promise<{ code: number; stderr: string }> {
  const [command, argv] = skopeoCommand(request, args);
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ["ignore", "ignore", "pipe"] });
    const chunks: Buffer[] = [];
    child.stderr.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.on("error", (error) =>
      reject(
        new Error(
          `cannot run ${command} (${error.message}); install skopeo (Debian/Ubuntu: apt-get install skopeo)`,
        ),
      ),
    );
    child.on("close", (code) =>
      resolve({ code: code ?? -1, stderr: Buffer.concat(chunks).toString("utf8") }),
    );
  });
}

function certDirFor(scratch: string, side: string, location: CopyLocation): string | undefined {
  if (
    location.transport !== "docker" ||
    location.access.scheme !== "https" ||
    !location.access.caFile
  )
    return undefined;
  const dir = path.join(scratch, `${side}-certs`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(location.access.caFile, path.join(dir, "ca.crt"));
  return dir;
}

export interface CopyOptions {
  /** Whole-copy attempts after the first, for network failures. Default 3. */
  retries?: number;
  /** First backoff delay in ms. Default 1000. */
  backoffMs?: number;
  /** Told before each retry: which one, the wait before it, and the failure (no credentials). */
  onRetry?: (retry: { attempt: number; of: number; delayMs: number; reason: string }) => void;
}

/** Copies one image and returns the digest written to the destination. */
export async function copyImage(request: CopyRequest, options: CopyOptions = {}): Promise<string> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), "airgap-copy-"));
  try {
    const authContent = authFileContent([request.from, request.to]);
    const files: CopyFiles = {
      digestFile: path.join(scratch, "digest"),
      authFile: authContent ? path.join(scratch, "auth.json") : undefined,
      srcCertDir: certDirFor(scratch, "src", request.from),
      destCertDir: certDirFor(scratch, "dest", request.to),
    };
    if (files.authFile && authContent) writeFileSync(files.authFile, authContent, { mode: 0o600 });
    const args = skopeoCopyArgs(request, files);
    const secrets = [request.from, request.to].map((location) =>
      location.transport === "docker" ? location.access.password : undefined,
    );
    const delays = retryDelays(options.retries ?? 3, options.backoffMs ?? 1000);
    for (let attempt = 0; ; attempt++) {
      const result = await runSkopeo(request, args);
      if (result.code === 0) return readFileSync(files.digestFile, "utf8").trim();
      const kind = classifyCopyFailure(result.stderr);
      if (kind !== "unreachable" || attempt >= delays.length) {
        const detail = redactCredentials(
          result.stderr.trim().split("\n").slice(-3).join(" "),
          secrets,
        );
        throw new ImageCopyError(request.source, kind, copyFailureMessage(request, kind, detail));
      }
      options.onRetry?.({
        attempt: attempt + 1,
        of: delays.length,
        delayMs: delays[attempt],
        reason: redactCredentials(result.stderr.trim().split("\n").slice(-1).join(""), secrets),
      });
      await new Promise((resolve) => setTimeout(resolve, delays[attempt]));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
