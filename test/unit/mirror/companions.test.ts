import assert from "node:assert/strict";
import {
  companionTags,
  droppedCompanions,
  findCompanions,
  isCompanionTag,
  repositoryName,
} from "../../../components/mirror/actions/companions";
import {
  RegistryRequestError,
  type RegistryClient,
} from "../../../components/mirror/actions/registry-client";

const digest = `sha256:${"ab".repeat(32)}`;

/** A registry holding the given tags, with or without the referrers API. */
function registry(tags: string[], referrers?: unknown[]): RegistryClient {
  return {
    async manifestDigest(_repository: string, tag: string) {
      return tags.includes(tag) ? `sha256:${"cd".repeat(32)}` : undefined;
    },
    async getText(_repository: string, kind: string) {
      if (kind === "referrers" && referrers !== undefined) {
        return { body: JSON.stringify({ schemaVersion: 2, manifests: referrers }) };
      }
      throw new RegistryRequestError("answered 404", 404);
    },
  } as unknown as RegistryClient;
}

describe("signatures and attestations beside images", function () {
  it("knows cosign's tags and the referrers fallback tag", function () {
    assert.deepEqual(companionTags(digest), [
      { tag: `sha256-${"ab".repeat(32)}.sig`, kind: "signature" },
      { tag: `sha256-${"ab".repeat(32)}.att`, kind: "attestation" },
      { tag: `sha256-${"ab".repeat(32)}.sbom`, kind: "sbom" },
      { tag: `sha256-${"ab".repeat(32)}`, kind: "referrers" },
    ]);
    assert.ok(isCompanionTag(`sha256-${"ab".repeat(32)}.sig`));
    assert.ok(isCompanionTag(`sha256-${"ab".repeat(32)}`));
    assert.ok(!isCompanionTag("3.10"));
    assert.ok(!isCompanionTag(`sha256-${"ab".repeat(32)}.sig.bak`));
    assert.equal(repositoryName("registry.k8s.io/pause:3.10"), "registry.k8s.io/pause");
    assert.equal(repositoryName("localhost:5000/a/b@sha256:00"), "localhost:5000/a/b");
    assert.equal(repositoryName("localhost:5000/a/b"), "localhost:5000/a/b");
  });

  it("finds cosign tags and referrers, and says which the copy leaves behind", async function () {
    const image = "registry.k8s.io/pause:3.10";
    const sig = `registry.k8s.io/pause:sha256-${"ab".repeat(32)}.sig`;
    const found = await findCompanions(
      registry([`sha256-${"ab".repeat(32)}.sig`, `sha256-${"ab".repeat(32)}.att`]),
      image,
      "pause",
      digest,
    );
    assert.deepEqual(
      found.map((companion) => [companion.kind, companion.reference]),
      [
        ["signature", sig],
        ["attestation", `registry.k8s.io/pause:sha256-${"ab".repeat(32)}.att`],
      ],
    );
    // The signature is in the set by name: carried. The attestation is not: dropped.
    assert.deepEqual(
      droppedCompanions(found, new Set([image, sig])).map((companion) => companion.kind),
      ["attestation"],
    );
    // Referrers through the API have no name to copy by: always reported as dropped.
    const viaApi = await findCompanions(registry([], [{ digest }]), image, "pause", digest);
    assert.deepEqual(viaApi, [
      { image, kind: "referrers", reference: `registry.k8s.io/pause@${digest}` },
    ]);
    assert.equal(droppedCompanions(viaApi, new Set([image])).length, 1);
    assert.deepEqual(await findCompanions(registry([], []), image, "pause", digest), []);
  });
});
