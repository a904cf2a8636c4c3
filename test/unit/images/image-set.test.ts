import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import {
  CATALOG_DIRECTORY,
  CATALOG_FILES,
  UnknownKubernetesVersionError,
} from "../../../core/images/catalog";
import { E2E_REGISTRIES } from "../../../core/images/e2e-registries";
import { ImageSetError, assembleImageSet } from "../../../core/images/image-set";
import { ImageListError, parseImageListFile } from "../../../core/images/list-file";
import { InvalidImageReferenceError, parseImageReference } from "../../../core/images/reference";

const originsOf = (set: ReturnType<typeof assembleImageSet>, canonical: string) =>
  set.images.find((image) => image.canonical === canonical)?.origins;

describe("assembleImageSet", () => {
  it("adds the conformance image for the full version and the results image to the catalog", () => {
    const set = assembleImageSet({ kubernetesVersion: "v1.31.4", includeCatalog: true });
    assert.deepEqual(originsOf(set, "registry.k8s.io/conformance:v1.31.4"), ["conformance"]);
    assert.deepEqual(originsOf(set, "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"), [
      "catalog 1.31",
      "results",
    ]);
    assert.deepEqual(originsOf(set, "registry.k8s.io/pause:3.10"), ["catalog 1.31"]);
    // 37 catalog lines - 4 unmirrorable + the conformance image (busybox is already listed).
    assert.equal(set.images.length, 34);
  });

  it("reports the invalid and auth-only images instead of mirroring or dropping them", () => {
    const set = assembleImageSet({ kubernetesVersion: "1.31.4", includeCatalog: true });
    assert.deepEqual(
      set.unmirrorable.map((image) => image.canonical),
      [
        "gcr.io/authenticated-image-pulling/alpine:3.7",
        "gcr.io/authenticated-image-pulling/windows-nanoserver:v1",
        "gcr.io/k8s-authenticated-test/agnhost:2.6",
        "invalid.registry.k8s.io/invalid/alpine:3.1",
      ],
    );
    const invalid = set.unmirrorable[3];
    assert.match(invalid?.reason ?? "", /intentionally invalid registry/);
    assert.deepEqual(invalid?.origins, ["catalog 1.31"]);
    assert.match(set.unmirrorable[0]?.reason ?? "", /auth-only/);
    const unmirrorableHosts = E2E_REGISTRIES.filter((r) => r.unmirrorableReason !== undefined);
    for (const image of set.images) {
      for (const registry of unmirrorableHosts) {
        assert.ok(!image.canonical.startsWith(`${registry.defaultValue}/`), image.canonical);
      }
    }
  });

  for (const { kubernetesVersion, file } of CATALOG_FILES) {
    it(`${kubernetesVersion}: unmirrorable = the SPECIAL IMAGES named in the catalog trailer`, () => {
      const trailer = parseImageListFile(
        readFileSync(join(CATALOG_DIRECTORY, file), "utf8"),
        file,
      ).trailer;
      const special = trailer
        .map((comment) => /^(\S+)\s+(NEEDS-AUTH|INVALID)\b/.exec(comment.text)?.[1])
        .filter((name): name is string => name !== undefined)
        .sort();
      assert.ok(special.length >= 3);
      const set = assembleImageSet({
        kubernetesVersion: `${kubernetesVersion}.0`,
        includeCatalog: true,
      });
      assert.deepEqual(
        set.unmirrorable.map((image) => image.canonical),
        special,
      );
    });
  }

  it("returns images deduplicated by canonical form and sorted", () => {
    const set = assembleImageSet({
      kubernetesVersion: "1.31.4",
      includeCatalog: true,
      extraImages: ["nginx", "docker.io/library/nginx:latest", "registry.k8s.io/pause:3.10"],
      extraImagesSource: "images.extra",
    });
    const names = set.images.map((image) => image.canonical);
    assert.deepEqual(names, [...new Set(names)].sort());
    assert.deepEqual(originsOf(set, "docker.io/library/nginx:latest"), [
      "config images.extra[0]",
      "config images.extra[1]",
    ]);
    assert.deepEqual(originsOf(set, "registry.k8s.io/pause:3.10"), [
      "catalog 1.31",
      "config images.extra[2]",
    ]);
  });

  it("is deterministic: the same input gives the same output whatever the input order", () => {
    const extras = ["quay.io/a/b:1", "nginx:1.27", "registry.k8s.io/pause:3.10"];
    const first = assembleImageSet({
      kubernetesVersion: "1.31.4",
      includeCatalog: false,
      extraImages: extras,
    });
    const second = assembleImageSet({
      kubernetesVersion: "1.31.4",
      includeCatalog: false,
      extraImages: [...extras].reverse(),
    });
    assert.deepEqual(
      first.images.map((image) => image.canonical),
      second.images.map((image) => image.canonical),
    );
  });

  it("names the list file and line each image came from", () => {
    const set = assembleImageSet({
      kubernetesVersion: "1.31.4",
      includeCatalog: false,
      listFiles: [
        { name: "e2e-images.txt", text: "# from e2e.test\n\nregistry.k8s.io/etcd:3.5.17-0\n" },
      ],
    });
    assert.deepEqual(originsOf(set, "registry.k8s.io/etcd:3.5.17-0"), [
      "list file e2e-images.txt:3",
    ]);
  });

  it("without the catalog: only runner images and the given ones, and no catalog summary", () => {
    const set = assembleImageSet({ kubernetesVersion: "v1.34.1", includeCatalog: false });
    assert.deepEqual(
      set.images.map((image) => image.canonical),
      ["registry.k8s.io/conformance:v1.34.1", "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"],
    );
    assert.deepEqual(set.unmirrorable, []);
    assert.equal("catalog" in set, false);
  });

  it("summarises the catalog used, with provenance and completeness", () => {
    const set = assembleImageSet({ kubernetesVersion: "1.33.2", includeCatalog: true });
    assert.equal(set.catalog?.kubernetesVersion, "1.33");
    assert.equal(set.catalog?.provenance.kind, "development-snapshot");
    assert.equal(set.catalog?.completeness.complete, false);
  });

  it("drops a prerelease suffix for the conformance tag, like hydrophone", () => {
    const set = assembleImageSet({ kubernetesVersion: "1.31.0-rc.1", includeCatalog: false });
    assert.ok(originsOf(set, "registry.k8s.io/conformance:v1.31.0")?.includes("conformance"));
  });

  it("asks for a full patch version when it has to choose the conformance tag", () => {
    assert.throws(
      () => assembleImageSet({ kubernetesVersion: "1.31", includeCatalog: true }),
      (error: unknown) =>
        error instanceof ImageSetError &&
        error.source === "kubernetesVersion" &&
        /no patch number/.test(error.message) &&
        /"1\.31\.4"/.test(error.message) &&
        /conformanceImage/.test(error.message),
    );
  });

  it("accepts a minor version when the conformance image is given explicitly", () => {
    const set = assembleImageSet({
      kubernetesVersion: "1.31",
      includeCatalog: true,
      conformanceImage: "registry.k8s.io/conformance:v1.31.9",
      resultsImage: "registry.k8s.io/e2e-test-images/busybox:1.37.0-1",
    });
    assert.deepEqual(originsOf(set, "registry.k8s.io/conformance:v1.31.9"), ["conformance"]);
    assert.deepEqual(originsOf(set, "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"), [
      "results",
    ]);
    assert.deepEqual(originsOf(set, "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"), [
      "catalog 1.31",
    ]);
  });

  it("names the config key of a bad extra image and keeps the parse error as cause", () => {
    assert.throws(
      () =>
        assembleImageSet({
          kubernetesVersion: "1.31.4",
          includeCatalog: false,
          extraImages: ["nginx:1.27", "quay.io/ok/image:1", "foo/Bar"],
          extraImagesSource: "images.extra",
        }),
      (error: unknown) => {
        assert.ok(error instanceof ImageSetError);
        assert.equal(error.source, "images.extra[2]");
        assert.match(
          error.message,
          /^images\.extra\[2\]: .*uppercase letters are not allowed in repository 'foo\/Bar'/,
        );
        assert.ok(error.cause instanceof InvalidImageReferenceError);
        return true;
      },
    );
  });

  it("names conformanceImage / resultsImage when they are invalid", () => {
    for (const key of ["conformanceImage", "resultsImage"] as const) {
      assert.throws(
        () =>
          assembleImageSet({
            kubernetesVersion: "1.31.4",
            includeCatalog: false,
            [key]: "bad image",
          }),
        (error: unknown) => error instanceof ImageSetError && error.source === key,
      );
    }
  });

  it("passes list file errors through with file:line", () => {
    assert.throws(
      () =>
        assembleImageSet({
          kubernetesVersion: "1.31.4",
          includeCatalog: false,
          listFiles: [{ name: "extra.txt", text: "nginx:1\nnot a reference\n" }],
        }),
      (error: unknown) => error instanceof ImageListError && /^extra\.txt:2: /.test(error.message),
    );
  });

  it("reports an unmirrorable image from configuration too, with its origin", () => {
    const set = assembleImageSet({
      kubernetesVersion: "1.31.4",
      includeCatalog: false,
      extraImages: ["gcr.io/k8s-authenticated-test/agnhost:2.6"],
    });
    assert.deepEqual(
      set.unmirrorable.map((image) => [image.canonical, image.origins]),
      [["gcr.io/k8s-authenticated-test/agnhost:2.6", ["config extraImages[0]"]]],
    );
    assert.deepEqual(
      set.unmirrorable[0]?.reference,
      parseImageReference("gcr.io/k8s-authenticated-test/agnhost:2.6"),
    );
  });

  it("fails for a version the catalog does not have when the catalog is requested", () => {
    assert.throws(
      () => assembleImageSet({ kubernetesVersion: "1.34.1", includeCatalog: true }),
      UnknownKubernetesVersionError,
    );
  });
});
