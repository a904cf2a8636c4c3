/**
 * The registries the Kubernetes e2e tests pull from: the `RegistryList` of
 * kubernetes/test/utils/image/manifest.go (post-1.30), which KUBE_TEST_REPO_LIST overrides.
 * Pure: no I/O.
 */

import { ImageReference, repositoryName } from "./reference";

/** A KUBE_TEST_REPO_LIST key. */
export type E2eRegistryKey =
  | "gcAuthenticatedRegistry"
  | "promoterE2eRegistry"
  | "buildImageRegistry"
  | "invalidRegistry"
  | "gcEtcdRegistry"
  | "gcRegistry"
  | "sigStorageRegistry"
  | "privateRegistry"
  | "dockerLibraryRegistry"
  | "cloudProviderGcpRegistry";

/** One RegistryList entry and whether its images can be copied into a mirror. */
export interface E2eRegistry {
  readonly key: E2eRegistryKey;
  /** `registry[/path]` that prefixes every image of this key, e.g. "registry.k8s.io/sig-storage". */
  readonly defaultValue: string;
  /** Why the images of this key cannot be mirrored; absent when they can. */
  readonly unmirrorableReason?: string;
}

/**
 * The RegistryList in manifest.go's order. (`microsoftRegistry` existed only in older versions
 * and is left out.)
 */
export const E2E_REGISTRIES: readonly E2eRegistry[] = [
  {
    key: "gcAuthenticatedRegistry",
    defaultValue: "gcr.io/authenticated-image-pulling",
    unmirrorableReason:
      "auth-only registry (gcAuthenticatedRegistry) used by the image-pull-secret tests: " +
      "anonymous pulls are refused, so it cannot be copied without credentials",
  },
  { key: "promoterE2eRegistry", defaultValue: "registry.k8s.io/e2e-test-images" },
  { key: "buildImageRegistry", defaultValue: "registry.k8s.io/build-image" },
  {
    key: "invalidRegistry",
    defaultValue: "invalid.registry.k8s.io/invalid",
    unmirrorableReason:
      "intentionally invalid registry (invalidRegistry): the tests expect pulls from it to fail",
  },
  { key: "gcEtcdRegistry", defaultValue: "registry.k8s.io" },
  { key: "gcRegistry", defaultValue: "registry.k8s.io" },
  { key: "sigStorageRegistry", defaultValue: "registry.k8s.io/sig-storage" },
  {
    key: "privateRegistry",
    defaultValue: "gcr.io/k8s-authenticated-test",
    unmirrorableReason:
      "auth-only registry (privateRegistry) used by the image-pull-secret tests: " +
      "anonymous pulls are refused, so it cannot be copied without credentials",
  },
  { key: "dockerLibraryRegistry", defaultValue: "docker.io/library" },
  { key: "cloudProviderGcpRegistry", defaultValue: "registry.k8s.io/cloud-provider-gcp" },
];

/**
 * The RegistryList entry whose default value is the longest prefix (whole path components) of
 * the image's `registry/repository`, or `undefined` for images outside every e2e registry.
 * Ties between keys with the same default (gcRegistry, gcEtcdRegistry) go to the first listed.
 */
export function e2eRegistryOf(reference: ImageReference): E2eRegistry | undefined {
  const name = repositoryName(reference);
  let best: E2eRegistry | undefined;
  for (const registry of E2E_REGISTRIES) {
    const isPrefix = name.startsWith(`${registry.defaultValue}/`);
    if (
      isPrefix &&
      (best === undefined || registry.defaultValue.length > best.defaultValue.length)
    ) {
      best = registry;
    }
  }
  return best;
}

/** Why an image cannot be mirrored (it lives on an invalid or auth-only e2e registry), if so. */
export function unmirrorableReason(reference: ImageReference): string | undefined {
  return e2eRegistryOf(reference)?.unmirrorableReason;
}
