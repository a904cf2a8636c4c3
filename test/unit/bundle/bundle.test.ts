import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  createBundle,
  missingPlugins,
  pluginArchiveName,
  pluginCacheDirectory,
  projectExcludes,
  providerPlugins,
  runBundleCli,
  type ProviderPlugin,
} from "../../../cli/bundle";
import { scratchDir } from "../../scratch";

const packageJson = JSON.parse(
  readFileSync(path.join(__dirname, "../../../package.json"), "utf8"),
) as { dependencies: Record<string, string> };

/** A plugin cache laid out as `pulumi plugin install` leaves it, with the given plugins. */
function fakePluginCache(dir: string, plugins: ProviderPlugin[]): void {
  for (const plugin of plugins) {
    const pluginDir = pluginCacheDirectory(plugin, dir);
    mkdirSync(pluginDir, { recursive: true });
    const binary = path.join(pluginDir, `pulumi-resource-${plugin.name}`);
    writeFileSync(binary, `#!/bin/sh\necho ${plugin.name} ${plugin.version}\n`);
    chmodSync(binary, 0o755);
  }
}

describe("carry-in bundle", function () {
  let scratch: string;
  beforeEach(function () {
    scratch = scratchDir("bundle-unit-");
  });
  afterEach(function () {
    rmSync(scratch, { recursive: true, force: true });
  });

  it("derives each provider plugin and its exact version from package.json", function () {
    const plugins = providerPlugins();
    assert.deepEqual(
      plugins.map((plugin) => plugin.npmPackage),
      ["@pulumi/command", "@pulumi/docker", "@pulumi/kubernetes"],
    );
    for (const plugin of plugins) {
      // The plugin version is the pinned npm version (the two are released together).
      assert.equal(plugin.version, packageJson.dependencies[plugin.npmPackage].replace(/^v/, ""));
      assert.match(plugin.version, /^\d+\.\d+\.\d+$/);
    }
    assert.equal(
      pluginArchiveName({ name: "docker", version: "5.2.0", npmPackage: "" }, "linux-amd64"),
      "pulumi-resource-docker-v5.2.0-linux-amd64.tar.gz",
    );
  });

  it("names a missing plugin with its version and how to get it, and writes nothing", function () {
    const plugins = providerPlugins();
    const cache = path.join(scratch, "plugins");
    const [absent, ...present] = plugins;
    fakePluginCache(cache, present);
    assert.deepEqual(
      missingPlugins(plugins, cache).map((entry) => entry.plugin.name),
      [absent.name],
    );
    const out = path.join(scratch, "bundle");
    const result = runBundleCli(["--out", out, "--plugins-dir", cache]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`provider plugins missing from ${cache}`));
    assert.match(
      result.stderr,
      new RegExp(
        `${absent.name} ${absent.version} \\(${absent.npmPackage}\\): pulumi plugin install resource ${absent.name} ${absent.version} `,
      ),
    );
    assert.match(
      result.stderr,
      new RegExp(`pulumi-${absent.name}/releases/tag/v${absent.version}`),
    );
    assert.equal(existsSync(out), false);
    assert.throws(() => createBundle({ out, pluginsDir: cache }), /missing/);
  });

  it("refuses an images directory without a lock file, before writing anything", function () {
    const cache = path.join(scratch, "plugins");
    fakePluginCache(cache, providerPlugins());
    const images = path.join(scratch, "images");
    mkdirSync(images);
    const tar = path.join(scratch, "registry.tar");
    writeFileSync(tar, "");
    const out = path.join(scratch, "bundle");
    const result = runBundleCli([
      "--out",
      out,
      "--plugins-dir",
      cache,
      "--images",
      images,
      "--registry-image-tar",
      tar,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--images .*: no images\.lock\.json; export the images first/);
    assert.equal(existsSync(out), false);
  });

  it("leaves out every directory git ignores but node_modules (results, scratch, node scripts)", function () {
    const ignored = readFileSync(path.join(__dirname, "../../../.gitignore"), "utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#") && line.endsWith("/"))
      .map((line) => line.replace(/\/$/, ""))
      .filter((dir) => dir !== "node_modules");
    assert.ok(ignored.includes("node-scripts"));
    for (const dir of ignored) assert.ok(projectExcludes.has(dir), dir);
  });

  it("--help exits 0; verify of a non-bundle names the manifest", function () {
    const help = runBundleCli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /npm run bundle -- verify DIR/);
    const verify = runBundleCli(["verify", scratch]);
    assert.equal(verify.code, 1);
    assert.match(verify.stderr, /SHA256SUMS: missing; not a bundle/);
  });
});
