import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";

/**
 * The registry API as the mirror uses it: manifest HEAD (is an image present, with which
 * digest), manifest GET/PUT/DELETE, and blob HEAD/GET/upload/cross-repository mount for the
 * copier (registry-copy.ts). One process with pooled connections serves hundreds of images.
 */

/** How to reach one registry. */
export interface RegistryAccess {
  /** `host[:port]` as used in image references. */
  host: string;
  /** `https` verifies TLS unless `insecureSkipVerify`; `http` is plain. */
  scheme: "http" | "https";
  /** PEM CA bundle that signed the registry's certificate. */
  caFile?: string;
  /** Accept any certificate. Only when the registry is explicitly marked insecure. */
  insecureSkipVerify?: boolean;
  username?: string;
  password?: string;
}

/** Every manifest type a registry may answer with; HEAD must accept all to report indexes. */
export const manifestMediaTypes = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];

export class RegistryRequestError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** The registry's certificate did not verify: a retry will not help. */
    readonly tlsRefused = false,
  ) {
    super(message);
    this.name = "RegistryRequestError";
  }
}

/** Node's codes for a certificate that does not verify (chain, name, dates). */
const certificateErrorCodes =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_.*|ERR_TLS_CERT_ALTNAME_INVALID)$/;

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request body: bytes, or a stream of known length (a blob read from another registry). */
export type RequestBody = Buffer | { stream: NodeJS.ReadableStream; length: number };

/** Media types of manifests that list other manifests (multi-arch images). */
export const indexMediaTypes = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

/** A manifest as the registry stores it: the exact bytes are what the digest covers. */
export interface RawManifest {
  mediaType: string;
  bytes: Buffer;
  digest: string;
}

/** sha256 digest of bytes, as registries name content. Pure. */
export function contentDigest(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

const requestTimeoutMs = 30000;

/**
 * A client for one registry: keep-alive connections, and the authorization per scope cached
 * (one 401 round trip per scope, none at all once the registry is known to take Basic auth).
 */
export class RegistryClient {
  private readonly agent: http.Agent | https.Agent;
  private readonly tokens = new Map<string, string>();
  private basicAccepted = false;

  constructor(readonly access: RegistryAccess) {
    this.agent =
      access.scheme === "https"
        ? new https.Agent({
            keepAlive: true,
            maxSockets: 16,
            ca: access.caFile ? readFileSync(access.caFile) : undefined,
            rejectUnauthorized: !access.insecureSkipVerify,
          })
        : new http.Agent({ keepAlive: true, maxSockets: 16 });
  }

  close(): void {
    this.agent.destroy();
  }

  private get origin(): string {
    return `${this.access.scheme}://${this.access.host}`;
  }

  /** Sends one request; the answer is read whole, or handed over as a stream when `stream`. */
  private send(
    method: string,
    url: string,
    headers: Record<string, string>,
    body?: RequestBody,
    stream = false,
  ): Promise<Response & { stream?: http.IncomingMessage }> {
    const module = url.startsWith("https:") ? https : http;
    const sameOrigin = new URL(url).origin === new URL(this.origin).origin;
    return new Promise((resolve, reject) => {
      const fail = (error: Error & { code?: string }) => {
        if (error instanceof RegistryRequestError) reject(error);
        else if (certificateErrorCodes.test(error.code ?? "")) {
          reject(
            new RegistryRequestError(
              `the certificate of registry ${this.access.host} did not verify (${error.message}); give the CA that signed it, or mark the registry insecure`,
              undefined,
              true,
            ),
          );
        } else {
          reject(
            new RegistryRequestError(`cannot reach registry ${this.access.host}: ${error.message}`),
          );
        }
      };
      const lengthHeader =
        body === undefined
          ? {}
          : { "Content-Length": String(Buffer.isBuffer(body) ? body.length : body.length) };
      const request = module.request(
        url,
        {
          method,
          headers: { ...headers, ...lengthHeader },
          // Redirects to storage elsewhere (a CDN) use their own connections and the system CAs.
          agent: sameOrigin ? this.agent : undefined,
          timeout: requestTimeoutMs,
        },
        (response) => {
          if (stream && response.statusCode === 200) {
            resolve({ status: 200, headers: response.headers, body: "", stream: response });
            return;
          }
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks).toString("utf8"),
            }),
          );
          response.on("error", fail);
        },
      );
      request.on("timeout", () =>
        request.destroy(new Error(`timed out after ${requestTimeoutMs / 1000}s: ${method} ${url}`)),
      );
      request.on("error", fail);
      if (body === undefined || Buffer.isBuffer(body)) {
        request.end(body);
      } else {
        body.stream.on("error", (error: Error) => request.destroy(error));
        body.stream.pipe(request);
      }
    });
  }

  private basicAuthorization(): string | undefined {
    if (this.access.username === undefined) return undefined;
    const token = Buffer.from(`${this.access.username}:${this.access.password ?? ""}`).toString(
      "base64",
    );
    return `Basic ${token}`;
  }

  /** Answers a 401 challenge (Basic, or Bearer via the token realm) and returns the header to use. */
  private async authorize(challenge: string | undefined, scope: string): Promise<string> {
    if (!challenge)
      throw new RegistryRequestError(
        `registry ${this.access.host} answered 401 without a challenge`,
        401,
      );
    const scheme = challenge.split(" ", 1)[0].toLowerCase();
    if (scheme === "basic") {
      const basic = this.basicAuthorization();
      if (!basic) {
        throw new RegistryRequestError(
          `registry ${this.access.host} requires credentials (401) and none were given`,
          401,
        );
      }
      return basic;
    }
    const parameters = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((match) => [match[1], match[2]]),
    );
    if (scheme !== "bearer" || !parameters.realm) {
      throw new RegistryRequestError(
        `registry ${this.access.host} sent an unsupported auth challenge`,
        401,
      );
    }
    const url = new URL(parameters.realm);
    if (parameters.service) url.searchParams.set("service", parameters.service);
    // The challenge names the scope of the refused request; a mount also needs the source's.
    const scopes = new Set([...(parameters.scope ? [parameters.scope] : []), ...scope.split(" ")]);
    for (const part of scopes) url.searchParams.append("scope", part);
    const basic = this.basicAuthorization();
    const response = await this.send("GET", url.toString(), basic ? { Authorization: basic } : {});
    if (response.status !== 200) {
      throw new RegistryRequestError(
        `token request to ${url.origin} for ${this.access.host} failed with ${response.status}${basic ? " (credentials refused)" : ""}`,
        response.status,
      );
    }
    const body = JSON.parse(response.body) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token)
      throw new RegistryRequestError(`token response from ${url.origin} carried no token`);
    return `Bearer ${token}`;
  }

  /**
   * Sends a request to /v2/... (or to an upload location), authenticating once per scope on 401
   * and reusing the result. A streamed body cannot be sent twice: the caller authorizes the
   * scope first (the upload's POST does).
   */
  private async v2(
    method: string,
    pathOrUrl: string,
    scope: string,
    headers: Record<string, string> = {},
    body?: RequestBody,
    stream = false,
  ) {
    const url = /^https?:/.test(pathOrUrl) ? pathOrUrl : `${this.origin}/v2/${pathOrUrl}`;
    const cached =
      this.tokens.get(scope) ?? (this.basicAccepted ? this.basicAuthorization() : undefined);
    let response = await this.send(
      method,
      url,
      cached ? { ...headers, Authorization: cached } : headers,
      body,
      stream,
    );
    if (response.status === 401) {
      if (body !== undefined && !Buffer.isBuffer(body)) {
        this.tokens.delete(scope);
        throw new RegistryRequestError(
          `registry ${this.access.host} refused the authorization during an upload (401)`,
          401,
        );
      }
      const authorization = await this.authorize(
        response.headers["www-authenticate"] as string | undefined,
        scope,
      );
      response = await this.send(
        method,
        url,
        { ...headers, Authorization: authorization },
        body,
        stream,
      );
      if (response.status === 401) {
        throw new RegistryRequestError(
          `registry ${this.access.host} refused the credentials (401)`,
          401,
        );
      }
      this.tokens.set(scope, authorization);
      if (authorization.startsWith("Basic ")) this.basicAccepted = true;
    }
    return response;
  }

  private unexpected(what: string, response: Response): RegistryRequestError {
    const detail = response.body.trim().slice(0, 200);
    return new RegistryRequestError(
      `${what} on ${this.access.host} answered ${response.status}${detail ? `: ${detail}` : ""}`,
      response.status,
    );
  }

  /** Digest of `repository:reference` (tag or digest), or undefined when the registry does not have it. */
  async manifestDigest(repository: string, reference: string): Promise<string | undefined> {
    const response = await this.v2(
      "HEAD",
      `${repository}/manifests/${reference}`,
      `repository:${repository}:pull`,
      {
        Accept: manifestMediaTypes.join(", "),
      },
    );
    if (response.status === 404) return undefined;
    if (response.status !== 200) {
      throw new RegistryRequestError(
        `HEAD ${this.access.host}/${repository}:${reference} answered ${response.status}`,
        response.status,
      );
    }
    const digest = response.headers["docker-content-digest"];
    if (typeof digest !== "string") {
      throw new RegistryRequestError(
        `${this.access.host} sent no Docker-Content-Digest for ${repository}:${reference}`,
      );
    }
    return digest;
  }

  /**
   * The manifest `repository:reference` points to, as stored (its bytes decide the digest).
   * Rejects bytes that do not match a digest reference.
   */
  async getManifest(repository: string, reference: string): Promise<RawManifest> {
    const response = await this.v2(
      "GET",
      `${repository}/manifests/${reference}`,
      `repository:${repository}:pull`,
      { Accept: manifestMediaTypes.join(", ") },
      undefined,
      true,
    );
    if (response.status !== 200 || !response.stream) {
      throw this.unexpected(`GET manifest ${repository}:${reference}`, response);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of response.stream) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    const digest = contentDigest(bytes);
    if (reference.startsWith("sha256:") && reference !== digest) {
      throw new RegistryRequestError(
        `${this.access.host}/${repository}@${reference} sent a manifest whose digest is ${digest}`,
      );
    }
    const declared = (JSON.parse(bytes.toString("utf8")) as { mediaType?: string }).mediaType;
    const mediaType =
      declared ??
      String(response.headers["content-type"] ?? "")
        .split(";", 1)[0]
        .trim();
    return { mediaType, bytes, digest };
  }

  /** Stores a manifest under a tag or its digest; returns the digest the registry reports. */
  async putManifest(repository: string, reference: string, manifest: RawManifest): Promise<string> {
    const response = await this.v2(
      "PUT",
      `${repository}/manifests/${reference}`,
      `repository:${repository}:pull,push`,
      { "Content-Type": manifest.mediaType },
      manifest.bytes,
    );
    if (response.status !== 201 && response.status !== 200) {
      throw this.unexpected(`PUT manifest ${repository}:${reference}`, response);
    }
    const digest = response.headers["docker-content-digest"];
    return typeof digest === "string" ? digest : manifest.digest;
  }

  /** Whether the repository holds the blob. */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const response = await this.v2(
      "HEAD",
      `${repository}/blobs/${digest}`,
      `repository:${repository}:pull,push`,
    );
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw this.unexpected(`HEAD blob ${repository}@${digest}`, response);
  }

  /** The blob's bytes as a stream, following redirects to where the registry stores them. */
  async openBlob(repository: string, digest: string): Promise<http.IncomingMessage> {
    let response = await this.v2(
      "GET",
      `${repository}/blobs/${digest}`,
      `repository:${repository}:pull`,
      {},
      undefined,
      true,
    );
    for (let hops = 0; hops < 5 && [301, 302, 303, 307, 308].includes(response.status); hops++) {
      const location = new URL(String(response.headers.location), this.origin).toString();
      // Storage elsewhere is authorized by the signed URL, never by our credentials.
      response = await this.send("GET", location, {}, undefined, true);
    }
    if (response.status !== 200 || !response.stream) {
      throw this.unexpected(`GET blob ${repository}@${digest}`, response);
    }
    return response.stream;
  }

  /**
   * Mounts a blob the registry holds in another repository (no bytes move). Returns undefined
   * when mounted, or the location of the plain upload the registry started instead.
   */
  async mountBlob(repository: string, digest: string, from: string): Promise<string | undefined> {
    const response = await this.v2(
      "POST",
      `${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      `repository:${repository}:pull,push repository:${from}:pull`,
      {},
      Buffer.alloc(0),
    );
    if (response.status === 201) return undefined;
    if (response.status === 202) return this.uploadLocation(response);
    throw this.unexpected(`mount of ${digest} from ${from} into ${repository}`, response);
  }

  /** Starts a blob upload; returns its location. */
  async startUpload(repository: string): Promise<string> {
    const response = await this.v2(
      "POST",
      `${repository}/blobs/uploads/`,
      `repository:${repository}:pull,push`,
      {},
      Buffer.alloc(0),
    );
    if (response.status !== 202) throw this.unexpected(`upload start in ${repository}`, response);
    return this.uploadLocation(response);
  }

  private uploadLocation(response: Response): string {
    const location = response.headers.location;
    if (!location) throw new RegistryRequestError(`${this.access.host} sent no upload location`);
    return new URL(location, this.origin).toString();
  }

  /** Finishes an upload in one PUT; the registry checks the bytes against the digest. */
  async finishUpload(
    repository: string,
    location: string,
    digest: string,
    body: RequestBody,
  ): Promise<void> {
    const url = new URL(location);
    url.searchParams.set("digest", digest);
    const response = await this.v2(
      "PUT",
      url.toString(),
      `repository:${repository}:pull,push`,
      { "Content-Type": "application/octet-stream" },
      body,
    );
    if (response.status !== 201)
      throw this.unexpected(`blob upload ${repository}@${digest}`, response);
  }

  /**
   * A manifest (by tag or digest), the referrers of a digest, or a small JSON blob such as an
   * image config, as text. Blob redirects (to the registry's storage) are followed once, without our credentials.
   */
  async getText(
    repository: string,
    kind: "manifests" | "blobs" | "referrers",
    reference: string,
  ): Promise<{ body: string; digest?: string }> {
    let response = await this.v2(
      "GET",
      `${repository}/${kind}/${reference}`,
      `repository:${repository}:pull`,
      kind === "blobs" ? {} : { Accept: manifestMediaTypes.join(", ") },
    );
    const location = response.headers.location;
    if ([301, 302, 303, 307, 308].includes(response.status) && typeof location === "string") {
      const url = new URL(location, this.origin).toString();
      // Storage elsewhere is authorized by the signed URL, never by our credentials.
      response = await this.send("GET", url, {});
    }
    if (response.status !== 200) {
      throw new RegistryRequestError(
        `GET ${this.access.host}/${repository} ${kind} ${reference} answered ${response.status}`,
        response.status,
      );
    }
    const digest = response.headers["docker-content-digest"];
    return { body: response.body, ...(typeof digest === "string" ? { digest } : {}) };
  }

  /** The repository's tags (empty when the repository does not exist). */
  async listTags(repository: string): Promise<string[]> {
    const response = await this.v2(
      "GET",
      `${repository}/tags/list?n=10000`,
      `repository:${repository}:pull`,
    );
    if (response.status === 404) return [];
    if (response.status !== 200) {
      throw new RegistryRequestError(
        `GET ${this.access.host}/${repository} tags answered ${response.status}`,
        response.status,
      );
    }
    return (JSON.parse(response.body) as { tags?: string[] | null }).tags ?? [];
  }

  /**
   * Deletes one tag, never another tag's image. A registry that deletes tags (distribution 3,
   * DELETE of a tag reference) removes just the tag. Distribution 2.x deletes manifests by digest
   * only, which removes every tag on that digest: the manifest is deleted only when no other tag
   * of the repository points at it ("shared" otherwise), and only while the tag still names the
   * digest this resource wrote ("moved" otherwise).
   */
  async deleteTag(
    repository: string,
    tag: string,
    digest: string,
  ): Promise<"deleted" | "absent" | "shared" | "moved"> {
    const byTag = await this.v2(
      "DELETE",
      `${repository}/manifests/${tag}`,
      `repository:${repository}:delete`,
    );
    if (byTag.status === 202 || byTag.status === 200) return "deleted";
    const current = await this.manifestDigest(repository, tag);
    if (current === undefined) return "absent";
    if (current !== digest) return "moved";
    for (const other of await this.listTags(repository)) {
      if (other !== tag && (await this.manifestDigest(repository, other)) === digest) {
        return "shared";
      }
    }
    return this.deleteManifest(repository, digest);
  }

  /** Deletes a manifest by digest; a manifest already gone is not an error. */
  async deleteManifest(repository: string, digest: string): Promise<"deleted" | "absent"> {
    const response = await this.v2(
      "DELETE",
      `${repository}/manifests/${digest}`,
      `repository:${repository}:delete`,
    );
    if (response.status === 202 || response.status === 200) return "deleted";
    if (response.status === 404) return "absent";
    if (response.status === 405) {
      throw new RegistryRequestError(
        `registry ${this.access.host} does not allow deletes (405); enable REGISTRY_STORAGE_DELETE_ENABLED`,
        405,
      );
    }
    throw new RegistryRequestError(
      `DELETE ${this.access.host}/${repository}@${digest} answered ${response.status}`,
      response.status,
    );
  }
}

/**
 * One client per registry for the whole process: the provider process serves every image of a
 * stack, so connections, tokens and the blobs already pushed are shared by all of them.
 */
export function sharedRegistryClient(access: RegistryAccess): RegistryClient {
  const globalCache = globalThis as { __airgapRegistryClients?: Map<string, RegistryClient> };
  globalCache.__airgapRegistryClients ??= new Map();
  const key = JSON.stringify(access);
  let client = globalCache.__airgapRegistryClients.get(key);
  if (!client) {
    client = new RegistryClient(access);
    globalCache.__airgapRegistryClients.set(key, client);
  }
  return client;
}

/** One image to look for in a registry. */
export interface ImageCheck {
  repository: string;
  /** Tag or digest to resolve. */
  reference: string;
  /** The digest it must have; undefined accepts any. */
  expectedDigest?: string;
}

export type ImageCheckState = "present" | "missing" | "wrong-digest";

export interface ImageCheckResult extends ImageCheck {
  state: ImageCheckState;
  /** The digest the registry reported, when present. */
  digest?: string;
}

/** Runs `task` over `items` with at most `limit` in flight, keeping the input order. */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]);
    }
  });
  await Promise.all(workers);
  return results;
}

/** Decides the state of one image from what the registry answered. Pure. */
export function imageCheckState(
  found: string | undefined,
  expected: string | undefined,
): ImageCheckState {
  if (found === undefined) return "missing";
  if (expected !== undefined && found !== expected) return "wrong-digest";
  return "present";
}

/**
 * Which images a registry holds with the expected digest: manifest HEAD requests from one
 * process over pooled connections, `concurrency` at a time.
 */
export async function checkImages(
  access: RegistryAccess,
  images: readonly ImageCheck[],
  concurrency = 16,
): Promise<ImageCheckResult[]> {
  const client = new RegistryClient(access);
  try {
    return await mapWithConcurrency(images, concurrency, async (image) => {
      const digest = await client.manifestDigest(image.repository, image.reference);
      return { ...image, digest, state: imageCheckState(digest, image.expectedDigest) };
    });
  } finally {
    client.close();
  }
}
