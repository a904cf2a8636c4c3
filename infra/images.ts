import { readFileSync } from "node:fs";
import { assembleImageSet, ImageSetError, type ImageSet } from "../core/images/image-set";
import { ImageListError } from "../core/images/list-file";
import { UnknownKubernetesVersionError } from "../core/images/catalog";
import { InvalidKubernetesVersionError } from "../core/images/kubernetes-version";
import {
  MirrorCollisionError,
  MirrorMappingError,
  planMirrorMapping,
} from "../core/images/mapping";
import { ArchiveError } from "../components/mirror/actions/archive";
import { ImageCopyPlanError } from "../components/mirror/plan";
import { k3sSystemImageList } from "../core/images/k3s-images";
import { ConfigError, type StackConfig } from "./config";
import type { StackE2eImages } from "./e2e-images";

/** Reads a list file named by config; the error names the key, the index and the path. */
export type ListFileReader = (path: string) => string;

/**
 * The stack's image set: the suite's own list (read from the conformance image's e2e.test, or
 * else the shipped catalog for its Kubernetes version), the conformance and results images,
 * extra images and list files. Errors name the config key that brought the bad value.
 */
export function imageSetForStack(
  config: StackConfig,
  project: string,
  readListFile: ListFileReader = (path) => readFileSync(path, "utf8"),
  e2eImages: StackE2eImages = { kind: "off" },
): ImageSet {
  const key = (name: string) => `${project}:${name}`;
  const listFiles = config.images.listFiles.map((file, index) => {
    try {
      return { name: file, text: readListFile(file) };
    } catch (error) {
      throw new ConfigError(
        `${key("imagesListFiles")}[${index}]`,
        file,
        `a readable image list file (${(error as Error).message})`,
      );
    }
  });
  const k3sFile = config.images.k3sImagesFile;
  if (k3sFile !== undefined) {
    let text: string;
    try {
      text = readListFile(k3sFile);
    } catch (error) {
      throw new ConfigError(
        key("imagesK3sImagesFile"),
        k3sFile,
        `the k3s-images.txt of the cluster's k3s release, readable (${(error as Error).message})`,
      );
    }
    try {
      listFiles.push(k3sSystemImageList(text, k3sFile));
    } catch (error) {
      if (error instanceof ImageListError) {
        throw new ConfigError(key("imagesK3sImagesFile"), undefined, error.message);
      }
      throw error;
    }
  }
  if (e2eImages.kind === "derived") {
    listFiles.push({
      name: `${e2eImages.conformanceImage} e2e.test --list-images`,
      text: e2eImages.images.join("\n"),
    });
  }
  try {
    return assembleImageSet({
      kubernetesVersion: config.kubernetesVersion,
      conformanceImage: config.images.conformanceImage,
      resultsImage: config.images.resultsImage,
      extraImages: config.images.extra,
      extraImagesSource: key("imagesExtra"),
      listFiles,
      includeCatalog: config.images.includeCatalog && e2eImages.kind !== "derived",
    });
  } catch (error) {
    if (error instanceof ImageSetError) {
      // Option names of assembleImageSet -> config keys (extra images already carry theirs).
      const optionKeys: Record<string, string> = {
        kubernetesVersion: key("kubernetesVersion"),
        conformanceImage: key("imagesConformanceImage"),
        resultsImage: key("imagesResultsImage"),
      };
      throw new ConfigError(optionKeys[error.source] ?? error.source, undefined, error.reason);
    }
    if (error instanceof ImageListError) {
      throw new ConfigError(key("imagesListFiles"), undefined, error.message);
    }
    if (error instanceof UnknownKubernetesVersionError) {
      throw new ConfigError(
        key("kubernetesVersion"),
        config.kubernetesVersion,
        `a version the shipped image catalog has (${error.knownVersions.join(", ")}). For ` +
          `another version, write its image list on a connected machine ` +
          `(scripts/regenerate-catalog.sh ${config.kubernetesVersion} kubernetes-v${config.kubernetesVersion}.txt, ` +
          `or \`e2e.test --list-images\` from its conformance image), then set both ` +
          `${key("imagesListFiles")} to that file and ${key("imagesIncludeCatalog")} to false`,
      );
    }
    if (error instanceof InvalidKubernetesVersionError) {
      throw new ConfigError(key("kubernetesVersion"), config.kubernetesVersion, error.message);
    }
    throw error;
  }
}

/**
 * Runs `declare` (planning or declaring the mirror) and re-raises what the mirror reports about
 * its arguments as a config error naming the stack key to change and how.
 */
export function withImageConfigKeys<T>(config: StackConfig, project: string, declare: () => T): T {
  const key = (name: string) => `${project}:${name}`;
  try {
    return declare();
  } catch (error) {
    if (error instanceof MirrorCollisionError) {
      const prefixes = { ...config.mirror.upstreamPrefixes, ...error.suggestedUpstreamPrefixes };
      const entries = Object.entries(prefixes).map(([upstream, prefix]) => `${upstream}=${prefix}`);
      throw new ConfigError(
        key("mirrorUpstreamPrefixes"),
        undefined,
        `${error.described}. The mirror drops the upstream host from the path, so give the ` +
          `colliding upstream its own path in the mirror: ${key("mirrorUpstreamPrefixes")}: ` +
          `${JSON.stringify(entries)} (a list of upstream=prefix; the nodes are configured ` +
          `for the prefix by the program)`,
      );
    }
    if (error instanceof MirrorMappingError) {
      throw new ConfigError(key("mirrorUpstreamPrefixes"), undefined, error.message);
    }
    if (error instanceof ArchiveError || error instanceof ImageCopyPlanError) {
      if (config.images.source.kind === "archive") {
        throw new ConfigError(
          key("imagesArchiveDirectory"),
          config.images.source.directory,
          `an archive exported by an export stack (imagesDestination archive) with every image ` +
            `of this stack: ${error.message}`,
        );
      }
    }
    throw error;
  }
}

/**
 * Upstream registries the stack's images come from, each with its path prefix in the mirror:
 * what the nodes must be told to pull through the mirror.
 */
export function upstreamsForStack(
  config: StackConfig,
  project: string,
  mirrorHost: string,
  e2eImages: StackE2eImages = { kind: "off" },
): { registry: string; pathPrefix?: string }[] {
  const imageSet = imageSetForStack(config, project, undefined, e2eImages);
  const mapping = withImageConfigKeys(config, project, () =>
    planMirrorMapping(
      imageSet.images.map((image) => image.reference),
      { mirrorHost, upstreamPrefixes: config.mirror.upstreamPrefixes },
    ),
  );
  return mapping.upstreamRegistries.map((registry) => {
    const pathPrefix = config.mirror.upstreamPrefixes[registry];
    return pathPrefix ? { registry, pathPrefix } : { registry };
  });
}
