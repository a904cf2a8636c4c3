import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { scratchDir } from "../scratch";
import { readLock, writeLock } from "../../components/mirror/actions/archive";
import { joinArchive, splitArchive } from "../../components/mirror/actions/archive-parts";
import { measureArchive } from "../../components/mirror/actions/archive-size";
import { checkImages, type RegistryAccess } from "../../components/mirror/actions/registry-client";
import { measureRegistryImages } from "../../components/mirror/actions/registry-size";
import { copyImage } from "../../components/mirror/actions/skopeo";
import { planImageCopies } from "../../components/mirror/plan";
import { run } from "../lab/exec";
import { labDir } from "../lab/paths";
import { startLabRegistry, type LabRegistry } from "../lab/registries";
import { labUpstreams, type LabUpstreams } from "../lab/upstreams";

function accessOf(registry: LabRegistry): RegistryAccess {
  return { host: registry.endpoint, scheme: registry.scheme, caFile: registry.caFile };
}

describe("archives on removable media, with real registries and skopeo", function () {
  let upstreams: LabUpstreams;
  let archive: string;

  /** A cosign-style signature tag beside pause, as `cosign sign` leaves it. */
  let signature: string;

  function upstreamSource() {
    return {
      kind: "upstream" as const,
      registries: Object.fromEntries(
        Object.entries(upstreams.registries).map(([name, registry]) => [name, accessOf(registry)]),
      ),
    };
  }

  function exportPlan(extra: string[] = []) {
    return planImageCopies({
      images: [...upstreams.images.map((image) => image.name), ...extra],
      source: upstreamSource(),
      destination: { kind: "archive", directory: archive },
    });
  }

  before(async function () {
    upstreams = await labUpstreams();
    archive = path.join(scratchDir("media-", labDir), "images");
    const pause = upstreams.images.find((image) => image.repository === "pause")!;
    const registry = upstreams.registries["registry.k8s.io"].endpoint;
    const tag = `${pause.digest.replace(":", "-")}.sig`;
    // Any small manifest stands in for the signature payload; what matters is where it is.
    await run("skopeo", [
      "copy",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      `docker://${registry}/pause:3.10`,
      `docker://${registry}/pause:${tag}`,
    ]);
    signature = `registry.k8s.io/pause:${tag}`;
  });

  it("reports the sizes from the source registries before anything is written, as the archive then holds them", async function () {
    const plan = exportPlan();
    const before = await measureRegistryImages([
      ...plan.copies.map((copy) => {
        const from = copy.request.from;
        assert.equal(from.transport, "docker");
        return {
          image: copy.source,
          access: from.access,
          repository: from.repository,
          reference: from.reference,
        };
      }),
      // A registry nobody answers on: reported, not fatal.
      {
        image: "quay.io/nowhere/image:1",
        access: { host: "127.0.0.1:9", scheme: "http" as const },
        repository: "nowhere/image",
        reference: "1",
      },
    ]);
    assert.deepEqual(
      before.unmeasured.map((entry) => entry.image),
      ["quay.io/nowhere/image:1"],
    );
    // The signature beside pause is found, and reported as dropped: it is not in the set.
    assert.deepEqual(
      before.droppedCompanions.map((companion) => [companion.kind, companion.reference]),
      [["signature", signature]],
    );
    assert.match(before.unmeasured[0].reason, /cannot reach registry 127\.0\.0\.1:9/);

    const digests = await Promise.all(
      plan.copies.map((copy) => copyImage(copy.request, { retries: 0 })),
    );
    writeLock(
      archive,
      plan.copies.map((copy, index) => ({ source: copy.source, digest: digests[index] })),
    );
    const after = await measureArchive(archive);
    const { unmeasured, companions, droppedCompanions, ...measured } = before;
    assert.equal(unmeasured.length, 1);
    assert.equal(companions.length, 1);
    assert.equal(droppedCompanions.length, 1);
    // Same images, platforms and bytes; the order of the archive's index is skopeo's.
    const byImage = (report: typeof after) =>
      Object.fromEntries(report.images.map((image) => [image.image, image]));
    assert.deepEqual(byImage(after), byImage(measured));
    assert.deepEqual(after.platforms, measured.platforms);
    assert.equal(after.totalBytes, measured.totalBytes);
    assert.ok(after.naiveBytes > after.totalBytes, "the lab images share a base layer");
    const busybox = after.images.find((image) => image.image.includes("busybox"))!;
    assert.deepEqual(
      busybox.platforms.map((platform) => platform.platform),
      ["linux/amd64", "linux/arm64"],
    );
  });

  it("carries a signature named in the set, and no longer reports it dropped", async function () {
    const plan = exportPlan([signature]);
    const report = await measureRegistryImages(
      plan.copies.map((copy) => {
        const from = copy.request.from;
        assert.equal(from.transport, "docker");
        return {
          image: copy.source,
          access: from.access,
          repository: from.repository,
          reference: from.reference,
        };
      }),
    );
    assert.deepEqual(report.droppedCompanions, []);
    assert.deepEqual(
      report.companions.map((companion) => companion.reference),
      [signature],
    );
    const signed = path.join(scratchDir("signed-", labDir), "images");
    const copy = planImageCopies({
      images: [signature],
      source: upstreamSource(),
      destination: { kind: "archive", directory: signed },
    }).copies[0];
    const digest = await copyImage(copy.request, { retries: 0 });
    const index = JSON.parse(readFileSync(path.join(signed, "index.json"), "utf8")) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    assert.deepEqual(
      index.manifests.map((entry) => [
        entry.annotations["org.opencontainers.image.ref.name"],
        entry.digest,
      ]),
      [[signature, digest]],
    );
  });

  it("carries the archive in small parts, refuses a corrupted part by name, and imports the joined archive", async function () {
    const parts = path.join(scratchDir("parts-", labDir), "usb");
    const manifest = await splitArchive(archive, parts, 64 * 1024);
    assert.ok(manifest.parts.length > 3);
    const victim = manifest.parts[1].name;
    const original = readFileSync(path.join(parts, victim));
    const corrupted = Buffer.from(original);
    corrupted[0] ^= 0x01;
    writeFileSync(path.join(parts, victim), corrupted);
    const joined = path.join(scratchDir("joined-", labDir), "images");
    await assert.rejects(joinArchive(parts, joined), new RegExp(`part ${victim} is corrupt`));

    writeFileSync(path.join(parts, victim), original);
    await joinArchive(parts, joined);
    const target = await startLabRegistry({ name: "lab-mirror-from-parts" });
    try {
      const importPlan = planImageCopies({
        images: upstreams.images.map((image) => image.name),
        source: { kind: "archive", directory: joined },
        destination: {
          kind: "registry",
          access: accessOf(target),
          nodeEndpoint: "mirror.lab:5000",
        },
        lock: readLock(joined),
      });
      for (const copy of importPlan.copies) {
        assert.equal(await copyImage(copy.request, { retries: 0 }), copy.expectedDigest);
      }
      const results = await checkImages(
        accessOf(target),
        importPlan.copies.map((copy) => ({
          repository: copy.request.to.transport === "docker" ? copy.request.to.repository : "",
          reference: copy.request.to.transport === "docker" ? copy.request.to.reference : "",
          expectedDigest: copy.expectedDigest,
        })),
      );
      assert.deepEqual(
        results.map((result) => result.state),
        upstreams.images.map(() => "present"),
      );
    } finally {
      await target.stop();
    }
  });
});
