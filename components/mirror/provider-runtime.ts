import type * as pulumi from "@pulumi/pulumi";
import { existsSync, rmSync } from "node:fs";
import * as path from "node:path";
import {
  archivedDigest,
  lockFileName,
  verifyArchivedImage,
  writeLock,
  type LockedImage,
} from "./actions/archive";
import {
  RegistryClient,
  RegistryRequestError,
  type RegistryAccess,
} from "./actions/registry-client";
import { copyImage, type CopyLocation, type CopyRequest } from "./actions/skopeo";

/**
 * What the mirror's dynamic providers do (see provider.ts for how the engine reaches this code).
 * Unlike a command resource, a dynamic provider can look at the mirror during `pulumi preview`:
 * an image deleted behind Pulumi's back shows up as an update and is copied again on `up`.
 */

/** Passwords kept apart from the copy request so they can be stored as a secret. */
export interface CopyCredentials {
  fromPassword?: string;
  toPassword?: string;
}

/** Inputs of one mirrored image. */
export interface MirroredImageInputs {
  /** Canonical upstream reference (shown in previews). */
  source: string;
  /** Where it is read from and written to, without passwords. */
  request: CopyRequest;
  /** The digest the copy must produce, when known in advance (pinned or locked). */
  expectedDigest?: string;
  /** Reference nodes resolve (mirror endpoint as nodes see it), or the archive ref name. */
  mirrorReference: string;
  /** Whole-copy retries on network failures. */
  retries: number;
  /** Delete the manifest from the registry when the resource is deleted. */
  deleteOnDestroy: boolean;
  credentials: CopyCredentials;
}

export interface MirroredImageOutputs extends MirroredImageInputs {
  /** Digest the destination holds. */
  digest: string;
}

function withPassword(location: CopyLocation, password: string | undefined): CopyLocation {
  if (location.transport !== "docker" || password === undefined) return location;
  return { ...location, access: { ...location.access, password } };
}

/** The copy request with the passwords put back. Pure. */
export function requestWithCredentials(
  request: CopyRequest,
  credentials: CopyCredentials,
): CopyRequest {
  return {
    ...request,
    from: withPassword(request.from, credentials?.fromPassword),
    to: withPassword(request.to, credentials?.toPassword),
  };
}

/** The parts whose change means a different image in a different place: a replacement. Pure. */
export function replacementKeys(olds: MirroredImageInputs, news: MirroredImageInputs): string[] {
  const identity = (inputs: MirroredImageInputs) => {
    const to = inputs.request.to;
    return JSON.stringify({
      source: inputs.source,
      to:
        to.transport === "docker"
          ? [to.access.host, to.repository, to.reference]
          : [path.resolve(to.directory), to.refName],
      platform: inputs.request.platform ?? null,
    });
  };
  if (identity(olds) === identity(news)) return [];
  const keys = ["source", "request"];
  return olds.source === news.source ? ["request"] : keys;
}

function registryClient(access: RegistryAccess): RegistryClient {
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

/** Digest the destination holds for the image, or undefined when it is gone. */
export async function destinationDigest(request: CopyRequest): Promise<string | undefined> {
  const to = request.to;
  if (to.transport === "oci") {
    const digest = archivedDigest(to.directory, to.refName);
    const [algorithm, hex] = (digest ?? ":").split(":");
    return digest && existsSync(path.join(to.directory, "blobs", algorithm, hex))
      ? digest
      : undefined;
  }
  return registryClient(to.access).manifestDigest(to.repository, to.reference);
}

/** Copies the image (verifying an archive source first) and checks the resulting digest. */
export async function performCopy(inputs: MirroredImageInputs): Promise<MirroredImageOutputs> {
  const request = requestWithCredentials(inputs.request, inputs.credentials);
  if (request.from.transport === "oci") {
    await verifyArchivedImage(request.from.directory, request.from.refName, inputs.expectedDigest);
  }
  const digest = await copyImage(request, { retries: inputs.retries });
  if (inputs.expectedDigest && digest !== inputs.expectedDigest) {
    throw new Error(
      `${inputs.source}: copied ${digest}, but ${inputs.expectedDigest} was expected (the source changed since it was pinned)`,
    );
  }
  return { ...inputs, digest };
}

/** Whether the stored passwords differ from the configured ones. Pure. */
export function credentialsChanged(
  olds: Pick<MirroredImageInputs, "credentials">,
  news: Pick<MirroredImageInputs, "credentials">,
): boolean {
  const canonical = (credentials: CopyCredentials | undefined) =>
    JSON.stringify([credentials?.fromPassword ?? null, credentials?.toPassword ?? null]);
  return canonical(olds.credentials) !== canonical(news.credentials);
}

function isAuthStatus(status: number): boolean {
  return status === 401 || status === 403;
}

/** The provider behind each mirrored image. */
export const mirroredImageRuntime: pulumi.dynamic.ResourceProvider = {
  async create(inputs: MirroredImageInputs) {
    const outs = await performCopy(inputs);
    return { id: `${inputs.mirrorReference}@${outs.digest}`, outs };
  },

  async diff(_id: string, olds: MirroredImageOutputs, news: MirroredImageInputs) {
    const replaces = replacementKeys(olds, news);
    if (replaces.length > 0)
      return { changes: true, replaces, deleteBeforeReplace: news.deleteOnDestroy };
    if (news.expectedDigest && news.expectedDigest !== olds.digest) {
      return {
        changes: true,
        replaces: ["expectedDigest"],
        deleteBeforeReplace: news.deleteOnDestroy,
      };
    }
    // Drift: the image must still be where we put it, with the digest we recorded.
    const rotated = credentialsChanged(olds, news);
    let present: string | undefined;
    try {
      present = await destinationDigest(requestWithCredentials(news.request, news.credentials));
    } catch (error) {
      if (!(error instanceof RegistryRequestError)) throw error;
      // Unreachable right now (e.g. the registry is being replaced): let `up` run the idempotent
      // copy. Refused credentials after a password change: the registry takes the new password
      // only once `up` has replaced it, so the update stores the new credentials then.
      if (error.status === undefined) return { changes: true };
      if (isAuthStatus(error.status) && rotated) return { changes: true };
      throw error;
    }
    return { changes: present !== olds.digest || rotated };
  },

  async update(_id: string, olds: MirroredImageOutputs, news: MirroredImageInputs) {
    // The image is still there (e.g. only the credentials changed): record, copy nothing.
    if (olds.digest) {
      const present = await destinationDigest(
        requestWithCredentials(news.request, news.credentials),
      ).catch(() => undefined);
      if (present === olds.digest) return { outs: { ...news, digest: olds.digest } };
    }
    return { outs: await performCopy(news) };
  },

  async read(id: string, props: MirroredImageOutputs) {
    // Refresh records what the destination holds now: "" when the image is gone, or when the
    // registry cannot be reached at all (the next `up` copies it again).
    let digest: string | undefined;
    try {
      digest = await destinationDigest(requestWithCredentials(props.request, props.credentials));
    } catch (error) {
      if (!(error instanceof RegistryRequestError) || error.status !== undefined) throw error;
      digest = undefined;
    }
    return { id, props: { ...props, digest: digest ?? "" } };
  },

  async delete(_id: string, props: MirroredImageOutputs) {
    const to = requestWithCredentials(props.request, props.credentials).to;
    if (!props.deleteOnDestroy || to.transport !== "docker" || !props.digest) return;
    const client = registryClient(to.access);
    // Pinned by digest: the manifest is this resource's alone. By tag: delete the tag, never
    // the other tags that share its digest.
    if (to.reference.includes(":")) await client.deleteManifest(to.repository, props.digest);
    else await client.deleteTag(to.repository, to.reference, props.digest);
  },
};

export interface ArchiveLockInputs {
  directory: string;
  images: LockedImage[];
}

/** Writes the archive's lock file once every image is in; removes it on delete. */
export const archiveLockRuntime: pulumi.dynamic.ResourceProvider = {
  async create(inputs: ArchiveLockInputs) {
    return { id: writeLock(inputs.directory, inputs.images), outs: inputs };
  },
  async update(_id: string, _olds: ArchiveLockInputs, news: ArchiveLockInputs) {
    writeLock(news.directory, news.images);
    return { outs: news };
  },
  async delete(_id: string, props: ArchiveLockInputs) {
    rmSync(path.join(props.directory, lockFileName), { force: true });
  },
};
