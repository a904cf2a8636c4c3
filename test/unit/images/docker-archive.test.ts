import assert from "node:assert/strict";
import { extract } from "tar-stream";
import {
  DockerArchiveError,
  blobMemberName,
  isImportableLayer,
  planDockerArchive,
  platformManifestOf,
  repoTagOf,
  tarEnd,
  tarFileHeader,
  tarPadding,
} from "../../../core/images/docker-archive";
import { linuxPlatformOf } from "../../../core/images/platforms";

const digest = (character: string) => `sha256:${character.repeat(64)}`;

/** Reads a tar stream back with tar-stream (an independent reader): name, size, content. */
async function readTar(bytes: Buffer) {
  const members: { name: string; size: number; mode: number; mtime: number; content: Buffer }[] =
    [];
  const reader = extract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on("end", () => {
        members.push({
          name: header.name,
          size: header.size ?? 0,
          mode: header.mode ?? 0,
          mtime: header.mtime?.getTime() ?? -1,
          content: Buffer.concat(chunks),
        });
        next();
      });
    });
    reader.on("finish", resolve);
    reader.on("error", reject);
  });
  reader.end(bytes);
  await done;
  return members;
}

describe("docker-archive tarball (pure parts)", function () {
  it("names each image by its canonical name with its tag, and refuses a digest-only one", function () {
    assert.equal(repoTagOf("registry.k8s.io/pause:3.10"), "registry.k8s.io/pause:3.10");
    assert.equal(repoTagOf("nginx:1.27"), "docker.io/library/nginx:1.27");
    assert.equal(
      repoTagOf(`registry.k8s.io/pause:3.10@${digest("a")}`),
      "registry.k8s.io/pause:3.10",
    );
    assert.equal(repoTagOf(`registry.k8s.io/pause@${digest("a")}`), undefined);
  });

  it("plans manifest.json first and every blob once, in digest order, whatever the input order", function () {
    const pause = {
      repoTag: "registry.k8s.io/pause:3.10",
      config: { digest: digest("c"), size: 10 },
      layers: [
        { digest: digest("b"), size: 100 },
        { digest: digest("e"), size: 5 },
      ],
    };
    const busybox = {
      repoTag: "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
      config: { digest: digest("d"), size: 11 },
      layers: [
        { digest: digest("b"), size: 100 },
        { digest: digest("a"), size: 7 },
      ],
    };
    const plan = planDockerArchive([pause, busybox]);
    assert.deepEqual(plan, planDockerArchive([busybox, pause]));
    assert.deepEqual(
      plan.blobs.map((blob) => blob.digest),
      ["a", "b", "c", "d", "e"].map(digest),
    );
    assert.deepEqual(plan.repoTags, [busybox.repoTag, pause.repoTag]);
    const manifest = JSON.parse(plan.manifestJson) as {
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }[];
    assert.deepEqual(manifest[1], {
      Config: `blobs/sha256/${"c".repeat(64)}`,
      RepoTags: ["registry.k8s.io/pause:3.10"],
      Layers: [`blobs/sha256/${"b".repeat(64)}`, `blobs/sha256/${"e".repeat(64)}`],
    });
    assert.throws(
      () => planDockerArchive([pause, pause]),
      /registry\.k8s\.io\/pause:3\.10: named twice/,
    );
    assert.throws(() => planDockerArchive([]), DockerArchiveError);
    assert.throws(() => blobMemberName("md5:abc"), /unsupported or malformed digest/);
  });

  it("writes ustar headers any tar reader reads, with fixed owner, mode and time", async function () {
    const content = Buffer.from('[{"Config":"x"}]\n');
    const blob = Buffer.alloc(1000, 7);
    const tar = Buffer.concat([
      tarFileHeader("manifest.json", content.length),
      content,
      tarPadding(content.length),
      tarFileHeader(blobMemberName(digest("f")), blob.length),
      blob,
      tarPadding(blob.length),
      tarEnd(),
    ]);
    assert.equal(tar.length % 512, 0);
    const members = await readTar(tar);
    assert.deepEqual(
      members.map((member) => [member.name, member.size, member.mode, member.mtime]),
      [
        ["manifest.json", content.length, 0o644, 0],
        [`blobs/sha256/${"f".repeat(64)}`, 1000, 0o644, 0],
      ],
    );
    assert.deepEqual(members[1].content, blob);
    assert.deepEqual(tarFileHeader("manifest.json", 5), tarFileHeader("manifest.json", 5));
    assert.throws(() => tarFileHeader("a".repeat(101), 1), /not a short plain path/);
    assert.throws(() => tarFileHeader("../etc/passwd x", 1), /not a short plain path/);
  });

  it("takes the platform's manifest from an index, naming what the index offers when it is absent", function () {
    const index = {
      manifests: [
        { digest: digest("1"), size: 1, platform: { os: "linux", architecture: "amd64" } },
        {
          digest: digest("2"),
          size: 1,
          platform: { os: "linux", architecture: "arm64", variant: "v8" },
        },
      ],
    };
    assert.equal(platformManifestOf(index, "linux/arm64", "x").digest, digest("2"));
    assert.equal(platformManifestOf(index, "linux/amd64", "x").digest, digest("1"));
    assert.throws(
      () => platformManifestOf(index, "linux/s390x", "registry.k8s.io/pause:3.10"),
      /registry\.k8s\.io\/pause:3\.10: the archive has no linux\/s390x image of it \(it holds linux\/amd64, linux\/arm64\/v8\); set imagesPlatform/,
    );
  });

  it("reads gzip and plain tar layers only", function () {
    assert.ok(isImportableLayer("application/vnd.oci.image.layer.v1.tar+gzip"));
    assert.ok(isImportableLayer("application/vnd.oci.image.layer.v1.tar"));
    assert.ok(isImportableLayer("application/vnd.docker.image.rootfs.diff.tar.gzip"));
    assert.ok(!isImportableLayer("application/vnd.oci.image.layer.v1.tar+zstd"));
  });
});

describe("the tarball's default platform", function () {
  it("is this machine's architecture on Linux, whatever this machine's OS", function () {
    assert.equal(linuxPlatformOf("x64"), "linux/amd64");
    assert.equal(linuxPlatformOf("arm64"), "linux/arm64");
    assert.equal(linuxPlatformOf("ppc64"), "linux/ppc64le");
  });
});
