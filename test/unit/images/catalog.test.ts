import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import {
  CATALOG_DIRECTORY,
  CATALOG_FILES,
  CatalogFileError,
  UnknownKubernetesVersionError,
  catalogForKubernetesVersion,
  knownCatalogVersions,
  parseCatalogFile,
} from "../../../core/images/catalog";
import { InvalidKubernetesVersionError } from "../../../core/images/kubernetes-version";
import { canonicalImageReference } from "../../../core/images/reference";
import { scratchDir } from "../../scratch";

describe("catalog", () => {
  it("knows 1.31, 1.33 and 1.35", () => {
    assert.deepEqual(knownCatalogVersions(), ["1.31", "1.33", "1.35"]);
  });

  it("selects the list by minor version, whatever the patch or prerelease", () => {
    for (const version of ["1.31", "v1.31", "v1.31.4", "1.31.0-rc.1", "v1.31.2+k3s1"]) {
      const entry = catalogForKubernetesVersion(version);
      assert.equal(entry.kubernetesVersion, "1.31", version);
      assert.equal(entry.file, "kubernetes-v1.31.txt", version);
    }
  });

  it("lists for 1.31 exactly the image lines of its data file, in file order", () => {
    const entry = catalogForKubernetesVersion("1.31");
    const lines = readFileSync(join(CATALOG_DIRECTORY, entry.file), "utf8")
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"));
    assert.equal(entry.images.length, 37);
    assert.deepEqual(entry.images.map(canonicalImageReference), lines);
    assert.ok(lines.includes("registry.k8s.io/pause:3.10"));
    assert.ok(lines.includes("registry.k8s.io/e2e-test-images/agnhost:2.52"));
  });

  for (const { kubernetesVersion } of CATALOG_FILES) {
    it(`${kubernetesVersion}: images are sorted and unique, as the header promises`, () => {
      const names =
        catalogForKubernetesVersion(kubernetesVersion).images.map(canonicalImageReference);
      assert.deepEqual(names, [...new Set(names)].sort());
      assert.ok(names.length > 30);
    });

    it(`${kubernetesVersion}: names its source commit, matching the file name's commit`, () => {
      const entry = catalogForKubernetesVersion(kubernetesVersion);
      assert.match(
        entry.provenance.source,
        /^kubernetes\/kubernetes test\/utils\/image\/manifest\.go @ [0-9a-f]{40}$/,
      );
      const shortCommit = /-dev-([0-9a-f]{8})\.txt$/.exec(entry.file)?.[1];
      if (shortCommit !== undefined)
        assert.ok(entry.provenance.source.includes(`@ ${shortCommit}`));
    });

    it(`${kubernetesVersion}: is honest that its CSI images are only partially verified`, () => {
      const { completeness } = catalogForKubernetesVersion(kubernetesVersion);
      assert.equal(completeness.complete, false);
      const csi = completeness.caveats.find((caveat) => caveat.startsWith("CSI images"));
      assert.ok(csi !== undefined, "a CSI caveat from the trailer");
      assert.match(csi, /partially verified/);
      assert.match(csi, /csi-mock-driver\.yaml/);
    });
  }

  it("1.31 is a release list with caveats about its commit and later patch releases", () => {
    const { provenance, completeness } = catalogForKubernetesVersion("v1.31.4");
    assert.equal(provenance.kind, "release");
    assert.match(provenance.source, /94341df30b4aef29676b997d0e2320534d05bfab/);
    assert.match(provenance.note, /release-1\.31/);
    assert.match(provenance.note, /expected to equal v1\.31\.0/);
    assert.match(provenance.note, /patch releases/);
    const variants = completeness.caveats.find((caveat) => caveat.includes("VARIANTS"));
    assert.ok(variants?.includes("registry.k8s.io/etcd:3.5.17-0"));
  });

  for (const version of ["1.33", "1.35"]) {
    it(`${version} is flagged as a development snapshot, not a release`, () => {
      const { provenance, completeness } = catalogForKubernetesVersion(version);
      assert.equal(provenance.kind, "development-snapshot");
      assert.match(provenance.note, /NOT/);
      assert.ok(completeness.caveats.some((caveat) => /development snapshot/.test(caveat)));
    });
  }

  it("rejects an unknown minor, listing the versions it has", () => {
    assert.throws(
      () => catalogForKubernetesVersion("v1.34.1"),
      (error: unknown) => {
        assert.ok(error instanceof UnknownKubernetesVersionError);
        assert.equal(error.requested, "v1.34.1");
        assert.deepEqual(error.knownVersions, ["1.31", "1.33", "1.35"]);
        assert.match(error.message, /"v1\.34\.1".*1\.31, 1\.33, 1\.35/);
        assert.match(error.message, /--list-images/);
        return true;
      },
    );
  });

  it("rejects a malformed version", () => {
    assert.throws(() => catalogForKubernetesVersion("latest"), InvalidKubernetesVersionError);
  });

  it("reads from another catalog directory when given one", () => {
    const directory = scratchDir("catalog-");
    try {
      const original = readFileSync(join(CATALOG_DIRECTORY, "kubernetes-v1.31.txt"), "utf8");
      const edited = original.replace(
        /^registry\.k8s\.io\/pause:3\.10$/m,
        "registry.k8s.io/pause:3.10.1",
      );
      writeFileSync(join(directory, "kubernetes-v1.31.txt"), edited);
      const entry = catalogForKubernetesVersion("1.31", directory);
      const names = entry.images.map(canonicalImageReference);
      assert.ok(names.includes("registry.k8s.io/pause:3.10.1"));
      assert.ok(!names.includes("registry.k8s.io/pause:3.10"));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe("parseCatalogFile", () => {
  const descriptor = {
    kubernetesVersion: "1.99",
    file: "kubernetes-v1.99.txt",
    kind: "release" as const,
    note: "test",
  };
  const source =
    "# SOURCE: repo kubernetes/kubernetes, path test/utils/image/manifest.go, commit " +
    "0123456789abcdef0123456789abcdef01234567";

  it("calls a release list without UNKNOWN trailer sections complete", () => {
    const entry = parseCatalogFile(`${source}\nregistry.k8s.io/pause:3.10\n`, descriptor);
    assert.deepEqual(entry.completeness, { complete: true, caveats: [] });
    assert.equal(
      entry.provenance.source,
      "kubernetes/kubernetes test/utils/image/manifest.go @ 0123456789abcdef0123456789abcdef01234567",
    );
  });

  it("turns an UNKNOWN trailer section into a caveat", () => {
    const text = `${source}\nregistry.k8s.io/pause:3.10\n#\n# ==== CSI images UNKNOWN ====\n#   a.yaml, b.yaml\n`;
    const entry = parseCatalogFile(text, descriptor);
    assert.equal(entry.completeness.complete, false);
    assert.deepEqual(entry.completeness.caveats, [
      "CSI images are only partially verified (CSI images UNKNOWN): a.yaml, b.yaml",
    ]);
  });

  it("refuses a file whose header names no source commit", () => {
    assert.throws(
      () => parseCatalogFile("# made up\nregistry.k8s.io/pause:3.10\n", descriptor),
      (error: unknown) =>
        error instanceof CatalogFileError &&
        /^catalog file kubernetes-v1\.99\.txt: .*commit <40 hex>/.test(error.message),
    );
  });
});
