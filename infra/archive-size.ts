import * as pulumi from "@pulumi/pulumi";
import { renderSizeReport } from "../components/mirror/actions/archive-size";
import {
  measureRegistryImages,
  type RegistryImage,
} from "../components/mirror/actions/registry-size";
import { planImageCopies } from "../components/mirror/plan";
import type { StackConfig } from "./config";

/** What an export stack will write, as a stack output (sizes in bytes). */
export interface ArchiveSizeSummary {
  totalBytes: number;
  naiveBytes: number;
  platforms: Record<string, number>;
  images: number;
  unmeasured: { image: string; reason: string }[];
  /** Signatures, attestations, SBOMs and referrers found beside the images but not carried. */
  droppedCompanions: string[];
}

/**
 * Where each of the stack's images is read from (its upstream, an override, or the source
 * registry), for measuring before anything is copied. Pure.
 */
export function registryImagesForStack(
  config: StackConfig,
  images: readonly string[],
  sourcePassword?: string,
): RegistryImage[] {
  const source = config.images.source;
  if (source.kind === "archive") return [];
  const plan = planImageCopies({
    images,
    source,
    destination: { kind: "archive", directory: config.images.archiveDirectory ?? "/nonexistent" },
    upstreamPrefixes: config.mirror.upstreamPrefixes,
    platform: config.images.platform,
  });
  const sourceHost = source.kind === "registry" ? source.access.host : undefined;
  return plan.copies.flatMap((copy) => {
    const from = copy.request.from;
    if (from.transport !== "docker") return [];
    const access =
      sourcePassword !== undefined && from.access.host === sourceHost
        ? { ...from.access, password: sourcePassword }
        : from.access;
    return [{ image: copy.source, access, repository: from.repository, reference: from.reference }];
  });
}

/**
 * The size report of an export stack's images, read from their source registries while the
 * program is evaluated, so `pulumi preview` shows it before anything is written. An image whose
 * registry cannot be read is listed as not measured; the preview goes on.
 */
export function archiveSizeAtPreview(
  config: StackConfig,
  images: readonly string[],
): pulumi.Output<ArchiveSizeSummary> {
  return pulumi.all([config.images.sourcePassword]).apply(async ([password]) => {
    const report = await measureRegistryImages(registryImagesForStack(config, images, password));
    pulumi.log.info(
      `archive size of the image set, before anything is written:\n${renderSizeReport(report)}`,
    );
    return {
      totalBytes: report.totalBytes,
      naiveBytes: report.naiveBytes,
      platforms: report.platforms,
      images: report.images.length,
      unmeasured: report.unmeasured,
      droppedCompanions: report.droppedCompanions.map(
        (companion) => `${companion.reference} (${companion.kind} of ${companion.image})`,
      ),
    };
  });
}
