import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { extract } from "tar-stream";
import { writePreloadTarball } from "../../../components/nodes/actions/preload-tarball";
import {
  preloadTarballRuntime,
  type PreloadTarballOutputs,
} from "../../../components/nodes/preload-runtime";
import { scratchDir } from "../../scratch";
import { bytesOf, writeLayout } from "../mirror/oci-layout";

async function tarMembers(file: string): Promise<Map<string, Buffer>> {
  const members = new Map<string, Buffer>();
  const reader = extract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on("end", () => {
        members.set(header.name, Buffer.concat(chunks));
        next();
      });
    });
    reader.on("finish", resolve);
    reader.on("error", reject);
  });
  reader.end(readFileSync(file));
  await done;
  return members;
}

describe("preload tarball from an archive (writePreloadTarball)", function () {
  const base = bytesOf("base", 3000);
  function archive() {
    const directory = scratchDir("preload-archive-");
    const digests = writeLayout(directory, [
      {
        name: "registry.k8s.io/conformance:v1.31.4",
        platforms: [
          { platform: "linux/amd64", layers: [base, bytesOf("e2e-amd64", 2000)] },
          { platform: "linux/arm64", layers: [bytesOf("e2e-arm64", 2000)] },
        ],
      },
      {
        name: "registry.k8s.io/pause:3.10",
        platforms: [{ platform: "linux/amd64", layers: [base, bytesOf("pause", 700)] }],
      },
    ]);
    const images = Object.entries(digests).map(([source, digest]) => ({ source, digest }));
    return { directory, images };
  }

  it("is the same bytes for the same archive: the sha256 names the content", async function () {
    const { directory, images } = archive();
    const request = {
      archiveDirectory: directory,
      images,
      platform: "linux/amd64",
      outputDirectory: scratchDir("preload-out-"),
    };
    const first = await writePreloadTarball(request);
    const again = await writePreloadTarball({
      ...request,
      images: [...images].reverse(),
      outputDirectory: scratchDir("preload-out-"),
    });
    assert.equal(again.sha256, first.sha256);
    assert.equal(path.basename(first.file), `preload-${first.sha256.slice(0, 16)}.tar`);
    assert.equal(createHash("sha256").update(readFileSync(first.file)).digest("hex"), first.sha256);
    assert.deepEqual(first.repoTags, [
      "registry.k8s.io/conformance:v1.31.4",
      "registry.k8s.io/pause:3.10",
    ]);
    // Only the chosen platform, each blob once (the shared base layer too).
    const members = await tarMembers(first.file);
    const manifest = JSON.parse(members.get("manifest.json")!.toString()) as {
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }[];
    assert.equal(manifest.length, 2);
    const baseMember = `blobs/sha256/${createHash("sha256").update(base).digest("hex")}`;
    assert.ok(manifest.every((image) => image.Layers[0] === baseMember));
    assert.ok(
      !members.has(
        `blobs/sha256/${createHash("sha256").update(bytesOf("e2e-arm64", 2000)).digest("hex")}`,
      ),
    );
    assert.equal(
      members.size,
      1 + 1 + 2 * 2,
      "manifest.json, the base layer, two configs, two layers",
    );
    for (const image of manifest) {
      const config = JSON.parse(members.get(image.Config)!.toString()) as { architecture: string };
      assert.equal(config.architecture, "amd64");
    }
    // The other platform gives another tarball.
    const arm = await writePreloadTarball({
      ...request,
      images: images.filter((image) => image.source.includes("conformance")),
      platform: "linux/arm64",
    });
    assert.notEqual(arm.sha256, first.sha256);
  });

  it("refuses a corrupt blob, a digest the lock does not pin and a missing platform, leaving no file", async function () {
    const { directory, images } = archive();
    const outputDirectory = scratchDir("preload-out-");
    const request = {
      archiveDirectory: directory,
      images,
      platform: "linux/amd64",
      outputDirectory,
    };
    await assert.rejects(
      writePreloadTarball({ ...request, platform: "linux/s390x" }),
      /registry\.k8s\.io\/conformance:v1\.31\.4: the archive has no linux\/s390x image of it/,
    );
    await assert.rejects(
      writePreloadTarball({ ...request, images: [{ ...images[1], digest: images[0].digest }] }),
      /registry\.k8s\.io\/pause:3\.10: the archive holds sha256:[0-9a-f]{64}, its lock file says/,
    );
    await assert.rejects(
      writePreloadTarball({
        ...request,
        images: [{ source: "registry.k8s.io/etcd:3.5", digest: images[0].digest }],
      }),
      /registry\.k8s\.io\/etcd:3\.5: not in the archive/,
    );
    const layer = path.join(
      directory,
      "blobs",
      "sha256",
      createHash("sha256").update(bytesOf("pause", 700)).digest("hex"),
    );
    writeFileSync(layer, bytesOf("tampered", 700));
    await assert.rejects(writePreloadTarball(request), /is corrupt or tampered with/);
    assert.deepEqual(readdirSync(outputDirectory), [], "nothing half-written is left");
    assert.ok(existsSync(directory));
  });

  it("leaves out an image referenced by digest alone, and says why", async function () {
    const { directory, images } = archive();
    const pinned = `registry.k8s.io/pause@${images[1].digest}`;
    const written = await writePreloadTarball({
      archiveDirectory: directory,
      images: [images[0], { source: pinned, digest: images[1].digest }],
      platform: "linux/amd64",
      outputDirectory: scratchDir("preload-out-"),
    });
    assert.deepEqual(written.repoTags, ["registry.k8s.io/conformance:v1.31.4"]);
    assert.deepEqual(
      written.skipped.map((entry) => entry.image),
      [pinned],
    );
    assert.match(written.skipped[0].reason, /digest alone/);
  });

  it("the provider: no change while the archive and the file are the same, a new file when the archive changes", async function () {
    const { directory, images } = archive();
    const inputs = {
      archiveDirectory: directory,
      images,
      platform: "linux/amd64",
      outputDirectory: scratchDir("preload-out-"),
    };
    const created = await preloadTarballRuntime.create(inputs);
    const outs = created.outs as PreloadTarballOutputs;
    assert.ok(existsSync(outs.file));
    const unchanged = await preloadTarballRuntime.diff!(created.id, outs, inputs);
    assert.equal(unchanged.changes, false, "a preview shows no change");
    // Another digest in the lock (the archive was exported again): an update, a new file.
    const other = archive();
    const changedInputs = {
      ...inputs,
      archiveDirectory: other.directory,
      images: other.images.slice(1),
    };
    assert.equal(
      (await preloadTarballRuntime.diff!(created.id, outs, changedInputs)).changes,
      true,
    );
    const updated = await preloadTarballRuntime.update!(created.id, outs, changedInputs);
    const newOuts = updated.outs as PreloadTarballOutputs;
    assert.notEqual(newOuts.sha256, outs.sha256);
    assert.ok(existsSync(newOuts.file) && !existsSync(outs.file), "the old tarball is removed");
    // The file gone from this machine: the next up writes it again (same bytes, same name).
    rmSync(newOuts.file);
    assert.equal(
      (await preloadTarballRuntime.diff!(created.id, newOuts, changedInputs)).changes,
      true,
    );
    const again = (await preloadTarballRuntime.update!(created.id, newOuts, changedInputs))
      .outs as PreloadTarballOutputs;
    assert.equal(again.sha256, newOuts.sha256);
    assert.equal(again.file, newOuts.file);
    await preloadTarballRuntime.delete!(created.id, again);
    assert.ok(!existsSync(again.file));
  });
});
