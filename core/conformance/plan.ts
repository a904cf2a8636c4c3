/**
 * The pure plan of a conformance run: arguments in, every decision out (names, images as the pod
 * pulls them from the mirror, the suite's flags, the images preflight must find, timeouts).
 * The component turns the plan into Kubernetes objects and command resources; the actions read
 * the same plan from their environment, so both sides agree by construction.
 *
 * Pure apart from reading the shipped image catalog (core/images).
 */

import * as path from "node:path";
import {
  CatalogFileError,
  ImageListError,
  ImageSetError,
  InvalidKubernetesVersionError,
  MirrorCollisionError,
  MirrorMappingError,
  UnknownKubernetesVersionError,
  assembleImageSet,
  catalogForKubernetesVersion,
  parseKubernetesVersion,
  planMirrorMapping,
  releaseTag,
  type ImageReference,
  type KubernetesVersion,
  type MirrorMappingEntry,
  type NamedImageList,
} from "../images";
import { ConformanceArgsError } from "./errors";
import { assertGoRegex } from "./go-regex";

/** A Kubernetes toleration (core/v1 Toleration). */
export interface Toleration {
  readonly key?: string;
  readonly operator?: "Exists" | "Equal";
  readonly value?: string;
  readonly effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  readonly tolerationSeconds?: number;
}

/** Plain, resolved arguments of a run (files already read, the version already detected). */
export interface ConformanceRunInput {
  /** The cluster's version as given or detected, e.g. "v1.31.4+k3s1". */
  readonly kubernetesVersion: string;
  /** Where the argument value came from, for errors: "kubernetesVersion" or "kubernetesVersion (auto)". */
  readonly kubernetesVersionSource?: string;
  readonly mirror: {
    /** The mirror as nodes (and so the pod) reach it, host[:port]. */
    readonly endpoint: string;
    readonly upstreamPrefixes?: Readonly<Record<string, string>>;
    /** Whether the mirror needs credentials (a pull secret is then created). */
    readonly authenticated: boolean;
  };
  readonly namespace?: string;
  readonly runId?: string;
  readonly focus?: string;
  readonly skip?: string;
  readonly parallelism?: number;
  readonly dryRun?: boolean;
  readonly extraArgs?: readonly string[];
  readonly ginkgoArgs?: readonly string[];
  readonly verbosity?: number;
  readonly tolerations?: readonly Toleration[];
  readonly conformanceImage?: string;
  readonly resultsImage?: string;
  readonly extraImages?: readonly string[];
  readonly imageListFiles?: readonly NamedImageList[];
  /**
   * The suite's images as the conformance image's e2e.test listed them; replaces the shipped
   * catalog.
   */
  readonly e2eImages?: readonly string[];
  readonly kubeconfig: string;
  readonly context?: string;
  readonly kubectl?: string;
  /** Results root; the run's files go to `<resultsDirectory>/<stack>/<runId>`. Absolute. */
  readonly resultsDirectory: string;
  readonly stack: string;
  readonly timeoutMinutes?: number;
  readonly startupTimeoutMinutes?: number;
  readonly progressIntervalSeconds?: number;
  /** How often the pod is polled; tests shorten it. Default 10. */
  readonly pollIntervalSeconds?: number;
  readonly failOnTestFailures?: boolean;
  /** Fail when no spec ran (e.g. a focus that matches nothing). Default true. */
  readonly failOnNoTests?: boolean;
  /** Override of the catalog data directory (tests). */
  readonly catalogDirectory?: string;
}

/** An image as the cluster pulls it from the mirror. */
export interface MirroredImage {
  /** Canonical upstream reference, e.g. "registry.k8s.io/conformance:v1.31.4". */
  readonly source: string;
  /** What the pod spec names, e.g. "10.0.0.5:5000/conformance:v1.31.4". */
  readonly mirrorReference: string;
  /** Repository inside the mirror, e.g. "conformance". */
  readonly mirrorPath: string;
  /** Tag or digest to resolve in the mirror. */
  readonly reference: string;
}

/** Everything the objects and the actions need; JSON-serialisable (it travels in the environment). */
export interface ConformanceRunPlan {
  /** "v1.31.4": the version with prerelease and build dropped. */
  readonly kubernetesVersion: string;
  readonly minorVersion: string;
  readonly namespace: string;
  readonly runId: string;
  readonly podName: string;
  readonly serviceAccountName: string;
  readonly clusterRoleName: string;
  readonly clusterRoleBindingName: string;
  readonly repoListConfigMapName: string;
  /** Present when the mirror needs credentials. */
  readonly pullSecretName?: string;
  /** Whether e2e.test gets `--e2e-docker-config-file` (authenticated mirror, k8s >= 1.27). */
  readonly passDockerConfigToSuite: boolean;
  readonly conformanceImage: MirroredImage;
  readonly resultsImage: MirroredImage;
  readonly focus: string;
  readonly skip: string;
  readonly parallelism: number;
  readonly dryRun: boolean;
  readonly extraArgs: readonly string[];
  readonly ginkgoArgs: readonly string[];
  readonly verbosity?: number;
  readonly tolerations: readonly Toleration[];
  /** Every image preflight must find in the mirror, sorted by source. */
  readonly images: readonly MirroredImage[];
  /** Images the suite may use that cannot be mirrored (invalid / auth-only registries). */
  readonly unmirrorable: readonly string[];
  /** Warnings to show at preview (a suite that cannot pull). */
  readonly warnings: readonly string[];
  readonly kubectl: {
    readonly binary: string;
    readonly kubeconfig: string;
    readonly context?: string;
  };
  readonly resultsDirectory: string;
  readonly timeouts: {
    /** The run's own limit: at this point the pod is deleted and partial results kept. */
    readonly runSeconds: number;
    /**
     * The suite's own limit (ginkgo `--timeout`), shorter than runSeconds so the suite ends
     * itself, cleans up and writes junit_01.xml before the run's limit.
     */
    readonly suiteSeconds: number;
    readonly startupSeconds: number;
    readonly progressSeconds: number;
    readonly pollSeconds: number;
  };
  readonly failOnTestFailures: boolean;
  readonly failOnNoTests: boolean;
}

/** Default focus: the conformance specs. */
export const DEFAULT_FOCUS = "\\[Conformance\\]";
export const DEFAULT_NAMESPACE = "conformance";
export const DEFAULT_RUN_ID = "1";
export const CONFORMANCE_REPOSITORY = "registry.k8s.io/conformance";
export const DEFAULT_RESULTS_IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
/** Tolerate every taint, as hydrophone does: conformance must be able to land anywhere. */
export const TOLERATE_ALL: readonly Toleration[] = [{ operator: "Exists" }];
/** The first e2e.test release that knows `--e2e-docker-config-file`. */
const DOCKER_CONFIG_FLAG_SINCE = { major: 1, minor: 27 };

/** Flags the plan sets itself; giving them again would contradict an argument. */
const MANAGED_GINKGO_FLAGS: Readonly<Record<string, string>> = {
  "--focus": "focus",
  "--skip": "skip",
  "--procs": "parallelism",
  "--p": "parallelism",
  "-p": "parallelism",
  "--nodes": "parallelism",
  "--dry-run": "dryRun",
  "--dryRun": "dryRun",
  "--timeout": "timeoutMinutes",
};
const MANAGED_E2E_FLAGS: Readonly<Record<string, string>> = {
  "--v": "verbosity",
  "--e2e-docker-config-file": "mirror.password (the pull secret is passed automatically)",
  "--report-dir": "(fixed: /tmp/results, read by the output container)",
  "--kubeconfig": "(fixed: the pod's service account)",
  "--provider": "(fixed: skeleton)",
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const RUN_ID = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const POD_NAME_PREFIX = "e2e-conformance-";

/**
 * The suite's ginkgo timeout for a run limit: a margin of 5% (at least 2, at most 15 minutes)
 * for the suite to interrupt its running specs, clean up and write its report, and never less
 * than half the run's limit.
 */
export function suiteTimeoutSeconds(runSeconds: number): number {
  const margin = Math.min(15 * 60, Math.max(2 * 60, Math.round(runSeconds * 0.05)));
  return Math.max(Math.ceil(runSeconds / 2), runSeconds - margin);
}

function positiveInteger(arg: string, value: number | undefined, fallback: number, max: number) {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > max) {
    throw new ConformanceArgsError(
      arg,
      `${String(chosen)} is not allowed; use an integer from 1 to ${max}`,
    );
  }
  return chosen;
}

function checkFlags(
  arg: string,
  flags: readonly string[],
  managed: Readonly<Record<string, string>>,
): string[] {
  return flags.map((flag, index) => {
    if (typeof flag !== "string" || !/^--?[A-Za-z0-9]/.test(flag)) {
      throw new ConformanceArgsError(
        `${arg}[${index}]`,
        `${JSON.stringify(flag)} is not a flag; give each flag as one item, e.g. "--flag=value"`,
      );
    }
    const name = flag.split("=", 1)[0];
    const owner = managed[name];
    if (owner !== undefined) {
      throw new ConformanceArgsError(
        `${arg}[${index}]`,
        `${name} is set by the run itself; use ${owner} instead`,
      );
    }
    return flag;
  });
}

function checkTolerations(tolerations: readonly Toleration[]): Toleration[] {
  return tolerations.map((toleration, index) => {
    const arg = `tolerations[${index}]`;
    const operator = toleration.operator ?? "Equal";
    if (operator !== "Exists" && operator !== "Equal") {
      throw new ConformanceArgsError(arg, `operator must be "Exists" or "Equal"`);
    }
    if (operator === "Exists" && toleration.value !== undefined) {
      throw new ConformanceArgsError(arg, `a toleration with operator Exists takes no value`);
    }
    if (operator === "Equal" && toleration.key === undefined) {
      throw new ConformanceArgsError(arg, `operator Equal needs a key`);
    }
    const effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if (toleration.effect !== undefined && !effects.includes(toleration.effect)) {
      throw new ConformanceArgsError(
        arg,
        `effect ${JSON.stringify(toleration.effect)} is not one of ${effects.join(", ")}`,
      );
    }
    return { ...toleration };
  });
}

function parseVersion(input: ConformanceRunInput): KubernetesVersion {
  const arg = input.kubernetesVersionSource ?? "kubernetesVersion";
  try {
    return parseKubernetesVersion(input.kubernetesVersion);
  } catch (error) {
    if (!(error instanceof InvalidKubernetesVersionError)) throw error;
    throw new ConformanceArgsError(arg, error.message, { cause: error });
  }
}

/** Converts errors of the image core into errors naming the argument they came from. */
function withArgErrors<T>(input: ConformanceRunInput, build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (error instanceof ConformanceArgsError) throw error;
    if (error instanceof ImageSetError) {
      const arg = error.source === "kubernetesVersion" ? versionArg(input) : error.source;
      throw new ConformanceArgsError(arg, error.message, { cause: error });
    }
    if (error instanceof ImageListError) {
      throw new ConformanceArgsError("imageListFiles", error.message, { cause: error });
    }
    if (error instanceof UnknownKubernetesVersionError || error instanceof CatalogFileError) {
      throw new ConformanceArgsError(versionArg(input), error.message, { cause: error });
    }
    if (error instanceof MirrorCollisionError || error instanceof MirrorMappingError) {
      throw new ConformanceArgsError("mirror", error.message, { cause: error });
    }
    throw error;
  }
}

function versionArg(input: ConformanceRunInput): string {
  return input.kubernetesVersionSource ?? "kubernetesVersion";
}

function mirrored(entry: MirrorMappingEntry): MirroredImage {
  const reference: ImageReference = entry.reference;
  return {
    source: entry.source,
    mirrorReference: entry.mirrorReference,
    mirrorPath: entry.mirrorPath,
    reference: reference.digest ?? reference.tag ?? "latest",
  };
}

/**
 * Validates the arguments of a run and decides everything about it.
 *
 * @throws ConformanceArgsError naming the argument and saying what is allowed.
 */
export function planConformanceRun(input: ConformanceRunInput): ConformanceRunPlan {
  const version = parseVersion(input);
  const tag = releaseTag(version);
  if (tag === undefined && input.conformanceImage === undefined) {
    throw new ConformanceArgsError(
      versionArg(input),
      `${JSON.stringify(input.kubernetesVersion)} has no patch number, so the conformance image ` +
        `tag cannot be chosen; give the full version (e.g. "${version.minorVersion}.4"), "auto", ` +
        `or set conformanceImage`,
    );
  }

  const namespace = input.namespace ?? DEFAULT_NAMESPACE;
  if (!DNS_LABEL.test(namespace) || namespace.length > 63) {
    throw new ConformanceArgsError(
      "namespace",
      `${JSON.stringify(namespace)} is not a namespace name (lowercase letters, digits and '-', at most 63)`,
    );
  }
  const runId = input.runId ?? DEFAULT_RUN_ID;
  // The pod name also carries `-<spec hash>` (objects.ts withSpecPodName).
  const maxRunId = 63 - POD_NAME_PREFIX.length - 9;
  if (!RUN_ID.test(runId) || runId.length > maxRunId) {
    throw new ConformanceArgsError(
      "runId",
      `${JSON.stringify(runId)} is not allowed; use lowercase letters, digits and '-' ` +
        `(at most ${maxRunId} characters), e.g. "2" or "2024-08-20"`,
    );
  }

  const focus = input.focus ?? DEFAULT_FOCUS;
  assertGoRegex("focus", focus);
  const skip = input.skip ?? "";
  assertGoRegex("skip", skip);
  const parallelism = positiveInteger("parallelism", input.parallelism, 1, 256);
  let verbosity: number | undefined;
  if (input.verbosity !== undefined) {
    if (!Number.isInteger(input.verbosity) || input.verbosity < 0 || input.verbosity > 10) {
      throw new ConformanceArgsError(
        "verbosity",
        `${String(input.verbosity)} is not allowed; use an integer from 0 to 10 (klog --v)`,
      );
    }
    verbosity = input.verbosity;
  }
  const extraArgs = checkFlags("extraArgs", input.extraArgs ?? [], MANAGED_E2E_FLAGS);
  const ginkgoArgs = checkFlags("ginkgoArgs", input.ginkgoArgs ?? [], MANAGED_GINKGO_FLAGS);
  const tolerations = checkTolerations(input.tolerations ?? TOLERATE_ALL);

  const warnings: string[] = [];
  const passDockerConfigToSuite =
    input.mirror.authenticated &&
    (version.major > DOCKER_CONFIG_FLAG_SINCE.major ||
      (version.major === DOCKER_CONFIG_FLAG_SINCE.major &&
        version.minor >= DOCKER_CONFIG_FLAG_SINCE.minor));
  if (input.mirror.authenticated && !passDockerConfigToSuite) {
    warnings.push(
      `e2e.test ${version.minorVersion} has no --e2e-docker-config-file (1.27+): the namespaces ` +
        `the tests create cannot pull from the authenticated mirror unless the nodes hold its credentials`,
    );
  }

  const conformanceSource = input.conformanceImage ?? `${CONFORMANCE_REPOSITORY}:${tag}`;
  const resultsSource = input.resultsImage ?? DEFAULT_RESULTS_IMAGE;
  const imageSet = withArgErrors(input, () => {
    const listFiles = [
      ...(input.imageListFiles ?? []),
      ...(input.e2eImages === undefined
        ? []
        : [{ name: "e2eImages", text: input.e2eImages.join("\n") }]),
    ];
    // The suite's own list replaces the shipped one; a version the catalog does not know is
    // fine when the suite's list is given as a file.
    let includeCatalog = input.e2eImages === undefined;
    if (includeCatalog) {
      try {
        catalogForKubernetesVersion(input.kubernetesVersion, input.catalogDirectory);
      } catch (error) {
        if (!(error instanceof UnknownKubernetesVersionError) || listFiles.length === 0) {
          throw error;
        }
        includeCatalog = false;
      }
    }
    return assembleImageSet({
      kubernetesVersion: input.kubernetesVersion,
      conformanceImage: conformanceSource,
      resultsImage: resultsSource,
      extraImages: input.extraImages,
      listFiles,
      includeCatalog,
      catalogDirectory: input.catalogDirectory,
    });
  });
  const mapping = withArgErrors(input, () =>
    planMirrorMapping(
      imageSet.images.map((entry) => entry.reference),
      { mirrorHost: input.mirror.endpoint, upstreamPrefixes: input.mirror.upstreamPrefixes },
    ),
  );
  const bySource = new Map(mapping.entries.map((entry) => [entry.source, mirrored(entry)]));
  const pick = (arg: string, text: string): MirroredImage => {
    const found = imageSet.images.find((entry) => entry.origins.includes(arg));
    const image = found && bySource.get(found.canonical);
    if (!image) {
      throw new ConformanceArgsError(
        arg === "conformance" ? "conformanceImage" : "resultsImage",
        `${JSON.stringify(text)} is on a registry that cannot be mirrored`,
      );
    }
    return image;
  };

  const kubectlBinary = input.kubectl ?? "kubectl";
  if (!path.isAbsolute(input.resultsDirectory)) {
    throw new ConformanceArgsError(
      "resultsDirectory",
      `${JSON.stringify(input.resultsDirectory)} must be resolved to an absolute path first`,
    );
  }

  const runSeconds = 60 * positiveInteger("timeoutMinutes", input.timeoutMinutes, 360, 7 * 24 * 60);
  return {
    kubernetesVersion: `v${version.major}.${version.minor}${version.patch === undefined ? "" : `.${version.patch}`}`,
    minorVersion: version.minorVersion,
    namespace,
    runId,
    podName: `${POD_NAME_PREFIX}${runId}`,
    serviceAccountName: "conformance-serviceaccount",
    clusterRoleName: `conformance-serviceaccount:${namespace}`,
    clusterRoleBindingName: `conformance-serviceaccount-role:${namespace}`,
    repoListConfigMapName: "repo-list-config",
    ...(input.mirror.authenticated ? { pullSecretName: "conformance-mirror-pull" } : {}),
    passDockerConfigToSuite,
    conformanceImage: pick("conformance", conformanceSource),
    resultsImage: pick("results", resultsSource),
    focus,
    skip,
    parallelism,
    dryRun: input.dryRun ?? false,
    extraArgs,
    ginkgoArgs,
    ...(verbosity === undefined ? {} : { verbosity }),
    tolerations,
    images: [...bySource.values()],
    unmirrorable: imageSet.unmirrorable.map((entry) => entry.canonical),
    warnings,
    kubectl: {
      binary: kubectlBinary,
      kubeconfig: input.kubeconfig,
      ...(input.context === undefined ? {} : { context: input.context }),
    },
    resultsDirectory: path.join(input.resultsDirectory, input.stack, runId),
    timeouts: {
      runSeconds,
      suiteSeconds: suiteTimeoutSeconds(runSeconds),
      startupSeconds:
        60 * positiveInteger("startupTimeoutMinutes", input.startupTimeoutMinutes, 10, 24 * 60),
      progressSeconds: positiveInteger(
        "progressIntervalSeconds",
        input.progressIntervalSeconds,
        30,
        3600,
      ),
      pollSeconds: positiveInteger("pollIntervalSeconds", input.pollIntervalSeconds, 10, 600),
    },
    failOnTestFailures: input.failOnTestFailures ?? true,
    failOnNoTests: input.failOnNoTests ?? true,
  };
}
