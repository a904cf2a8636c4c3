import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import * as path from "node:path";
import {
  copyReportLine,
  megabytes,
  planTransfer,
  transferPlanLine,
  transferSummaryLine,
} from "../../../components/mirror/progress";
import type { CopyRequest } from "../../../components/mirror/actions/skopeo";
import { scratchDir } from "../../scratch";

describe("mirror progress lines", function () {
  it("says how many images are there, how many to copy and how big", function () {
    assert.equal(
      transferPlanLine({ total: 120, present: 100, toCopy: 20, bytes: 412_345_678, unsized: 0 }),
      "120 images: 100 already in the mirror, 20 to copy (412 MB)",
    );
    assert.equal(
      transferPlanLine({ total: 1, present: 1, toCopy: 0, bytes: 0, unsized: 0 }),
      "1 image: 1 already in the mirror, 0 to copy",
    );
    assert.match(
      transferPlanLine({ total: 3, present: 0, toCopy: 3, bytes: 5e6, unsized: 1 }),
      /3 to copy \(5\.0 MB and 1 image of unknown size\)$/,
    );
    assert.match(
      transferPlanLine({
        total: 3,
        present: 0,
        toCopy: 3,
        unsized: 3,
        destinationUnreachable: "connect ECONNREFUSED 127.0.0.1:5001",
      }),
      /size unknown.*could not be asked \(connect ECONNREFUSED 127\.0\.0\.1:5001\), so every image counts as to copy$/,
    );
    assert.equal(megabytes(8_400_000), "8.4 MB");
  });

  it("reports each copy's bytes and retries, and sums only this update's copies", function () {
    const start = new Date("2026-11-29T20:00:00Z");
    const report = {
      bytes: 8_000_000,
      retries: 2,
      seconds: 1.25,
      finishedAt: "2026-11-29T20:01:00Z",
    };
    assert.equal(
      copyReportLine("registry.k8s.io/pause:3.10", report),
      "copied registry.k8s.io/pause:3.10: 8.0 MB in 1.3 s, 2 retries",
    );
    assert.equal(
      copyReportLine("x", { ...report, retries: 1, bytes: undefined }),
      "copied x: 1.3 s, 1 retry",
    );
    const earlier = { ...report, finishedAt: "2026-11-28T10:00:00Z" };
    assert.equal(
      transferSummaryLine([report, report, earlier, undefined], start),
      "mirror done: 2 copied (16.0 MB, 4 retries), 2 already there, 4 images in all",
    );
    assert.equal(
      transferSummaryLine([earlier], start),
      "mirror done: 0 copied, 1 already there, 1 image in all",
    );
  });

  it("plans against an archive: present by digest, sizes read from the layout, blobs once", async function () {
    const dir = scratchDir("progress-");
    try {
      const blobsDir = path.join(dir, "blobs", "sha256");
      mkdirSync(blobsDir, { recursive: true });
      const put = (text: string) => {
        const hex = createHash("sha256").update(text).digest("hex");
        writeFileSync(path.join(blobsDir, hex), text);
        return { digest: `sha256:${hex}`, size: Buffer.byteLength(text) };
      };
      const base = { digest: `sha256:${"a".repeat(64)}`, size: 3_000_000 };
      const manifest = (own: number) =>
        put(
          JSON.stringify({
            schemaVersion: 2,
            config: { digest: `sha256:${String(own).repeat(64)}`, size: 1000 },
            layers: [base, { digest: `sha256:${String(own + 1).repeat(64)}`, size: 2_000_000 }],
          }),
        );
      const one = manifest(1);
      const two = manifest(3);
      writeFileSync(
        path.join(dir, "index.json"),
        JSON.stringify({
          schemaVersion: 2,
          manifests: [
            { ...one, annotations: { "org.opencontainers.image.ref.name": "example.com/one:1" } },
            { ...two, annotations: { "org.opencontainers.image.ref.name": "example.com/two:1" } },
          ],
        }),
      );
      const exportInto = scratchDir("progress-dest-");
      const request = (source: string): CopyRequest => ({
        source,
        from: { transport: "oci", directory: dir, refName: source },
        to: { transport: "oci", directory: exportInto, refName: source },
      });
      const plan = await planTransfer([
        { request: request("example.com/one:1") },
        { request: request("example.com/two:1") },
        { request: request("example.com/missing:1") },
      ]);
      rmSync(exportInto, { recursive: true, force: true });
      // The shared base layer counts once: 3 MB + 2 × (2 MB + 1 kB).
      assert.deepEqual(plan, { total: 3, present: 0, toCopy: 3, bytes: 7_002_000, unsized: 1 });
      // Already in the destination (the same layout), by digest.
      const again = await planTransfer([
        {
          request: {
            ...request("example.com/one:1"),
            to: { transport: "oci", directory: dir, refName: "example.com/one:1" },
          },
          expectedDigest: one.digest,
        },
      ]);
      assert.equal(again.present, 1);
      assert.equal(again.toCopy, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
