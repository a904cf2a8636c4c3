import assert from "node:assert/strict";
import {
  entryMatchesPlatform,
  manifestBlobBytes,
  selectIndexEntries,
  type IndexEntry,
} from "../../../core/images/platforms";

// Shaped like registry.k8s.io/pause:3.10's index: platform entries plus a buildx attestation.
const entries: IndexEntry[] = [
  {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"1".repeat(64)}`,
    size: 527,
    platform: { architecture: "amd64", os: "linux" },
  },
  {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"2".repeat(64)}`,
    size: 527,
    platform: { architecture: "arm", os: "linux", variant: "v7" },
  },
  {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"3".repeat(64)}`,
    size: 527,
    platform: { architecture: "arm64", os: "linux", variant: "v8" },
  },
  {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"4".repeat(64)}`,
    size: 566,
    platform: { architecture: "unknown", os: "unknown" },
    annotations: {
      "vnd.docker.reference.digest": `sha256:${"1".repeat(64)}`,
      "vnd.docker.reference.type": "attestation-manifest",
    },
  },
];

describe("platform selection out of an index", function () {
  it("matches os/arch with any variant, and os/arch/variant exactly", function () {
    assert.equal(entryMatchesPlatform(entries[2], "linux/arm64"), true);
    assert.equal(entryMatchesPlatform(entries[2], "linux/arm64/v8"), true);
    assert.equal(entryMatchesPlatform(entries[1], "linux/arm/v6"), false);
    assert.equal(entryMatchesPlatform(entries[3], "linux/arm64"), false);
  });

  it("keeps the chosen entries in the index's order, and drops the rest", function () {
    const chosen = selectIndexEntries(entries, ["linux/arm64", "linux/amd64"], "pause:3.10");
    assert.deepEqual(
      chosen.map((entry) => entry.digest),
      [entries[0].digest, entries[2].digest],
    );
  });

  it("names the image, the platform and what the index offers when a platform is absent", function () {
    assert.throws(
      () => selectIndexEntries(entries, ["linux/s390x"], "registry.k8s.io/pause:3.10"),
      /^Error: registry\.k8s\.io\/pause:3\.10: has no linux\/s390x image; it offers linux\/amd64, linux\/arm\/v7, linux\/arm64\/v8$/,
    );
  });

  it("adds up the config and layer sizes of an image manifest", function () {
    assert.equal(
      manifestBlobBytes({ config: { size: 100 }, layers: [{ size: 1000 }, { size: 20 }] }),
      1120,
    );
    assert.equal(manifestBlobBytes({}), 0);
  });
});
