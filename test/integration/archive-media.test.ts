import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { readLock, writeLock } from "../../components/mirror/actions/archive";
import { joinArchive, splitArchive } from "../../components/mirror/actions/archive-parts";
import { measureArchive } from "../../components/mirror/actions/archive-size";
import { checkImages, type RegistryAccess } from "../../components/mirror/actions/registry-client";
import { measureRegistryImages } from "../../components/mirror/actions/registry-size";
import { copyImage } from "../../components/mirror/actions/skopeo";
import { planImageCopies } from "../../components/mirror/plan";
import { labDir } from "../lab/paths";
import { startLabRegistry, type LabRegistry } from "../lab/registries";
import { labUpstreams, type LabUpstreams } from "../lab/upstreams";

function accessOf(registry: LabRegistry): RegistryAccess {
  return { host: registry.endpoint, scheme: registry.scheme, caFile: registry.caFile };
}

describe("archives on removable media, with real registries and skopeo", function () {
  let upstreams: LabUpstreams;
  let archive: string;

  function exportPlan() {
    return planImageCopies({
      images: upstreams.images.map((image) => image.name),
      source: {
        kind: "upstream",
        registries: Object.fromEntries(
          Object.entries(upstreams.registries).map(([name, registry]) => [
            name,
            accessOf(registry),
          ]),
        ),
      },
      destination: { kind: "archive", directory: archive },
    });
  }

  before(async function () {
    upstreams = await labUpstreams();
    archive = path.join(mkdtempSync(path.join(labDir, "media-")), "images");
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
    assert.match(before.unmeasured[0].reason, /cannot reach registry 127\.0\.0\.1:9/);

    const digests = await Promise.all(
      plan.copies.map((copy) => copyImage(copy.request, { retries: 0 })),
    );
    writeLock(
      archive,
      plan.copies.map((copy, index) => ({ source: copy.source, digest: digests[index] })),
    );
    const after = await measureArchive(archive);
    const { unmeasured, ...measured } = before;
    assert.equal(unmeasured.length, 1);
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

  it("carries the archive in small parts, refuses a corrupted part by name, and imports the joined archive", async function () {
    const parts = path.join(mkdtempSync(path.join(labDir, "parts-")), "usb");
    const manifest = await splitArchive(archive, parts, 64 * 1024);
    assert.ok(manifest.parts.length > 3);
    const victim = manifest.parts[1].name;
    const original = readFileSync(path.join(parts, victim));
    const corrupted = Buffer.from(original);
    corrupted[0] ^= 0x01;
    writeFileSync(path.join(parts, victim), corrupted);
    const joined = path.join(mkdtempSync(path.join(labDir, "joined-")), "images");
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
