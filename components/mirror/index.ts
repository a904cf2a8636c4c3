import * as pulumi from "@pulumi/pulumi";
import { renderRepoList } from "../../core/images/repo-list";
import { withoutPropertyStackTraces } from "../../core/runtime/stack-traces";
import { type LockDocument } from "./actions/archive";
import { readImportLock } from "./actions/archive-diff";
import { planImageCopies, type ImageDestination, type ImageSource } from "./plan";
import { archiveLockProviderModule, mirroredImageProviderModule } from "./provider";
import type { CopyLocation } from "./actions/skopeo";
import {
  planTransfer,
  transferPlanLine,
  transferSummaryLine,
  type CopyReport,
  type TransferPlan,
} from "./progress";
import type { CopyCredentials, MirroredImageInputs, PlatformBytes } from "./provider-runtime";

export type { ImageDestination, ImageSource } from "./plan";
export type { LockDocument } from "./actions/archive";

/** Arguments of {@link ImageMirror}. The image list and places are plain: they decide the resources. */
export interface ImageMirrorArgs {
  /** Images to mirror, as canonical upstream references (see core/images `assembleImageSet`). */
  readonly images: readonly string[];
  /** Where images are read from. Default: each from its upstream registry. */
  readonly source?: ImageSource;
  /** The mirror registry, or an archive directory to carry across the gap (export). */
  readonly destination: ImageDestination;
  /** Password of the destination registry's user (`destination.access.username`). */
  readonly mirrorPassword?: pulumi.Input<string>;
  /** Passwords of source registries, by registry host (an upstream name or the source registry). */
  readonly sourcePasswords?: Record<string, pulumi.Input<string>>;
  /** Path prefix inside the mirror per upstream registry, to separate colliding upstreams. */
  readonly upstreamPrefixes?: Record<string, string>;
  /** `os/arch[/variant]` to copy one platform; default every platform (the whole index). */
  readonly platform?: string;
  /**
   * `os/arch[/variant]` platforms to copy out of multi-arch images: the tag gets a smaller index
   * of those (its own digest, which the mapping records). Images pinned by digest keep their
   * whole index. Not together with `platform`. Default every platform.
   */
  readonly platforms?: readonly string[];
  /** Pinned digests; read from the archive's lock file automatically when the source is an archive. */
  readonly lock?: LockDocument;
  /** Whole-copy retries on network failures (with exponential backoff). Default 3. */
  readonly retries?: number;
  /** Delete mirrored manifests on destroy (for external registries; the registry must allow deletes). */
  readonly deleteOnDestroy?: boolean;
}

/** The location with the password for its registry host, when one is known. */
function withAccessPassword(
  location: CopyLocation,
  passwordFor: (host: string) => string | undefined,
): CopyLocation {
  if (location.transport !== "docker") return location;
  const password = passwordFor(location.access.host);
  return password === undefined
    ? location
    : { ...location, access: { ...location.access, password } };
}

/**
 * A dynamic resource per image, so previews list exactly which images are added or removed.
 * Declared as `pulumi.dynamic.Resource` declares one (its type token and `__provider`), with
 * the provider module as fixed text (see provider.ts).
 */
class MirroredImage extends pulumi.CustomResource {
  declare public readonly digest: pulumi.Output<string>;
  declare public readonly source: pulumi.Output<string>;
  declare public readonly mirrorReference: pulumi.Output<string>;
  declare public readonly lastCopy: pulumi.Output<CopyReport | undefined>;
  /** With platforms chosen: bytes of every platform, of the chosen ones, and saved (known at preview). */
  declare public readonly platformBytes: pulumi.Output<PlatformBytes | undefined>;

  constructor(name: string, inputs: pulumi.Inputs, opts: pulumi.CustomResourceOptions) {
    super(
      "pulumi-nodejs:dynamic/mirror:MirroredImage",
      name,
      {
        ...inputs,
        __provider: mirroredImageProviderModule,
        digest: undefined,
        lastCopy: undefined,
        platformBytes: undefined,
      },
      opts,
    );
  }
}

/** The archive's lock file, declared like {@link MirroredImage}. */
class ArchiveLock extends pulumi.CustomResource {
  constructor(name: string, inputs: pulumi.Inputs, opts: pulumi.CustomResourceOptions) {
    super(
      "pulumi-nodejs:dynamic/mirror:ArchiveLock",
      name,
      { ...inputs, __provider: archiveLockProviderModule },
      opts,
    );
  }
}

/**
 * The set of mirrored images: every image copied by digest (whole multi-arch index unless a
 * platform is chosen) from its source into the mirror registry, or into an OCI archive with a
 * lock file on the connected side.
 */
export class ImageMirror extends pulumi.ComponentResource {
  /** Source reference -> mirror reference with digest (`host/path:tag@sha256:...`). */
  public readonly mapping: pulumi.Output<Record<string, string>>;
  /** Source reference -> digest, as written to an archive's lock file. */
  public readonly lock: pulumi.Output<LockDocument>;
  /** The KUBE_TEST_REPO_LIST document for the mirror (undefined for an archive destination). */
  public readonly repoList: pulumi.Output<string | undefined>;
  /** Upstream registries the images come from: each needs mirror configuration on the nodes. */
  public readonly upstreamRegistries: pulumi.Output<string[]>;
  public readonly imageCount: pulumi.Output<number>;
  /** Before copying: images already in the destination, images to copy and their bytes. */
  public readonly transferPlan: pulumi.Output<TransferPlan>;
  /**
   * Bytes not copied because platforms were chosen (images whose size could be read); shown by
   * a preview. 0 when every platform is copied.
   */
  public readonly platformBytesSaved: pulumi.Output<number>;

  constructor(name: string, args: ImageMirrorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("airgap:mirror:ImageMirror", name, {}, opts);

    const source = args.source ?? { kind: "upstream" };
    const lock =
      args.lock ?? (source.kind === "archive" ? readImportLock(source.directory) : undefined);
    const plan = planImageCopies({
      images: args.images,
      source,
      destination: args.destination,
      upstreamPrefixes: args.upstreamPrefixes,
      platform: args.platform,
      platforms: args.platforms,
      lock,
    });
    const retries = args.retries ?? 3;
    if (!Number.isInteger(retries) || retries < 0 || retries > 10) {
      throw new Error(`ImageMirror: retries: ${retries} must be an integer from 0 to 10`);
    }
    const deleteOnDestroy = args.deleteOnDestroy ?? false;

    // One credentials output per source password, shared by the images that use it: hundreds of
    // images come from a handful of registries.
    const credentialsFor = new Map<
      pulumi.Input<string> | undefined,
      pulumi.Output<CopyCredentials>
    >();
    const sharedCredentials = (fromPassword: pulumi.Input<string> | undefined) => {
      let credentials = credentialsFor.get(fromPassword);
      if (!credentials) {
        credentials = pulumi.secret(
          pulumi
            .all([fromPassword, args.mirrorPassword])
            .apply(([fromValue, toValue]): CopyCredentials => ({
              ...(fromValue !== undefined ? { fromPassword: fromValue } : {}),
              ...(toValue !== undefined ? { toPassword: toValue } : {}),
            })),
        );
        credentialsFor.set(fromPassword, credentials);
      }
      return credentials;
    };
    const images = withoutPropertyStackTraces(() =>
      plan.copies.map((copy) => {
        const from = copy.request.from;
        const fromHost = from.transport === "docker" ? from.access.host : undefined;
        const fromPassword =
          fromHost !== undefined
            ? (args.sourcePasswords?.[fromHost] ??
              args.sourcePasswords?.[copy.source.split("/")[0]])
            : undefined;
        const credentials = sharedCredentials(fromPassword);
        const inputs: Omit<MirroredImageInputs, "credentials"> & {
          credentials: pulumi.Input<CopyCredentials>;
        } = {
          source: copy.source,
          request: copy.request,
          expectedDigest: copy.expectedDigest,
          mirrorReference: copy.mirrorReference,
          retries,
          deleteOnDestroy,
          credentials,
        };
        return new MirroredImage(`${name}-${copy.source}`, inputs, {
          parent: this,
          // Children do not inherit the component's dependsOn; copies must wait for the registry.
          dependsOn: opts?.dependsOn,
          additionalSecretOutputs: ["credentials"],
          // Deleting by digest after a replacement copied the same digest would remove it again.
          deleteBeforeReplace: deleteOnDestroy,
        });
      }),
    );

    // Source and mirror reference are known here; only the digests come from the copies.
    const digests = pulumi.all(images.map((image) => image.digest));
    const lockedImages = digests.apply((values) =>
      plan.copies.map((copy, index) => ({ source: copy.source, digest: values[index] })),
    );
    this.lock = lockedImages.apply((entries) => ({
      lockVersion: 1 as const,
      images: [...entries].sort((a, b) => (a.source < b.source ? -1 : 1)),
    }));
    this.mapping = digests.apply((values) =>
      Object.fromEntries(
        plan.copies.map((copy, index) => [
          copy.source,
          copy.mirrorReference.includes("@")
            ? copy.mirrorReference
            : `${copy.mirrorReference}@${values[index]}`,
        ]),
      ),
    );

    if (args.destination.kind === "archive") {
      new ArchiveLock(
        `${name}-lock`,
        { directory: args.destination.directory, images: lockedImages },
        { parent: this, dependsOn: images },
      );
      this.repoList = pulumi.output(undefined);
    } else {
      this.repoList = pulumi.output(
        renderRepoList({
          mirrorHost: args.destination.nodeEndpoint,
          upstreamPrefixes: args.upstreamPrefixes,
        }),
      );
    }
    this.upstreamRegistries = pulumi.output([...plan.mapping.upstreamRegistries]);
    this.imageCount = pulumi.output(plan.copies.length);

    // Progress in the update's output: what is left to copy (preview and up), and once every
    // copy is done, what this update moved.
    const updateStartedAt = new Date();
    const destinationName =
      args.destination.kind === "archive"
        ? `the archive ${args.destination.directory}`
        : "the mirror";
    const passwords = pulumi.all([args.mirrorPassword, pulumi.all(args.sourcePasswords ?? {})]);
    this.transferPlan = pulumi.unsecret(
      passwords.apply(async ([mirrorPassword, sourcePasswords]) => {
        const transfer = await planTransfer(
          plan.copies.map((copy) => ({
            request: {
              ...copy.request,
              from: withAccessPassword(
                copy.request.from,
                (host) => sourcePasswords[host] ?? sourcePasswords[copy.source.split("/")[0]],
              ),
              to: withAccessPassword(copy.request.to, () => mirrorPassword),
            },
            expectedDigest: copy.expectedDigest,
          })),
        );
        await pulumi.log.info(transferPlanLine(transfer, destinationName), this);
        return transfer;
      }),
    );
    if (!pulumi.runtime.isDryRun() && images.length > 0) {
      pulumi
        .all(images.map((image) => image.lastCopy))
        .apply((reports) => pulumi.log.info(transferSummaryLine(reports, updateStartedAt), this));
    }
    const choosesPlatforms = plan.copies.some(
      (copy) => copy.request.platform !== undefined || copy.request.platforms !== undefined,
    );
    this.platformBytesSaved = choosesPlatforms
      ? pulumi
          .all(images.map((image) => image.platformBytes))
          .apply((entries) => entries.reduce((total, entry) => total + (entry?.saved ?? 0), 0))
      : pulumi.output(0);
    this.registerOutputs({
      transferPlan: this.transferPlan,
      mapping: this.mapping,
      lock: this.lock,
      repoList: this.repoList,
      upstreamRegistries: this.upstreamRegistries,
      imageCount: this.imageCount,
      platformBytesSaved: this.platformBytesSaved,
    });
  }
}
