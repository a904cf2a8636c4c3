/**
 * The KUBE_TEST_REPO_LIST document that points the e2e tests at the internal mirror.
 *
 * e2e.test reads a YAML map of RegistryList keys (test/utils/image/manifest.go); for every
 * image it replaces the key's default `registry[/path]` prefix with the configured value. Each
 * value here is that prefix mapped by mapping.ts, so the images the tests ask for are exactly
 * the mirror references the mirroring step pushed.
 *
 * Pure: no I/O.
 */

import { Document, Scalar, YAMLMap } from "yaml";

import { E2E_REGISTRIES, E2eRegistryKey } from "./e2e-registries";
import { MirrorMappingOptions, mirrorLocationFor } from "./mapping";

/** One key of the repo list. */
export interface RepoListEntry {
  readonly key: E2eRegistryKey;
  /** manifest.go's default, e.g. "registry.k8s.io/e2e-test-images". */
  readonly defaultValue: string;
  /** The value written, e.g. "10.0.0.5:5001/e2e-test-images". */
  readonly value: string;
  /** False for keys deliberately left at their default. */
  readonly mirrored: boolean;
  /** Why a key is left at its default. */
  readonly reason?: string;
}

/**
 * Every RegistryList key with the value for the mirror, in manifest.go's order.
 *
 * The invalid and auth-only registries keep their defaults: the invalid one must stay
 * unpullable (tests assert that the pull fails), and the auth-only ones cannot be copied
 * without credentials the mirror does not have. Their images are therefore not in the mirror,
 * and pointing these keys at it would only change how the tests that use them fail.
 *
 * @throws MirrorMappingError for invalid mapping options.
 */
export function repoListEntries(options: MirrorMappingOptions): RepoListEntry[] {
  return E2E_REGISTRIES.map(({ key, defaultValue, unmirrorableReason }) => {
    if (unmirrorableReason !== undefined) {
      return {
        key,
        defaultValue,
        value: defaultValue,
        mirrored: false,
        reason: unmirrorableReason,
      };
    }
    const slash = defaultValue.indexOf("/");
    const registry = slash === -1 ? defaultValue : defaultValue.slice(0, slash);
    const path = slash === -1 ? "" : defaultValue.slice(slash + 1);
    return { key, defaultValue, value: mirrorLocationFor(registry, path, options), mirrored: true };
  });
}

/**
 * The repo list as a YAML document (keys in manifest.go's order), ready to be mounted and
 * named by KUBE_TEST_REPO_LIST. Keys left at their default carry a comment saying why.
 *
 * @throws MirrorMappingError for invalid mapping options.
 */
export function renderRepoList(options: MirrorMappingOptions): string {
  const entries = repoListEntries(options);
  const document = new Document(
    Object.fromEntries(entries.map((entry) => [entry.key, entry.value])),
  );
  document.commentBefore =
    ` KUBE_TEST_REPO_LIST for e2e.test: registries remapped to the mirror ${options.mirrorHost}.` +
    `\n Generated; keys follow test/utils/image/manifest.go RegistryList.`;
  // Items are in `entries` order: annotate the keys that stay at their default.
  const map = document.contents as YAMLMap<Scalar<string>, Scalar<string>>;
  map.items.forEach((pair, index) => {
    const reason = entries[index]?.reason;
    if (reason !== undefined) pair.key.commentBefore = ` left at default: ${reason}`;
  });
  return document.toString({ lineWidth: 0 });
}
