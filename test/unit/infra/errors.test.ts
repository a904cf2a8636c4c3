import assert from "node:assert/strict";
import { buildStackConfig, ConfigError, readTypedConfig } from "../../../infra/config";
import { imageSetForStack, upstreamsForStack } from "../../../infra/images";
import { loadProjectSchema } from "../../../infra/schema";

const schema = loadProjectSchema();
const project = schema.project;

/** Evaluates a stack's config (`key -> value` without the project prefix) as the program does. */
function stack(settings: Record<string, string>) {
  const raw = Object.fromEntries(
    Object.entries(settings).map(([key, value]) => [
      key.includes(":") ? key : `${project}:${key}`,
      value,
    ]),
  );
  return buildStackConfig(readTypedConfig(raw, schema), project);
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    return error;
  }
  assert.fail("no error");
}

describe("config errors name the key to change and the fix", function () {
  it("a misspelt project prefix is an error naming the intended key", function () {
    const misspelt = configError(() => stack({ "airgap-conformence:kubernetesVersion": "1.31.4" }));
    assert.equal(misspelt.key, "airgap-conformence:kubernetesVersion");
    assert.match(misspelt.message, /did you mean airgap-conformance:kubernetesVersion\?/);
    const otherName = configError(() => stack({ "airgap:imagesExtras": "[]" }));
    assert.match(otherName.message, /did you mean airgap-conformance:imagesExtra\?/);
    // Keys of the providers the program uses are theirs, not typos.
    assert.doesNotThrow(() =>
      stack({ "docker:host": "unix:///var/run/docker.sock", kubernetesVersion: "1.31.4" }),
    );
  });

  it("a fresh export stack is told registryEnabled and conformanceEnabled, pointing at Pulumi.export.yaml", function () {
    const archive = { imagesDestination: "archive", imagesArchiveDirectory: "/media/usb/images" };
    const conformance = configError(() => stack(archive));
    assert.equal(conformance.key, `${project}:conformanceEnabled`);
    assert.match(conformance.message, /false when imagesDestination is archive/);
    assert.match(conformance.message, /Pulumi\.export\.yaml/);
    const registry = configError(() =>
      stack({ ...archive, conformanceEnabled: "false", kubernetesVersion: "1.31.4" }),
    );
    assert.equal(registry.key, `${project}:registryEnabled`);
    assert.match(registry.message, /Pulumi\.export\.yaml/);
    assert.doesNotThrow(() =>
      stack({
        ...archive,
        conformanceEnabled: "false",
        registryEnabled: "false",
        kubernetesVersion: "1.31.4",
      }),
    );
  });

  it("a version without a shipped list says to set imagesListFiles and imagesIncludeCatalog false", function () {
    const error = configError(() =>
      imageSetForStack(stack({ kubernetesVersion: "1.29.4" }), project),
    );
    assert.equal(error.key, `${project}:kubernetesVersion`);
    assert.match(error.message, /1\.31, 1\.33, 1\.35/);
    assert.match(error.message, /regenerate-catalog\.sh 1\.29\.4/);
    assert.match(error.message, /imagesListFiles/);
    assert.match(error.message, /imagesIncludeCatalog to false/);
    // And that fix works: the list file alone, catalog off.
    const fixed = imageSetForStack(
      stack({
        kubernetesVersion: "1.29.4",
        imagesIncludeCatalog: "false",
        imagesListFiles: '["kubernetes-v1.29.4.txt"]',
      }),
      project,
      () => "registry.k8s.io/e2e-test-images/agnhost:2.47\n",
    );
    assert.ok(fixed.images.some((image) => image.canonical.endsWith("agnhost:2.47")));
  });

  it("a collision names mirrorUpstreamPrefixes in the stack's list form, and that value fixes it", function () {
    const settings = {
      kubernetesVersion: "1.31.4",
      registryNetworks: '["kind"]',
      imagesExtra: '["quay.io/library/pause:1","pause:2"]',
    };
    const config = stack(settings);
    const error = configError(() => upstreamsForStack(config, project, "kind-registry:5000"));
    assert.equal(error.key, `${project}:mirrorUpstreamPrefixes`);
    assert.doesNotMatch(error.message, /upstreamPrefixes: \{/);
    assert.doesNotMatch(error.message, /override_path/);
    const suggested = /mirrorUpstreamPrefixes: (\[[^\]]*\])/.exec(error.message)?.[1];
    assert.ok(suggested, error.message);
    const fixed = stack({ ...settings, mirrorUpstreamPrefixes: suggested });
    const upstreams = upstreamsForStack(fixed, project, "kind-registry:5000");
    assert.deepEqual(
      upstreams.find((upstream) => upstream.registry === "quay.io"),
      { registry: "quay.io", pathPrefix: "quay.io" },
    );
  });

  it("imagesPlatform names its key", function () {
    const error = configError(() =>
      stack({ kubernetesVersion: "1.31.4", imagesPlatform: "amd64" }),
    );
    assert.equal(error.key, `${project}:imagesPlatform`);
    assert.match(error.message, /linux\/amd64/);
  });

  it("an image error names the key once", function () {
    const error = configError(() =>
      imageSetForStack(
        stack({ kubernetesVersion: "1.31.4", imagesExtra: '["bad image"]' }),
        project,
      ),
    );
    assert.equal(error.message.split(`${project}:imagesExtra[0]`).length - 1, 1, error.message);
  });

  it("a missing CA file is reported under the key that was set", function () {
    const config = stack({ kubernetesVersion: "1.31.4", mirrorCaFile: "/nonexistent/ca.crt" });
    assert.equal(config.nodes.caFileKey, `${project}:mirrorCaFile`);
    const both = stack({
      kubernetesVersion: "1.31.4",
      mirrorCaFile: "/a.crt",
      nodesMirrorCaFile: "/b.crt",
    });
    assert.equal(both.nodes.caFile, "/b.crt");
    assert.equal(both.nodes.caFileKey, `${project}:nodesMirrorCaFile`);
  });
});
