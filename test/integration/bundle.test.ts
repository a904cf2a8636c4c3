import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as path from "node:path";
import {
  pluginArchiveName,
  pluginCacheDirectory,
  providerPlugins,
  type ProviderPlugin,
} from "../../cli/bundle";
import { renderLock, verifyArchivedImage } from "../../components/mirror/actions/archive";
import { run } from "../lab/exec";
import { labDir, projectRoot } from "../lab/paths";
import { labRegistryImage } from "../lab/registry-image";
import { scratchDir } from "../scratch";

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** A one-image OCI layout with its lock file, in the shape the export stack writes. */
function writeImagesArchive(dir: string, refName: string): string {
  mkdirSync(path.join(dir, "blobs", "sha256"), { recursive: true });
  const blob = (data: string) => {
    const digest = sha256(data);
    writeFileSync(path.join(dir, "blobs", "sha256", digest), data);
    return { digest: `sha256:${digest}`, size: Buffer.byteLength(data) };
  };
  const layer = blob("layer bytes");
  const config = blob(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: {} }));
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
    }),
  );
  writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    path.join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": refName },
        },
      ],
    }),
  );
  writeFileSync(
    path.join(dir, "images.lock.json"),
    renderLock([{ source: refName, digest: manifest.digest }]),
  );
  return manifest.digest;
}

function fakePluginCache(dir: string, plugins: ProviderPlugin[]): void {
  for (const plugin of plugins) {
    const pluginDir = pluginCacheDirectory(plugin, dir);
    mkdirSync(pluginDir, { recursive: true });
    const binary = path.join(pluginDir, `pulumi-resource-${plugin.name}`);
    writeFileSync(binary, `#!/bin/sh\necho ${plugin.name} ${plugin.version}\n`);
    chmodSync(binary, 0o755);
  }
}

describe("carry-in bundle, written and verified for real", function () {
  this.timeout(600000);
  let scratch: string;
  let bundle: string;
  let created: { code: number; stdout: string; stderr: string };
  const plugins = providerPlugins();
  const refName = "registry.k8s.io/pause:3.10";
  let imageDigest: string;

  before(async function () {
    scratch = scratchDir("bundle-", labDir);
    const cache = path.join(scratch, "plugin-cache");
    fakePluginCache(cache, plugins);
    const images = path.join(scratch, "exported-images");
    imageDigest = writeImagesArchive(images, refName);
    const extra = path.join(scratch, "pulumi-v3-linux-x64.tar.gz");
    writeFileSync(extra, "stand-in for the Pulumi CLI tarball");
    bundle = path.join(scratch, "media", "airgap-bundle");
    created = await run(
      "npm",
      [
        "run",
        "--silent",
        "bundle",
        "--",
        "--out",
        bundle,
        "--plugins-dir",
        cache,
        "--registry-image",
        labRegistryImage,
        "--images",
        images,
        "--add",
        extra,
      ],
      { cwd: projectRoot, allowFailure: true },
    );
  });

  after(function () {
    rmSync(scratch, { recursive: true, force: true });
  });

  it("writes the project with node_modules, plugins, the registry image, the images and a manifest", async function () {
    assert.equal(created.code, 0, created.stderr);
    assert.match(
      created.stdout,
      new RegExp(`wrote ${bundle} \\(\\d+ files, checksums in SHA256SUMS\\)`),
    );
    for (const file of [
      "package.json",
      "Pulumi.yaml",
      "Pulumi.export.yaml",
      "node_modules/@pulumi/pulumi/package.json",
    ]) {
      assert.ok(existsSync(path.join(bundle, "project", file)), file);
    }
    assert.equal(existsSync(path.join(bundle, "project", ".git")), false);
    assert.equal(existsSync(path.join(bundle, "project", ".lab")), false);
    // Each plugin archive holds the cached plugin binary, installable with --file.
    for (const plugin of plugins) {
      const archive = path.join(bundle, "plugins", pluginArchiveName(plugin));
      const listing = await run("tar", ["-tzf", archive]);
      assert.match(listing.stdout, new RegExp(`^\\./pulumi-resource-${plugin.name}$`, "m"));
      assert.match(created.stdout, new RegExp(`plugin ${plugin.name} ${plugin.version}: plugins/`));
    }
    // A docker save of the registry image (what registryImageTar loads).
    const saved = await run("tar", [
      "-xOf",
      path.join(bundle, "registry-image.tar"),
      "manifest.json",
    ]);
    const manifest = JSON.parse(saved.stdout) as { RepoTags: string[] }[];
    assert.deepEqual(manifest[0].RepoTags, [labRegistryImage]);
    // The images archive, still valid against its lock.
    assert.equal(
      await verifyArchivedImage(path.join(bundle, "images"), refName, imageDigest),
      imageDigest,
    );
    assert.ok(existsSync(path.join(bundle, "extra", "pulumi-v3-linux-x64.tar.gz")));
    const info = JSON.parse(readFileSync(path.join(bundle, "bundle.json"), "utf8"));
    assert.deepEqual(
      info.plugins.map((p: ProviderPlugin) => `${p.name}@${p.version}`),
      plugins.map((p) => `${p.name}@${p.version}`),
    );
    assert.deepEqual(info.images, { directory: "images", count: 1 });
    // The manifest is what sha256sum itself checks.
    const sums = await run("sha256sum", ["-c", "--quiet", "SHA256SUMS"], {
      cwd: bundle,
      allowFailure: true,
    });
    assert.equal(sums.code, 0, sums.stdout + sums.stderr);
    const tarSum = await run("sha256sum", ["-c", "airgap-bundle.tar.sha256"], {
      cwd: path.dirname(bundle),
    });
    assert.match(tarSum.stdout, /airgap-bundle\.tar: OK/);
  });

  it("verifies on the gap side from the tarball, with the bundle's own project, and prints the steps", async function () {
    const gap = path.join(scratch, "gap");
    mkdirSync(gap);
    await run("tar", ["-xf", `${bundle}.tar`, "-C", gap]);
    const arrived = path.join(gap, "airgap-bundle");
    const verify = await run("npm", ["run", "--silent", "bundle", "--", "verify", arrived], {
      cwd: path.join(arrived, "project"),
      allowFailure: true,
    });
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /files match SHA256SUMS/);
    for (const plugin of plugins) {
      assert.match(
        verify.stdout,
        new RegExp(
          `^pulumi plugin install resource ${plugin.name} ${plugin.version} --file "\\$BUNDLE/plugins/${pluginArchiveName(plugin).replace(/\./g, "\\.")}"$`,
          "m",
        ),
      );
    }
    assert.match(verify.stdout, new RegExp(`^BUNDLE=${arrived} `, "m"));
    assert.match(
      verify.stdout,
      /^pulumi config set registryImageTar "\$BUNDLE\/registry-image\.tar"$/m,
    );
    assert.match(verify.stdout, /^pulumi config set imagesArchiveDirectory "\$BUNDLE\/images"$/m);

    // A changed file and an added one are both named.
    appendFileSync(path.join(arrived, "project", "Pulumi.yaml"), "# changed\n");
    writeFileSync(path.join(arrived, "images", "stray"), "x");
    const tampered = await run("npm", ["run", "--silent", "bundle", "--", "verify", arrived], {
      cwd: path.join(arrived, "project"),
      allowFailure: true,
    });
    assert.equal(tampered.code, 1);
    assert.match(tampered.stderr, /project\/Pulumi\.yaml: checksum differs/);
    assert.match(tampered.stderr, /images\/stray: not in SHA256SUMS/);
  });

  it("refuses to write over an existing bundle", async function () {
    const again = await run(
      "npm",
      [
        "run",
        "--silent",
        "bundle",
        "--",
        "--out",
        bundle,
        "--plugins-dir",
        path.join(scratch, "plugin-cache"),
        "--registry-image",
        labRegistryImage,
      ],
      { cwd: projectRoot, allowFailure: true },
    );
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists; give a new directory/);
  });
});
