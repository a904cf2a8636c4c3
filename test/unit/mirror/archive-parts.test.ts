import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { scratchDir } from "../../scratch";
import {
  joinArchive,
  parseByteSize,
  splitArchive,
  verifyParts,
} from "../../../components/mirror/actions/archive-parts";
import {
  humanBytes,
  measureArchive,
  renderSizeReport,
} from "../../../components/mirror/actions/archive-size";
import { bytesOf, writeLayout } from "./oci-layout";

const base = bytesOf("shared base layer", 6000);
const images = [
  {
    name: "registry.k8s.io/pause:3.10",
    platforms: [
      { platform: "linux/amd64", layers: [base, bytesOf("pause amd64", 1000)] },
      { platform: "linux/arm64", layers: [bytesOf("pause arm64", 1200)] },
    ],
  },
  {
    name: "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
    platforms: [{ platform: "linux/amd64", layers: [base, bytesOf("busybox", 3000)] }],
    index: true,
  },
  {
    name: "docker.io/library/nginx:1.27",
    platforms: [{ platform: "linux/amd64", layers: [bytesOf("nginx", 2500)] }],
  },
];

function tempDir(prefix: string): string {
  return scratchDir(prefix);
}

/** Every file under a directory with its bytes, for byte-for-byte comparison. */
function tree(directory: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else files[path.relative(directory, file)] = readFileSync(file).toString("base64");
    }
  };
  walk(directory);
  return files;
}

describe("archive size report", function () {
  it("counts per image, per platform, image by image and each blob once", async function () {
    const archive = tempDir("archive-");
    writeLayout(archive, images);
    const report = await measureArchive(archive);
    assert.deepEqual(
      report.images.map((image) => [image.image, image.platforms.map((p) => p.platform)]),
      [
        ["registry.k8s.io/pause:3.10", ["linux/amd64", "linux/arm64"]],
        ["registry.k8s.io/e2e-test-images/busybox:1.36.1-1", ["linux/amd64"]],
        ["docker.io/library/nginx:1.27", ["linux/amd64"]],
      ],
    );
    // Every blob in the layout once is what the archive holds.
    const blobDir = path.join(archive, "blobs", "sha256");
    const onDisk = readdirSync(blobDir).reduce(
      (sum, name) => sum + statSync(path.join(blobDir, name)).size,
      0,
    );
    assert.equal(report.totalBytes, onDisk);
    // The shared base layer is counted in both images but stored once.
    assert.equal(report.naiveBytes - report.totalBytes, base.length);
    const amd64 = report.platforms["linux/amd64"];
    const [pause, busybox, nginx] = report.images.map((image) => image.platforms[0].bytes);
    assert.equal(amd64, pause + busybox + nginx - base.length);
    assert.equal(report.platforms["linux/arm64"], report.images[0].platforms[1].bytes);
    const text = renderSizeReport(report);
    assert.match(text, /^ {4}linux\/arm64 {2}/m);
    assert.match(
      text,
      new RegExp(
        `^total: .* \\(${onDisk} bytes\\) with each blob once; .* saved by shared blobs$`,
        "m",
      ),
    );
  });

  it("prints sizes for people", function () {
    assert.equal(humanBytes(512), "512 B");
    assert.equal(humanBytes(1536), "1.5 KiB");
    assert.equal(humanBytes(4 * 1024 ** 3), "4.0 GiB");
  });
});

describe("archive parts", function () {
  it("parses part sizes and names the argument for a bad one", function () {
    assert.equal(parseByteSize("4G"), 4 * 1024 ** 3);
    assert.equal(parseByteSize("700MiB"), 700 * 1024 ** 2);
    assert.equal(parseByteSize("2048"), 2048);
    assert.throws(
      () => parseByteSize("4 gigs", "--max-part-size"),
      /^ArchiveError: --max-part-size: '4 gigs' is not a size/,
    );
    assert.throws(() => parseByteSize("10"), /below the smallest part of 1 KiB/);
  });

  it("cuts the archive into parts no larger than asked, and joins them back byte for byte", async function () {
    const archive = tempDir("archive-");
    writeLayout(archive, images);
    const parts = tempDir("parts-");
    const maxPartBytes = 4096;
    const manifest = await splitArchive(archive, parts, maxPartBytes);
    assert.ok(manifest.parts.length >= 5, `${manifest.parts.length} parts`);
    for (const part of manifest.parts) {
      const size = statSync(path.join(parts, part.name)).size;
      assert.equal(size, part.bytes);
      assert.ok(size <= maxPartBytes, `${part.name} has ${size} bytes`);
    }
    assert.equal(
      manifest.parts.reduce((sum, part) => sum + part.bytes, 0),
      manifest.totalBytes,
    );
    // The lock travels beside the parts, readable without joining them.
    assert.equal(
      readFileSync(path.join(parts, "images.lock.json"), "utf8"),
      readFileSync(path.join(archive, "images.lock.json"), "utf8"),
    );
    const joined = path.join(tempDir("joined-"), "archive");
    await joinArchive(parts, joined);
    assert.deepEqual(tree(joined), tree(archive));
  });

  it("refuses a corrupted or missing part by name, and writes nothing", async function () {
    const archive = tempDir("archive-");
    writeLayout(archive, images);
    const parts = tempDir("parts-");
    const manifest = await splitArchive(archive, parts, 4096);
    const victim = manifest.parts[2].name;
    const file = path.join(parts, victim);
    const original = readFileSync(file);
    const flipped = Buffer.from(original);
    flipped[100] ^= 0xff;
    writeFileSync(file, flipped);
    const target = path.join(tempDir("joined-"), "archive");
    await assert.rejects(joinArchive(parts, target), new RegExp(`part ${victim} is corrupt`));
    assert.equal(existsSync(target), false);
    assert.deepEqual(readdirSync(path.dirname(target)), [], "no staging directory left behind");

    writeFileSync(file, original.subarray(0, original.length - 1));
    await assert.rejects(
      verifyParts(parts),
      new RegExp(`part ${victim} has ${original.length - 1} bytes`),
    );
    execFileSync("rm", [file]);
    await assert.rejects(verifyParts(parts), new RegExp(`part ${victim} is missing`));
  });

  it("checks the joined images against the lock: a tampered archive is refused", async function () {
    const archive = tempDir("archive-");
    const digests = writeLayout(archive, images);
    // A blob changed before splitting: the parts are consistent, the image is not.
    const [, hex] = digests["docker.io/library/nginx:1.27"].split(":");
    const manifestFile = path.join(archive, "blobs", "sha256", hex);
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as {
      layers: { digest: string }[];
    };
    const layer = path.join(archive, "blobs", "sha256", manifest.layers[0].digest.split(":")[1]);
    writeFileSync(layer, bytesOf("something else", 2500));
    const parts = tempDir("parts-");
    await splitArchive(archive, parts, 8192);
    const target = path.join(tempDir("joined-"), "archive");
    await assert.rejects(
      joinArchive(parts, target),
      /docker\.io\/library\/nginx:1\.27: blob sha256:[0-9a-f]+ is corrupt or tampered with/,
    );
    assert.equal(existsSync(target), false);
  });

  it("will not write parts over other files or join over an existing directory", async function () {
    const archive = tempDir("archive-");
    writeLayout(archive, images);
    const parts = tempDir("parts-");
    writeFileSync(path.join(parts, "something"), "x");
    await assert.rejects(splitArchive(archive, parts, 4096), /is not empty/);
    const other = tempDir("parts-");
    await splitArchive(archive, other, 4096);
    await assert.rejects(joinArchive(other, archive), /already exists; join into a new directory/);
  });
});
