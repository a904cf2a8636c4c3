import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";

/**
 * The few registry API calls the actions make themselves: manifest HEAD (is an image present,
 * with which digest) and manifest DELETE. Copies are skopeo's job; these calls exist so that
 * checking hundreds of images is one process with pooled connections instead of one skopeo
 * process per image.
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
  ) {
    super(message);
    this.name = "RegistryRequestError";
  }
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A client for one registry: keep-alive connections and a cached bearer token per scope. */
export class RegistryClient {
  private readonly agent: http.Agent | https.Agent;
  private readonly tokens = new Map<string, string>();

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

  private request(method: string, url: string, headers: Record<string, string>): Promise<Response> {
    const module = url.startsWith("https:") ? https : http;
    return new Promise((resolve, reject) => {
      const request = module.request(
        url,
        {
          method,
          headers,
          agent: url.startsWith(`${this.access.scheme}:`) ? this.agent : undefined,
          timeout: 30000,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks).toString("utf8"),
            }),
          );
          response.on("error", reject);
        },
      );
      request.on("timeout", () =>
        request.destroy(new Error(`timed out after 30s: ${method} ${url}`)),
      );
      request.on("error", (error) =>
        reject(
          new RegistryRequestError(`cannot reach registry ${this.access.host}: ${error.message}`),
        ),
      );
      request.end();
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
    url.searchParams.set("scope", parameters.scope ?? scope);
    const basic = this.basicAuthorization();
    const response = await this.request(
      "GET",
      url.toString(),
      basic ? { Authorization: basic } : {},
    );
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

  /** Sends a request to /v2/..., authenticating once on 401 and reusing the result. */
  private async v2(
    method: string,
    path: string,
    scope: string,
    headers: Record<string, string> = {},
  ) {
    const url = `${this.access.scheme}://${this.access.host}/v2/${path}`;
    const cached = this.tokens.get(scope);
    let response = await this.request(
      method,
      url,
      cached ? { ...headers, Authorization: cached } : headers,
    );
    if (response.status === 401) {
      const authorization = await this.authorize(
        response.headers["www-authenticate"] as string | undefined,
        scope,
      );
      this.tokens.set(scope, authorization);
      response = await this.request(method, url, { ...headers, Authorization: authorization });
      if (response.status === 401) {
        throw new RegistryRequestError(
          `registry ${this.access.host} refused the credentials (401)`,
          401,
        );
      }
    }
    return response;
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
   * A manifest (by tag or digest), the referrers of a digest, or a small JSON blob such as an
   * image config, as text. Blob
   * redirects (to the registry's storage) are followed once, without our credentials.
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
      const url = new URL(location, `${this.access.scheme}://${this.access.host}/`).toString();
      response = await this.request("GET", url, {});
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
