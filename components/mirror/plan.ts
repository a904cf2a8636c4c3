import { parseImageReference, type ImageReference } from "../../core/images/reference";
import { planMirrorMapping, type MirrorPlan } from "../../core/images/mapping";
import { platformPattern } from "../../core/images/platforms";
import type { LockDocument } from "./actions/archive";
import type { RegistryAccess } from "./actions/registry-client";
import type { CopyLocation, CopyRequest } from "./actions/skopeo";

/**
 * Turns the image set and where images come from / go to into one copy request per image.
 * Pure: the component declares one resource per request; the actions execute them.
 */

/** Where the images are read from. */
export type ImageSource =
  | {
      /** Each image from its own upstream registry; `registries` overrides how one is reached
       * (a corporate proxy, a registry playing that upstream in a lab). */
      kind: "upstream";
      registries?: Record<string, RegistryAccess>;
    }
  | {
      /** Another registry that already holds the images at their mirror paths. */
      kind: "registry";
      access: RegistryAccess;
    }
  | {
      /** An OCI layout directory with a lock file, carried across the gap. */
      kind: "archive";
      directory: string;
    };

/** Where the images are written to. */
export type ImageDestination =
  | {
      kind: "registry";
      /** How this machine pushes to the mirror (e.g. 127.0.0.1:5001). */
      access: RegistryAccess;
      /** host:port nodes use for the mirror (what the mapping and repo list name). */
      nodeEndpoint: string;
    }
  | {
      /** Export: an OCI layout directory (plus lock file) to carry across the gap. */
      kind: "archive";
      directory: string;
    };

export interface ImageCopyPlanInput {
  /** Canonical upstream references (already deduplicated and validated). */
  images: readonly string[];
  source: ImageSource;
  destination: ImageDestination;
  /** Path prefix inside the mirror per upstream registry (to separate colliding upstreams). */
  upstreamPrefixes?: Record<string, string>;
  /** `os/arch[/variant]` to copy one platform; default every platform of the index. */
  platform?: string;
  /**
   * `os/arch[/variant]` platforms to copy out of multi-arch images (a smaller index under the
   * tag; one platform: its image manifest). Images pinned by digest keep their whole index,
   * since a subset would not have the digest they name. Default every platform.
   */
  platforms?: readonly string[];
  /** Pinned digests (from an archive's lock, or a previous run): sources are read by digest. */
  lock?: LockDocument;
}

export interface ImageCopy {
  /** Canonical upstream reference. */
  source: string;
  request: CopyRequest;
  /** The digest the copy must produce, when it is known in advance. */
  expectedDigest?: string;
  /** The mirror reference nodes resolve (node endpoint), or the archive ref name. */
  mirrorReference: string;
}

export interface ImageCopyPlan {
  mapping: MirrorPlan;
  copies: ImageCopy[];
}

export class ImageCopyPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageCopyPlanError";
  }
}

function tagOrDigest(reference: ImageReference, pinned: string | undefined): string {
  return pinned ?? reference.digest ?? reference.tag ?? "latest";
}

/** The copy requests for an image set. Pure. */
export function planImageCopies(input: ImageCopyPlanInput): ImageCopyPlan {
  if (input.platform !== undefined && !platformPattern.test(input.platform)) {
    throw new ImageCopyPlanError(
      `platform '${input.platform}' must be os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8); list several platforms in platforms`,
    );
  }
  const platforms = [...new Set(input.platforms ?? [])];
  for (const platform of platforms) {
    if (!platformPattern.test(platform)) {
      throw new ImageCopyPlanError(
        `platforms: '${platform}' must be os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8)`,
      );
    }
  }
  if (input.platform !== undefined && platforms.length > 0) {
    throw new ImageCopyPlanError(
      `platform and platforms are both set; list every platform in platforms (here ${[input.platform, ...platforms].join(", ")})`,
    );
  }
  if (input.platform !== undefined) platforms.push(input.platform);
  if (platforms.length > 1 && input.destination.kind === "archive") {
    throw new ImageCopyPlanError(
      `platforms: ${platforms.join(", ")}: an archive holds one platform or every platform of an image; choose one, or copy every platform`,
    );
  }
  const lockDigests = new Map(
    (input.lock?.images ?? []).map((image) => [image.source, image.digest]),
  );
  const references = input.images.map((image) => parseImageReference(image));
  const mirrorHost =
    input.destination.kind === "registry" ? input.destination.nodeEndpoint : "archive.invalid";
  const mapping = planMirrorMapping(references, {
    mirrorHost,
    upstreamPrefixes: input.upstreamPrefixes,
  });

  const copies = mapping.entries.map((entry): ImageCopy => {
    const reference = entry.reference;
    const pinned = lockDigests.get(entry.source);
    if (reference.digest && pinned && reference.digest !== pinned) {
      throw new ImageCopyPlanError(
        `${entry.source}: the lock pins ${pinned}, the reference itself ${reference.digest}`,
      );
    }
    const expectedDigest = reference.digest ?? pinned;

    let from: CopyLocation;
    switch (input.source.kind) {
      case "upstream": {
        const override = input.source.registries?.[entry.upstreamRegistry];
        from = {
          transport: "docker",
          access: override ?? { host: entry.upstreamRegistry, scheme: "https" },
          repository: reference.repository,
          reference: tagOrDigest(reference, pinned),
        };
        break;
      }
      case "registry":
        from = {
          transport: "docker",
          access: input.source.access,
          repository: entry.mirrorPath,
          reference: tagOrDigest(reference, pinned),
        };
        break;
      case "archive":
        if (!expectedDigest) {
          throw new ImageCopyPlanError(
            `${entry.source}: not in the archive's lock file; export it on the connected side (or remove it from the image set)`,
          );
        }
        from = { transport: "oci", directory: input.source.directory, refName: entry.source };
        break;
    }

    let to: CopyLocation;
    let mirrorReference: string;
    if (input.destination.kind === "registry") {
      // Keep the tag: the e2e suite and the pod specs pull by tag.
      to = {
        transport: "docker",
        access: input.destination.access,
        repository: entry.mirrorPath,
        reference: reference.tag ?? reference.digest ?? "latest",
      };
      mirrorReference = `${input.destination.nodeEndpoint}/${entry.mirrorPath}:${reference.tag ?? "latest"}`;
      if (!reference.tag)
        mirrorReference = `${input.destination.nodeEndpoint}/${entry.mirrorPath}@${reference.digest}`;
    } else {
      to = { transport: "oci", directory: input.destination.directory, refName: entry.source };
      mirrorReference = entry.source;
    }
    // A digest names the whole index: choosing platforms out of it would push another digest.
    const chosen = expectedDigest ? [] : platforms;
    return {
      source: entry.source,
      request: {
        source: entry.source,
        from,
        to,
        ...(chosen.length === 1 ? { platform: chosen[0] } : {}),
        ...(chosen.length > 1 ? { platforms: chosen } : {}),
      },
      expectedDigest,
      mirrorReference,
    };
  });
  return { mapping, copies };
}
