import assert from "node:assert/strict";

import { parse as parseYaml } from "yaml";

import { CATALOG_FILES, catalogForKubernetesVersion } from "../../../core/images/catalog";
import {
  MirrorMappingError,
  MirrorMappingOptions,
  planMirrorMapping,
} from "../../../core/images/mapping";
import { canonicalImageReference } from "../../../core/images/reference";
import { renderRepoList, repoListEntries } from "../../../core/images/repo-list";

const MIRROR = { mirrorHost: "10.0.0.5:5001" };

// The RegistryList keys and defaults as listed in kubernetes test/utils/image/manifest.go
// (post-1.30), written out independently of the implementation.
const MANIFEST_GO_DEFAULTS: Record<string, string> = {
  gcAuthenticatedRegistry: "gcr.io/authenticated-image-pulling",
  promoterE2eRegistry: "registry.k8s.io/e2e-test-images",
  buildImageRegistry: "registry.k8s.io/build-image",
  invalidRegistry: "invalid.registry.k8s.io/invalid",
  gcEtcdRegistry: "registry.k8s.io",
  gcRegistry: "registry.k8s.io",
  sigStorageRegistry: "registry.k8s.io/sig-storage",
  privateRegistry: "gcr.io/k8s-authenticated-test",
  dockerLibraryRegistry: "docker.io/library",
  cloudProviderGcpRegistry: "registry.k8s.io/cloud-provider-gcp",
};

/**
 * What e2e.test does with a repo list: an image configured under a key is
 * `<value of the key>/<name>:<tag>`, i.e. the key's default prefix replaced by the new value.
 * The key of a catalog image is the one whose default is its longest prefix.
 */
function remapLikeManifestGo(image: string, repoList: Record<string, string>): string {
  const keys = Object.keys(MANIFEST_GO_DEFAULTS).filter((key) =>
    image.startsWith(`${MANIFEST_GO_DEFAULTS[key]}/`),
  );
  const key = keys.sort(
    (a, b) => (MANIFEST_GO_DEFAULTS[b]?.length ?? 0) - (MANIFEST_GO_DEFAULTS[a]?.length ?? 0),
  )[0];
  assert.ok(key !== undefined, `${image} belongs to no RegistryList key`);
  const defaultValue = MANIFEST_GO_DEFAULTS[key] ?? "";
  const value = repoList[key];
  assert.equal(typeof value, "string", `repo list sets ${key}`);
  return `${value}${image.slice(defaultValue.length)}`;
}

describe("repoListEntries", () => {
  it("has every RegistryList key, in manifest.go order, with its default", () => {
    const entries = repoListEntries(MIRROR);
    assert.deepEqual(
      entries.map((entry) => [entry.key, entry.defaultValue]),
      Object.entries(MANIFEST_GO_DEFAULTS),
    );
  });

  it("points mirrorable keys at the mirror and leaves invalid / auth-only keys at default", () => {
    const values = Object.fromEntries(
      repoListEntries(MIRROR).map((entry) => [entry.key, entry.value]),
    );
    assert.deepEqual(values, {
      gcAuthenticatedRegistry: "gcr.io/authenticated-image-pulling",
      promoterE2eRegistry: "10.0.0.5:5001/e2e-test-images",
      buildImageRegistry: "10.0.0.5:5001/build-image",
      invalidRegistry: "invalid.registry.k8s.io/invalid",
      gcEtcdRegistry: "10.0.0.5:5001",
      gcRegistry: "10.0.0.5:5001",
      sigStorageRegistry: "10.0.0.5:5001/sig-storage",
      privateRegistry: "gcr.io/k8s-authenticated-test",
      dockerLibraryRegistry: "10.0.0.5:5001/library",
      cloudProviderGcpRegistry: "10.0.0.5:5001/cloud-provider-gcp",
    });
    for (const entry of repoListEntries(MIRROR)) {
      assert.equal(entry.mirrored, entry.reason === undefined, entry.key);
    }
    const unmirrored = repoListEntries(MIRROR).filter((entry) => !entry.mirrored);
    assert.deepEqual(
      unmirrored.map((entry) => entry.key),
      ["gcAuthenticatedRegistry", "invalidRegistry", "privateRegistry"],
    );
  });

  it("applies upstream prefixes the way the mapping does", () => {
    const values = Object.fromEntries(
      repoListEntries({ ...MIRROR, upstreamPrefixes: { "docker.io": "hub" } }).map((entry) => [
        entry.key,
        entry.value,
      ]),
    );
    assert.equal(values["dockerLibraryRegistry"], "10.0.0.5:5001/hub/library");
    assert.equal(values["gcRegistry"], "10.0.0.5:5001");
  });

  it("rejects invalid mapping options like the mapping does", () => {
    assert.throws(() => repoListEntries({ mirrorHost: "http://x:1" }), MirrorMappingError);
  });
});

describe("renderRepoList", () => {
  it("renders YAML that parses back to the entries, keys in a stable order", () => {
    const text = renderRepoList(MIRROR);
    const parsed = parseYaml(text) as Record<string, string>;
    assert.deepEqual(Object.keys(parsed), Object.keys(MANIFEST_GO_DEFAULTS));
    assert.deepEqual(
      parsed,
      Object.fromEntries(repoListEntries(MIRROR).map((entry) => [entry.key, entry.value])),
    );
    assert.equal(renderRepoList(MIRROR), text, "deterministic");
  });

  it("explains in comments why keys are left at their default", () => {
    const text = renderRepoList(MIRROR);
    assert.match(text, /^# left at default: intentionally invalid registry.*\ninvalidRegistry: /m);
    assert.match(text, /^# left at default: auth-only.*\nprivateRegistry: /m);
    assert.match(text, /^# KUBE_TEST_REPO_LIST .*10\.0\.0\.5:5001/m);
    assert.match(text, /^gcRegistry: 10\.0\.0\.5:5001$/m);
  });

  const optionSets: Array<[string, MirrorMappingOptions]> = [
    ["no prefixes", MIRROR],
    [
      "prefixed upstreams",
      {
        mirrorHost: "mirror.internal:443",
        upstreamPrefixes: { "registry.k8s.io": "k8s", "docker.io": "hub" },
      },
    ],
  ];
  for (const { kubernetesVersion } of CATALOG_FILES) {
    for (const [label, options] of optionSets) {
      it(`${kubernetesVersion} (${label}): e2e's remap through the repo list = the mirror mapping`, () => {
        const repoList = parseYaml(renderRepoList(options)) as Record<string, string>;
        const { images } = catalogForKubernetesVersion(kubernetesVersion);
        const plan = planMirrorMapping(images, options);
        let mirrored = 0;
        for (const entry of plan.entries) {
          const remapped = remapLikeManifestGo(entry.source, repoList);
          if (remapped === entry.source) continue; // invalid / auth-only: left at default on purpose
          assert.equal(remapped, entry.mirrorReference, entry.source);
          mirrored += 1;
        }
        assert.equal(mirrored, images.length - (kubernetesVersion === "1.35" ? 3 : 4));
        const unchanged = images
          .map(canonicalImageReference)
          .filter((image) => remapLikeManifestGo(image, repoList) === image);
        assert.ok(
          unchanged.every((image) => /^(gcr\.io|invalid\.registry\.k8s\.io)\//.test(image)),
        );
      });
    }
  }
});
