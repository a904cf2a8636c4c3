import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { ImageListError, k3sSystemImageList } from "../../../core/images";
import { buildStackConfig, ConfigError, readTypedConfig } from "../../../infra/config";
import { imageSetForStack } from "../../../infra/images";
import { loadProjectSchema } from "../../../infra/schema";

const fixture = path.resolve(__dirname, "..", "..", "fixtures", "k3s", "k3s-images.txt");
const schema = loadProjectSchema();
const project = schema.project;

function stack(values: Record<string, string>) {
  return buildStackConfig(
    readTypedConfig({ [`${project}:kubernetesVersion`]: "1.31.4", ...values }, schema),
    project,
  );
}

describe("k3s system images", function () {
  it("adds every image of the release's k3s-images.txt to the set, saying where it came from", function () {
    const without = imageSetForStack(stack({}), project);
    const config = stack({ [`${project}:imagesK3sImagesFile`]: fixture });
    const withK3s = imageSetForStack(config, project);
    const lines = readFileSync(fixture, "utf8").trim().split("\n");
    assert.equal(withK3s.images.length, without.images.length + lines.length);
    const pause = withK3s.images.find(
      (image) => image.canonical === "docker.io/rancher/mirrored-pause:3.6",
    );
    assert.ok(pause, "the k3s pause image is in the set");
    assert.deepEqual(pause.origins, [`list file ${fixture} (k3s system images):8`]);
  });

  it("names the key, the file and the line of a bad list, and refuses an empty one", function () {
    assert.throws(
      () =>
        k3sSystemImageList("docker.io/rancher/klipper-lb:v0.4.9\nNot An Image\n", "k3s-images.txt"),
      (error: unknown) =>
        error instanceof ImageListError &&
        error.message.startsWith("k3s-images.txt (k3s system images):2:"),
    );
    assert.throws(
      () => k3sSystemImageList("\n", "k3s-images.txt"),
      /holds no image reference; give the k3s-images.txt published with the k3s release/,
    );
    const config = stack({ [`${project}:imagesK3sImagesFile`]: "/nonexistent/k3s-images.txt" });
    assert.throws(
      () => imageSetForStack(config, project),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.key === `${project}:imagesK3sImagesFile` &&
        /readable/.test(error.message),
    );
    assert.throws(
      () => imageSetForStack(config, project, () => "docker.io/rancher/Bad:1\n"),
      (error: unknown) =>
        error instanceof ConfigError && error.key === `${project}:imagesK3sImagesFile`,
    );
  });

  it("k3s node options need a k3s or rke2 node", function () {
    for (const key of ["nodesK3sSystemDefaultRegistry", "nodesK3sEmbeddedRegistry"]) {
      assert.throws(
        () =>
          stack({
            [`${project}:${key}`]: "true",
            [`${project}:nodes`]: JSON.stringify(["docker://kind-worker?runtime=containerd"]),
          }),
        new RegExp(
          `config ${project}:${key}: got "true"; allowed: false unless nodes lists a runtime=k3s`,
        ),
      );
      const config = stack({
        [`${project}:${key}`]: "true",
        [`${project}:nodes`]: JSON.stringify(["docker://rke2-server?runtime=rke2"]),
      });
      assert.equal(Object.values(config.nodes.k3s).filter(Boolean).length, 1);
    }
  });
});
