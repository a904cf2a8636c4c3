import * as pulumi from "@pulumi/pulumi";
import { existsSync, rmSync } from "node:fs";
import * as path from "node:path";
import {
  archivedDigest,
  lockFileName,
  verifyArchivedImage,
  writeLock,
  type LockedImage,
} from "./actions/archive";
import { RegistryRequestError, sharedRegistryClient } from "./actions/registry-client";
import {
  copyRegistryImage,
  emptyCopyStats,
  platformBytes,
  UnsupportedByCopierError,
  type RegistryCopyStats,
} from "./actions/registry-copy";
import { copyImage, type CopyLocation, type CopyOptions, type CopyRequest } from "./actions/skopeo";
import { copyReportLine, imageBytes, type CopyReport } from "./progress";

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

/** Bytes of an image's platforms, read at preview when platforms are chosen. */
export interface PlatformBytes {
  /** Every platform of the index. */
  all: number;
  /** The chosen platforms: what is copied. */
  chosen: number;
  /** What choosing platforms saves: all - chosen. */
  saved: number;
}

/** Inputs after `check`: the same, plus the platform bytes when platforms are chosen. */
export interface CheckedMirroredImageInputs extends MirroredImageInputs {
  platformBytes?: PlatformBytes;
}

export interface MirroredImageOutputs extends MirroredImageInputs {
  /** Digest the destination holds. */
  digest: string;
  /** The last copy this resource made: bytes, retries, time (for the update's summary). */
  lastCopy?: CopyReport;
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
      platforms: inputs.request.platforms ?? null,
    });
  };
  if (identity(olds) === identity(news)) return [];
  const keys = ["source", "request"];
  return olds.source === news.source ? ["request"] : keys;
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
  return sharedRegistryClient(to.access).manifestDigest(to.repository, to.reference);
}

/**
 * Registry to registry: the in-process copier (shared connections, tokens and mounts across
 * every image of the stack). Archives, and manifests that need converting: skopeo.
 */
export async function copyWithEngine(
  request: CopyRequest,
  options: CopyOptions & { stats?: RegistryCopyStats },
): Promise<string> {
  if (request.from.transport === "docker" && request.to.transport === "docker") {
    try {
      return await copyRegistryImage(request, options);
    } catch (error) {
      if (!(error instanceof UnsupportedByCopierError)) throw error;
    }
  }
  return copyImage(request, options);
}

/**
 * Where the provider's progress lines go. `pulumi.log` reaches the update's output: through the
 * engine when the provider is connected to it, else through the provider's stdout, which the
 * engine shows. Replaceable for tests.
 */
export const progress = {
  info: (message: string): void => void pulumi.log.info(message),
  warn: (message: string): void => void pulumi.log.warn(message),
};

/** Bytes a finished copy moved: what the registry copier uploaded, else the image's blobs. */
async function copiedBytes(
  request: CopyRequest,
  stats: RegistryCopyStats,
): Promise<number | undefined> {
  if (stats.blobsUploaded + stats.blobsMounted + stats.blobsPresent > 0) return stats.bytesUploaded;
  const archiveSide = request.from.transport === "oci" ? request.from : request.to;
  if (archiveSide.transport !== "oci") return undefined;
  try {
    return await imageBytes(request, archiveSide);
  } catch {
    return undefined;
  }
}

/** Copies the image (verifying an archive source first) and checks the resulting digest. */
export async function performCopy(inputs: MirroredImageInputs): Promise<MirroredImageOutputs> {
  const request = requestWithCredentials(inputs.request, inputs.credentials);
  if (request.from.transport === "oci") {
    await verifyArchivedImage(request.from.directory, request.from.refName, inputs.expectedDigest);
  }
  const started = Date.now();
  const stats = emptyCopyStats();
  let retries = 0;
  const digest = await copyWithEngine(request, {
    retries: inputs.retries,
    stats,
    onRetry: ({ attempt, of, delayMs, reason }) => {
      retries++;
      progress.warn(
        `${inputs.source}: retry ${attempt} of ${of} in ${(delayMs / 1000).toFixed(0)} s (${reason})`,
      );
    },
  });
  if (inputs.expectedDigest && digest !== inputs.expectedDigest) {
    throw new Error(
      `${inputs.source}: copied ${digest}, but ${inputs.expectedDigest} was expected (the source changed since it was pinned)`,
    );
  }
  const lastCopy: CopyReport = {
    bytes: await copiedBytes(request, stats),
    retries,
    seconds: (Date.now() - started) / 1000,
    finishedAt: new Date().toISOString(),
  };
  progress.info(copyReportLine(inputs.source, lastCopy));
  return { ...inputs, digest, lastCopy };
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
  /**
   * Runs at preview too: with platforms chosen, records how many bytes the image's platforms
   * take and how many choosing saves, so the preview shows it. Read once per image (carried over
   * while the image stays the same); a source that cannot be read now leaves it out (the copy
   * reports why).
   */
  async check(olds: Partial<CheckedMirroredImageInputs>, news: MirroredImageInputs) {
    const chosen = news.request.platforms ?? (news.request.platform ? [news.request.platform] : []);
    if (chosen.length === 0) return { inputs: news };
    const same =
      olds.request !== undefined && replacementKeys(olds as MirroredImageInputs, news).length === 0;
    if (same && olds.platformBytes)
      return { inputs: { ...news, platformBytes: olds.platformBytes } };
    let bytes: { all: number; chosen: number } | undefined;
    try {
      bytes = await platformBytes(requestWithCredentials(news.request, news.credentials));
    } catch {
      bytes = undefined;
    }
    if (!bytes) return { inputs: news };
    const checked: CheckedMirroredImageInputs = {
      ...news,
      platformBytes: { ...bytes, saved: bytes.all - bytes.chosen },
    };
    return { inputs: checked };
  },

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
    const client = sharedRegistryClient(to.access);
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
  async diff(_id: string, olds: ArchiveLockInputs, news: ArchiveLockInputs) {
    return {
      changes:
        olds.directory !== news.directory ||
        JSON.stringify(olds.images) !== JSON.stringify(news.images),
    };
  },
  async update(_id: string, _olds: ArchiveLockInputs, news: ArchiveLockInputs) {
    writeLock(news.directory, news.images);
    return { outs: news };
  },
  async delete(_id: string, props: ArchiveLockInputs) {
    rmSync(path.join(props.directory, lockFileName), { force: true });
  },
};
