import { only, resourcesOf, settle, valueOf } from "./harness";
import assert from "node:assert/strict";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { loadStackConfig } from "../../infra/config";
import { imageSetForStack } from "../../infra/images";
import { defineProgram } from "../../infra/program";
import { recorded } from "./harness";
import { readStackFile } from "../../infra/stack-file";
import { renderRancherConfigDropIn, sha256Hex } from "../../core/nodes";
import { createHash } from "node:crypto";
import { scratchDir } from "../scratch";
import { bytesOf, writeLayout } from "../unit/mirror/oci-layout";

const root = path.resolve(__dirname, "..", "..");
const fixtures = path.join(root, "test", "fixtures");

/**
 * What the mock tests change in a stack file: the host-port probe needs a Docker engine (it runs
 * for real in the integration tests) and the kubeconfig must exist (a fixture with the context).
 */
const offline = {
  "airgap-conformance:registryCheckHostPort": "false",
  "airgap-conformance:kubeconfig": path.join(fixtures, "kubeconfig-kind-airgap.yaml"),
};

function useConfig(config: Record<string, string>): void {
  pulumi.runtime.setAllConfig(config);
}

describe("the program (mocks)", function () {
  it("ends on a config error with Pulumi's RunError: the message alone, naming key, value and what is allowed", async function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const program = require("../../infra") as () => Promise<unknown>;
    useConfig({ ...offline, "airgap-conformance:registryHostPort": "50x0" });
    await assert.rejects(program(), (error: Error) => {
      assert.ok(pulumi.RunError.isInstance(error), `${error.name}: ${error.message}`);
      assert.equal(
        error.message,
        'config airgap-conformance:registryHostPort: got "50x0"; allowed: an integer',
      );
      return true;
    });
    // A component's argument error, mapped to its config key, ends the same way.
    useConfig({ ...offline, "airgap-conformance:kubernetesVersion": "1.31.4" });
    await assert.rejects(program(), (error: Error) => {
      assert.ok(pulumi.RunError.isInstance(error), `${error.name}: ${error.message}`);
      assert.match(
        error.message,
        /^config airgap-conformance:registryAdvertisedEndpoint: .*set advertisedEndpoint/,
      );
      return true;
    });
  });

  it("evaluates the dev stack file through the real config code", async function () {
    const { config, secureKeys } = readStackFile(path.join(root, "Pulumi.dev.yaml"));
    assert.deepEqual(secureKeys, []);
    // The host-port probe needs a Docker engine; it runs for real in the integration tests.
    useConfig({ ...config, ...offline });
    const stackConfig = loadStackConfig();
    const outputs = defineProgram(stackConfig, "airgap-conformance");
    assert.equal(await valueOf(outputs.registryEndpoint), "kind-registry:5000");
    assert.equal(await valueOf(outputs.registryUrl), "http://kind-registry:5000");
    await valueOf(outputs.imageMapping);
    await settle();
    const container = only(resourcesOf("registry"), "docker:index/container:Container");
    assert.equal(container.inputs.name, "kind-registry");
    assert.deepEqual(container.inputs.ports, [
      { internal: 5000, external: 5001, ip: "127.0.0.1", protocol: "tcp" },
    ]);
    assert.deepEqual(container.inputs.networksAdvanced, [{ name: "kind" }]);

    // Images: the 1.31 catalog plus the conformance image, pushed via the host port.
    const imageSet = imageSetForStack(stackConfig, "airgap-conformance");
    assert.equal(await valueOf(outputs.imageCount), imageSet.images.length);
    const mapping = await valueOf(outputs.imageMapping);
    assert.match(
      mapping["registry.k8s.io/conformance:v1.31.4"],
      /^kind-registry:5000\/conformance:v1\.31\.4@sha256:/,
    );
    const images = resourcesOf("images").filter(
      (resource) => resource.type === "pulumi-nodejs:dynamic/mirror:MirroredImage",
    );
    assert.equal(images.length, imageSet.images.length);
    const pause = images.find(
      (resource) => resource.inputs.source === "registry.k8s.io/pause:3.10",
    );
    assert.ok(pause, "the catalog's pause image is mirrored");
    assert.deepEqual((pause.inputs.request as { to: unknown }).to, {
      transport: "docker",
      access: { host: "127.0.0.1:5001", scheme: "http" },
      repository: "pause",
      reference: "3.10",
    });
    assert.ok(
      pause.dependencies.some((urn) => urn.endsWith("::registry-container")),
      "copies wait for the registry",
    );
    assert.match(
      String(await valueOf(outputs.repoList)),
      /promoterE2eRegistry: kind-registry:5000\/e2e-test-images/,
    );
    assert.deepEqual(
      outputs.unmirrorableImages?.map((image) => image.image).sort(),
      imageSet.unmirrorable.map((image) => image.canonical).sort(),
    );
    assert.ok(
      (outputs.unmirrorableImages ?? []).length > 0,
      "invalid/auth-only images are reported",
    );
    assert.equal(outputs.imageCatalog?.kubernetesVersion, "1.31");
    assert.equal(outputs.imageCatalog?.complete, false);

    // The run pulls the conformance image from the mirror and waits for every copy.
    assert.equal(await valueOf(outputs.conformanceImage), "kind-registry:5000/conformance:v1.31.4");
    const preflight = resourcesOf("conformance").find((r) => r.name === "conformance-preflight");
    assert.ok(preflight);
    assert.ok(
      preflight.dependencies.some((urn) =>
        urn.includes("MirroredImage::images-registry.k8s.io/pause:3.10"),
      ),
    );
    const repoListMap = only(resourcesOf("conformance"), "kubernetes:core/v1:ConfigMap");
    assert.equal(
      (repoListMap.inputs.data as Record<string, string>)["repo-list.yaml"],
      await valueOf(outputs.repoList),
    );
  });

  it("the entry point (infra/index.ts) returns the stack outputs", async function () {
    const { config } = readStackFile(path.join(root, "Pulumi.dev.yaml"));
    useConfig({ ...config, ...offline });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const program = require("../../infra/index") as () => Promise<Record<string, unknown>>;
    const outputs = await program();
    assert.equal(
      await valueOf(outputs.registryEndpoint as pulumi.Output<string>),
      "kind-registry:5000",
    );
    assert.ok("imageMapping" in outputs && "conformanceVerdict" in outputs);
  });

  /** Evaluates a stack file with test stand-ins for files and secrets; returns what it registered. */
  async function evaluateStack(file: string, extra: Record<string, string> = {}) {
    const { config } = readStackFile(path.join(root, file));
    const start = recorded.length;
    // Files the stack names on its bastion are replaced by fixtures (only where it names them).
    const files: Record<string, string> = {
      "airgap-conformance:registryTlsCertificateFile": path.join(fixtures, "registry.crt"),
      "airgap-conformance:registryTlsKeyFile": path.join(fixtures, "registry.key"),
      "airgap-conformance:mirrorCaFile": path.join(fixtures, "registry.crt"),
      "airgap-conformance:imagesK3sImagesFile": path.join(fixtures, "k3s", "k3s-images.txt"),
    };
    const standIns = Object.fromEntries(Object.entries(files).filter(([key]) => key in config));
    pulumi.runtime.setAllConfig(
      {
        ...config,
        ...offline,
        ...standIns,
        ...("airgap-conformance:registryUsername" in config
          ? { "airgap-conformance:registryPassword": "stack-registry-pw" }
          : {}),
        "airgap-conformance:nodesSshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nstack-key\n",
        ...extra,
      },
      ["airgap-conformance:registryPassword", "airgap-conformance:nodesSshPrivateKey"],
    );
    const outputs = defineProgram(loadStackConfig(), "airgap-conformance");
    // A stack that preloads from the archive has no mirror and no run.
    if (outputs.imageMapping) await valueOf(outputs.imageMapping);
    if (outputs.conformanceVerdict) await valueOf(outputs.conformanceVerdict);
    await settle();
    return { outputs, registered: recorded.slice(start) };
  }

  it("evaluates the kubeadm stack: TLS + auth registry, SSH nodes with a secret key", async function () {
    const { outputs, registered } = await evaluateStack("Pulumi.kubeadm.yaml");
    assert.equal(await valueOf(outputs.registryUrl), "https://10.0.0.5:5000");
    const nodes = registered.filter((r) => r.type === "command:remote:Command");
    assert.deepEqual(nodes.map((node) => node.name).sort(), [
      "nodes-ssh-10.0.0.11",
      "nodes-ssh-10.0.0.12",
      "nodes-ssh-10.0.0.13",
    ]);
    for (const node of nodes) {
      assert.ok(
        node.secretPaths.some((p) => p.startsWith("connection")),
        `${node.name}: the SSH connection is secret`,
      );
      assert.ok(!JSON.stringify(node.inputs.create ?? "").includes("stack-key"));
      assert.match(
        String((node.inputs.connection as { hostKey?: string }).hostKey),
        /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5/,
        `${node.name}: the host key from nodesSshHostKeys is checked`,
      );
    }
    // The registry password never sits in a command string, and wherever a resource carries it
    // (the run's environment, the copies' credentials) that property is sent as a secret.
    for (const resource of registered) {
      for (const field of ["create", "update", "delete"]) {
        assert.ok(
          !String(resource.inputs[field] ?? "").includes("stack-registry-pw"),
          `${resource.name}.${field}`,
        );
      }
      for (const [name, value] of Object.entries(resource.inputs)) {
        if (JSON.stringify(value ?? "").includes("stack-registry-pw")) {
          assert.ok(
            resource.secretPaths.some((secret) => secret === name || secret.startsWith(`${name}.`)),
            `${resource.name}.${name} carries the password but is not secret (${resource.secretPaths.join(", ")})`,
          );
        }
      }
    }
    const image = registered.find((r) => r.inputs.source === "registry.k8s.io/pause:3.10");
    assert.deepEqual(image?.secretPaths, ["credentials"]);
  });

  it("evaluates the k3s stack: registries.yaml nodes over SSH with sudo", async function () {
    const { registered } = await evaluateStack("Pulumi.k3s.yaml");
    const nodes = registered.filter((r) => r.type === "command:remote:Command");
    assert.deepEqual(nodes.map((node) => node.name).sort(), [
      "nodes-ssh-10.0.1.21",
      "nodes-ssh-10.0.1.22",
    ]);
    assert.match(String(nodes[0].inputs.create), /sudo -n/);
    // k3s's system images are mirrored, and the nodes pull them by the mirror's name.
    const images = registered.filter(
      (r) => r.type === "pulumi-nodejs:dynamic/mirror:MirroredImage",
    );
    assert.ok(
      images.some((image) => image.inputs.source === "docker.io/rancher/mirrored-pause:3.6"),
    );
    const script = String(nodes[0].inputs.stdin);
    const dropIn = renderRancherConfigDropIn(
      { endpoint: "10.0.1.5:5000", scheme: "http" },
      { forbidFallback: true, systemDefaultRegistry: true, embeddedRegistry: true },
    );
    assert.match(dropIn, /system-default-registry: "10\.0\.1\.5:5000"\nembedded-registry: true/);
    // The script stages each file with its sha256; this one is the drop-in above.
    assert.ok(script.includes(` ${sha256Hex(dropIn)} <<`), "the node gets the k3s config drop-in");
  });

  it("preloads every mirrored image into each node's store, after the images are in", async function () {
    const { outputs, registered } = await evaluateStack("Pulumi.kubeadm.yaml", {
      "airgap-conformance:nodesPreload": "true",
    });
    const preload = registered.filter((r) => r.parent.endsWith("NodeImagePreload::preload"));
    assert.deepEqual(preload.map((r) => r.name).sort(), [
      "preload-cp-1",
      "preload-worker-1",
      "preload-worker-2",
    ]);
    const mapping = await valueOf(outputs.imageMapping);
    for (const command of preload) {
      assert.equal(command.type, "command:remote:Command");
      assert.equal(command.inputs.create, "sh -s apply");
      assert.equal(command.inputs.delete, "sh -s delete");
      assert.ok(
        command.dependencies.some((urn) =>
          urn.includes("MirroredImage::images-registry.k8s.io/pause:3.10"),
        ),
      );
      const script = String(command.inputs.stdin);
      for (const [source, reference] of Object.entries(mapping!)) {
        assert.ok(script.includes(`remember '${source}'`), source);
        assert.ok(script.includes(`'${reference.split("@")[0]}'`), reference);
      }
      assert.match(script, /ctr -n k8s\.io images pull '10\.0\.0\.5:5000\/pause:3\.10'/);
      assert.ok(
        command.secretPaths.some((p) => p.startsWith("connection")),
        "the SSH key stays secret",
      );
    }
    // The run waits for the preload too.
    const preflight = registered.find((r) => r.name === "conformance-preflight")!;
    assert.ok(preflight.dependencies.some((urn) => urn.includes("preload-worker-1")));
  });

  it("evaluates the preload stack: containerd and podman nodes preloaded over SSH", async function () {
    const { registered } = await evaluateStack("Pulumi.preload.yaml");
    const preload = registered.filter((r) => r.parent.endsWith("NodeImagePreload::preload"));
    assert.deepEqual(preload.map((r) => r.name).sort(), ["preload-cp-1", "preload-edge-1"]);
    const edge = preload.find((r) => r.name === "preload-edge-1")!;
    assert.match(
      String(edge.inputs.stdin),
      /podman pull --quiet --tls-verify=false '10\.0\.3\.5:5000\/pause:3\.10'/,
    );
  });

  it("preloads from the archive with no registry: a tarball, a copy per SSH node, an import per node", async function () {
    // The archive the stack names, holding every image of its set (tiny stand-in images).
    const { config } = readStackFile(path.join(root, "Pulumi.preload-archive.yaml"));
    pulumi.runtime.setAllConfig({ ...config, ...offline });
    const names = imageSetForStack(loadStackConfig(), "airgap-conformance").images.map(
      (image) => image.canonical,
    );
    const archive = scratchDir("preload-archive-");
    const digests = writeLayout(
      archive,
      names.map((name) => ({
        name,
        platforms: [{ platform: "linux/amd64", layers: [bytesOf(name, 64)] }],
      })),
    );
    const { outputs, registered } = await evaluateStack("Pulumi.preload-archive.yaml", {
      "airgap-conformance:imagesArchiveDirectory": archive,
    });
    const custom = registered.filter((r) => r.custom);
    assert.deepEqual(
      custom.filter((r) => r.type.startsWith("docker:") || r.type.includes("MirroredImage")),
      [],
      "no registry, no image copy",
    );
    assert.equal(outputs.imageMapping, undefined);
    assert.equal(outputs.nodeFiles, undefined, "no node registry configuration without a mirror");
    // One tarball, built from the archive at the digests its lock pins.
    const tarball = only(
      registered.filter((r) => r.type === "pulumi-nodejs:dynamic/nodes:PreloadTarball"),
      "pulumi-nodejs:dynamic/nodes:PreloadTarball",
    );
    assert.equal(tarball.name, "preload-tarball");
    assert.equal(tarball.inputs.archiveDirectory, archive);
    assert.equal(tarball.inputs.platform, "linux/amd64");
    assert.deepEqual(
      tarball.inputs.images,
      names.map((source) => ({ source, digest: digests[source] })),
    );
    // Relative to the program's working directory: no path into the project in state.
    assert.equal(tarball.inputs.outputDirectory, ".airgap-conformance/preload/test");
    const sha256 = createHash("sha256")
      .update(JSON.stringify({ ...tarball.inputs }))
      .digest("hex");
    const preload = registered.filter((r) => r.parent.endsWith("NodeImagePreload::preload"));
    assert.deepEqual(preload.map((r) => `${r.type} ${r.name}`).sort(), [
      "command:remote:Command preload-k3s-server",
      "command:remote:Command preload-worker-1",
      "command:remote:CopyToRemote preload-k3s-server-tarball",
      "command:remote:CopyToRemote preload-worker-1-tarball",
      "pulumi-nodejs:dynamic/nodes:PreloadTarball preload-tarball",
    ]);
    for (const node of ["k3s-server", "worker-1"]) {
      const copy = preload.find((r) => r.name === `preload-${node}-tarball`)!;
      const run = preload.find((r) => r.name === `preload-${node}`)!;
      assert.ok(copy.dependencies.some((urn) => urn.endsWith("::preload-tarball")));
      assert.equal(
        copy.inputs.remotePath,
        `/var/tmp/airgap-conformance-preload/images-${sha256.slice(0, 16)}.tar`,
      );
      assert.deepEqual(copy.inputs.triggers, [sha256], "a new tarball is copied again");
      assert.ok(
        copy.secretPaths.some((p) => p.startsWith("connection")),
        "the SSH key stays secret",
      );
      assert.ok(run.dependencies.some((urn) => urn.endsWith("::preload-" + node + "-tarball")));
      assert.deepEqual(run.inputs.triggers, [sha256], "a new tarball replaces the import");
      assert.ok(run.deleteBeforeReplace, "the old names go before the new import");
      assert.ok(run.secretPaths.some((p) => p.startsWith("connection")));
      const script = String(run.inputs.stdin);
      assert.ok(!script.includes("stack-key"), "no secret in the script");
      for (const name of names) assert.ok(script.includes(`remember '${name}'`), name);
      assert.match(script, new RegExp(`sha256='${sha256}'`));
    }
    const k3s = preload.find((r) => r.name === "preload-k3s-server")!;
    assert.equal(k3s.inputs.create, "sudo -n sh -s apply");
    assert.match(
      String(k3s.inputs.stdin),
      /\/var\/lib\/rancher\/k3s\/agent\/images\/airgap-conformance-preload\.tar/,
    );
    const worker = preload.find((r) => r.name === "preload-worker-1")!;
    assert.equal(worker.inputs.create, "sh -s apply");
    assert.match(String(worker.inputs.stdin), /ctr="ctr -n k8s\.io"/);

    // docker exec nodes: docker cp into the node, then the same script.
    const { registered: exec } = await evaluateStack("Pulumi.preload-archive.yaml", {
      "airgap-conformance:imagesArchiveDirectory": archive,
      "airgap-conformance:nodes": JSON.stringify(["docker://kind-worker?runtime=containerd"]),
      "airgap-conformance:nodesSshHostKeys": "[]",
    });
    const local = only(
      exec.filter(
        (r) => r.parent.endsWith("NodeImagePreload::preload") && !r.type.includes("PreloadTarball"),
      ),
      "command:local:Command",
    );
    assert.match(
      String(local.inputs.create),
      /^docker exec 'kind-worker' mkdir -p '\/var\/tmp\/airgap-conformance-preload' && docker cp '.*\/preload-[0-9a-f]{16}\.tar' 'kind-worker':'\/var\/tmp\/airgap-conformance-preload\/images-[0-9a-f]{16}\.tar' && docker exec -i 'kind-worker' sh -s apply$/,
    );
    assert.equal(local.inputs.delete, "docker exec -i 'kind-worker' sh -s delete");
    assert.equal((local.inputs.triggers as string[]).length, 1);
  });

  it("with a mirror too, the archive preload waits for no image copy, and the run waits for it", async function () {
    const { config } = readStackFile(path.join(root, "Pulumi.kubeadm.yaml"));
    pulumi.runtime.setAllConfig({ ...config, ...offline });
    const names = imageSetForStack(loadStackConfig(), "airgap-conformance").images.map(
      (image) => image.canonical,
    );
    const archive = scratchDir("preload-archive-");
    writeLayout(
      archive,
      names.map((name) => ({
        name,
        platforms: [{ platform: "linux/amd64", layers: [bytesOf(name, 64)] }],
      })),
    );
    const { registered } = await evaluateStack("Pulumi.kubeadm.yaml", {
      "airgap-conformance:imagesSource": "archive",
      "airgap-conformance:imagesArchiveDirectory": archive,
      "airgap-conformance:nodesPreload": "true",
      "airgap-conformance:nodesPreloadSource": "archive",
    });
    assert.ok(
      registered.some((r) => r.type.includes("MirroredImage")),
      "the mirror is filled too",
    );
    const preload = registered.filter((r) => r.parent.endsWith("NodeImagePreload::preload"));
    assert.equal(preload.filter((r) => r.type === "command:remote:Command").length, 3);
    for (const resource of preload) {
      assert.ok(
        !resource.dependencies.some((urn) => urn.includes("MirroredImage")),
        `${resource.name} does not wait for the mirror`,
      );
    }
    const preflight = registered.find((r) => r.name === "conformance-preflight")!;
    assert.ok(preflight.dependencies.some((urn) => urn.endsWith("::preload-worker-1")));
  });

  it("refuses an archive preload whose archive lacks an image of the set, naming the key and the image", function () {
    const archive = scratchDir("preload-archive-");
    writeLayout(archive, [
      {
        name: "registry.k8s.io/pause:3.10",
        platforms: [{ platform: "linux/amd64", layers: [bytesOf("p", 8)] }],
      },
    ]);
    const { config } = readStackFile(path.join(root, "Pulumi.preload-archive.yaml"));
    useConfig({
      ...config,
      ...offline,
      "airgap-conformance:imagesArchiveDirectory": archive,
      "airgap-conformance:nodesSshPrivateKey": "key",
    });
    assert.throws(
      () => defineProgram(loadStackConfig(), "airgap-conformance"),
      /config airgap-conformance:imagesArchiveDirectory: got ".*"; allowed: an archive holding every image to preload; registry\.k8s\.io\/build-image\/distroless-iptables:v0\.5\.6 is not in its images\.lock\.json \(export it on the connected side/,
    );
  });

  it("refuses preload for nodes it cannot preload, naming the key", function () {
    useConfig({
      "airgap-conformance:kubernetesVersion": "1.31.4",
      "airgap-conformance:nodesPreload": "true",
      "airgap-conformance:nodes": JSON.stringify(["docker://k3s-server?runtime=k3s"]),
    });
    assert.throws(
      () => loadStackConfig(),
      /config airgap-conformance:nodesPreload: got "true"; allowed: false while nodes lists a runtime=k3s node/,
    );
  });

  it("evaluates the openshift stack: mirror sets in the cluster, no node touched", async function () {
    const { outputs, registered } = await evaluateStack("Pulumi.openshift.yaml");
    assert.deepEqual(
      registered
        .filter((r) => r.name === "nodes" || r.name.startsWith("nodes-"))
        .map((r) => r.name),
      [],
      "no command runs on an OpenShift node",
    );
    assert.equal(outputs.nodeFiles, undefined);
    const objects = registered.filter((r) => r.parent.endsWith("OpenShiftMirrorConfig::openshift"));
    const sets = objects.filter((r) => r.type.startsWith("kubernetes:config.openshift.io/v1:"));
    assert.deepEqual(sets.map((r) => r.type).sort(), [
      "kubernetes:config.openshift.io/v1:ImageDigestMirrorSet",
      "kubernetes:config.openshift.io/v1:ImageTagMirrorSet",
    ]);
    const tagSet = sets.find((r) => r.type.endsWith("ImageTagMirrorSet"))!;
    assert.deepEqual((tagSet.inputs.spec as { imageTagMirrors: unknown[] }).imageTagMirrors[0], {
      source: "registry.k8s.io",
      mirrors: ["registry.lab:5000"],
      mirrorSourcePolicy: "NeverContactSource",
    });
    const provider = only(objects, "pulumi:providers:kubernetes");
    assert.equal(provider.inputs.kubeconfig, path.join(fixtures, "kubeconfig-kind-airgap.yaml"));
    for (const set of sets) {
      assert.match(set.provider, /pulumi:providers:kubernetes::openshift-k8s::/);
      assert.ok(
        set.dependencies.some((urn) => urn.includes("MirroredImage::images-registry.k8s.io/pause")),
        "declared once the images are in",
      );
    }
    // The run waits for the mirror objects.
    const preflight = registered.find((r) => r.name === "conformance-preflight")!;
    assert.ok(preflight.dependencies.some((urn) => urn.includes("ImageTagMirrorSet")));
    assert.deepEqual(await valueOf(outputs.openshiftMirrorObjects), [
      "config.openshift.io/v1 ImageDigestMirrorSet/airgap-conformance-mirror",
      "config.openshift.io/v1 ImageTagMirrorSet/airgap-conformance-mirror",
    ]);
  });

  it("declares an ImageContentSourcePolicy for OpenShift before 4.13 and warns it is digest-only", async function () {
    const { outputs, registered } = await evaluateStack("Pulumi.openshift.yaml", {
      "airgap-conformance:nodesOpenshiftVersion": "4.12",
    });
    const objects = registered.filter((r) => r.parent.endsWith("OpenShiftMirrorConfig::openshift"));
    assert.deepEqual(
      objects
        .filter((r) => r.custom && r.type !== "pulumi:providers:kubernetes")
        .map((r) => r.type),
      ["kubernetes:operator.openshift.io/v1alpha1:ImageContentSourcePolicy"],
    );
    const warnings = await valueOf(outputs.openshiftMirrorWarnings);
    assert.match(warnings![0], /digest only/);
    useConfig({ "airgap-conformance:nodesOpenshiftVersion": "v4.12" });
    assert.throws(
      () => loadStackConfig(),
      /config airgap-conformance:nodesOpenshiftVersion: got "v4.12"; allowed: an OpenShift 4 version/,
    );
  });

  it("previews exactly the change between two configs: one image, one node, one focus", async function () {
    const before = await evaluateStack("Pulumi.kubeadm.yaml");
    const after = await evaluateStack("Pulumi.kubeadm.yaml", {
      "airgap-conformance:imagesExtra": JSON.stringify([
        "registry.k8s.io/e2e-test-images/agnhost:2.53",
      ]),
      "airgap-conformance:nodes": JSON.stringify([
        "ssh://root@10.0.0.11?runtime=containerd&name=cp-1",
        "ssh://root@10.0.0.12?runtime=containerd&name=worker-1",
        "ssh://root@10.0.0.14?runtime=containerd&name=worker-3",
      ]),
      "airgap-conformance:nodesSshHostKeys": JSON.stringify([
        "10.0.0.11=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmesRW2453+7+sP65+lx6YuLczt1nsV7zMOj8RG+ZWe",
        "10.0.0.12=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl4+GoT34I+f9eI9cibDOgALtn3WLMGKTmgAZTXvW9P",
        "10.0.0.14=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxyU3Hdo20hXtH1zjSqu+2X667F6cxBGhUyLlz+kG5S",
      ]),
      "airgap-conformance:conformanceFocus": "\\[sig-network\\].*\\[Conformance\\]",
    });
    const byName = (list: typeof before.registered) =>
      new Map(list.filter((r) => r.custom).map((r) => [r.name, JSON.stringify(r.inputs)]));
    const a = byName(before.registered);
    const b = byName(after.registered);
    const added = [...b.keys()].filter((name) => !a.has(name)).sort();
    const removed = [...a.keys()].filter((name) => !b.has(name)).sort();
    const changed = [...b.keys()]
      .filter((name) => a.has(name) && a.get(name) !== b.get(name))
      .sort();
    assert.deepEqual(added, [
      "images-registry.k8s.io/e2e-test-images/agnhost:2.53",
      "nodes-ssh-10.0.0.14",
    ]);
    assert.deepEqual(removed, ["nodes-ssh-10.0.0.13"]);
    // The new focus changes the pod (replaced: a new run) and its run command; the new image
    // is one more for preflight to check. Nothing else: registry, other images, other nodes.
    assert.deepEqual(changed, ["conformance-pod", "conformance-preflight", "conformance-run"]);
  });

  it("copies the imagesPlatforms of each tag and outputs the bytes that saves", async function () {
    const { outputs, registered } = await evaluateStack("Pulumi.dev.yaml", {
      "airgap-conformance:imagesPlatforms": '["linux/amd64","linux/arm64"]',
    });
    const images = registered.filter(
      (resource) => resource.type === "pulumi-nodejs:dynamic/mirror:MirroredImage",
    );
    assert.ok(images.length > 10);
    for (const image of images) {
      const request = image.inputs.request as { platforms?: string[] };
      if (String(image.inputs.source).includes("@")) assert.equal(request.platforms, undefined);
      else assert.deepEqual(request.platforms, ["linux/amd64", "linux/arm64"]);
    }
    // The harness answers like the provider's check: 3 platforms of 100 bytes, 2 chosen.
    const pinned = images.filter((image) => String(image.inputs.source).includes("@")).length;
    assert.equal(await valueOf(outputs.imagesPlatformBytesSaved!), (images.length - pinned) * 100);
    const whole = await evaluateStack("Pulumi.dev.yaml");
    assert.equal(whole.outputs.imagesPlatformBytesSaved, undefined);
  });

  it("evaluates the export stack: images into an archive, no registry", async function () {
    const { config } = readStackFile(path.join(root, "Pulumi.export.yaml"));
    useConfig(config);
    const outputs = defineProgram(loadStackConfig(), "airgap-conformance");
    assert.equal(outputs.registryEndpoint, undefined);
    await valueOf(outputs.imageLock);
    await settle();
    const lock = only(resourcesOf("images"), "pulumi-nodejs:dynamic/mirror:ArchiveLock");
    assert.equal(lock.inputs.directory, "/media/usb/airgap-images");
    // The last registration of that name is this stack's (the dev stack's came earlier).
    const conformance = resourcesOf("images")
      .filter((resource) => resource.inputs.source === "registry.k8s.io/conformance:v1.31.4")
      .pop();
    assert.deepEqual((conformance?.inputs.request as { to: unknown }).to, {
      transport: "oci",
      directory: "/media/usb/airgap-images",
      refName: "registry.k8s.io/conformance:v1.31.4",
    });
    assert.equal(await valueOf(outputs.repoList), undefined);
    // The size report is computed at preview, before any copy: every image measured or named.
    const size = await valueOf(outputs.archiveSize);
    assert.ok(size);
    assert.equal(size.images + size.unmeasured.length, await valueOf(outputs.imageCount));
  });

  const registryOnly = {
    "airgap-conformance:imagesEnabled": "false",
    "airgap-conformance:conformanceEnabled": "false",
  };

  it("requires the Kubernetes version when images are mirrored", function () {
    useConfig({});
    assert.throws(
      () => loadStackConfig(),
      /config airgap-conformance:kubernetesVersion: required when (imagesEnabled|conformanceEnabled) is true/,
    );
  });

  it("names the config key of a bad extra image, list file or version", function () {
    const base = {
      ...registryOnly,
      "airgap-conformance:imagesEnabled": "true",
      "airgap-conformance:kubernetesVersion": "1.31.4",
      "airgap-conformance:registryEnabled": "false",
      "airgap-conformance:mirrorEndpoint": "10.0.0.5:5000",
    };
    useConfig({
      ...base,
      "airgap-conformance:imagesExtra": JSON.stringify(["nginx:1.27", "Bad/Image"]),
    });
    assert.throws(
      () => defineProgram(loadStackConfig(), "airgap-conformance"),
      /config airgap-conformance:imagesExtra\[1\]: .*uppercase/,
    );
    useConfig({
      ...base,
      "airgap-conformance:imagesListFiles": JSON.stringify(["/nonexistent/images.txt"]),
    });
    assert.throws(
      () => defineProgram(loadStackConfig(), "airgap-conformance"),
      /config airgap-conformance:imagesListFiles\[0\]: got "\/nonexistent\/images.txt"; allowed: a readable image list file/,
    );
    useConfig({ ...base, "airgap-conformance:kubernetesVersion": "1.34.1" });
    assert.throws(
      () => defineProgram(loadStackConfig(), "airgap-conformance"),
      /config airgap-conformance:kubernetesVersion: got "1.34.1".*1\.31, 1\.33, 1\.35/,
    );
  });

  it("refuses mirroring into a registry when the registry is off and no other is named", function () {
    useConfig({
      "airgap-conformance:registryEnabled": "false",
      "airgap-conformance:kubernetesVersion": "1.31.4",
    });
    assert.throws(
      () => loadStackConfig(),
      /config airgap-conformance:mirrorEndpoint: required when registryEnabled is false/,
    );
  });

  it("rejects an unknown key, suggesting the one meant", function () {
    useConfig({ ...registryOnly, "airgap-conformance:registryHostPrt": "5000" });
    assert.throws(
      () => loadStackConfig(),
      /config airgap-conformance:registryHostPrt: unknown key; did you mean airgap-conformance:registryHostPort\?/,
    );
  });

  it("rejects a value of the wrong type, naming key, value and what is allowed", function () {
    useConfig({ ...registryOnly, "airgap-conformance:registryHostPort": "five thousand" });
    assert.throws(
      () => loadStackConfig(),
      /config airgap-conformance:registryHostPort: got "five thousand"; allowed: an integer/,
    );
  });

  it("reports a component argument error under the config key that set it", function () {
    useConfig({
      ...registryOnly,
      "airgap-conformance:registryHostPort": "70000",
      "airgap-conformance:registryBindAddress": "127.0.0.1",
      "airgap-conformance:registryCheckHostPort": "false",
    });
    assert.throws(
      () => defineProgram(loadStackConfig(), "airgap-conformance"),
      /config airgap-conformance:registryHostPort: RegistryContainer: hostPort: 70000 is out of range/,
    );
  });

  it("keeps the registry password a secret", async function () {
    pulumi.runtime.setAllConfig(
      {
        ...registryOnly,
        "airgap-conformance:registryUsername": "mirror",
        "airgap-conformance:registryPassword": "stack-secret-pw",
      },
      ["airgap-conformance:registryPassword"],
    );
    const config = loadStackConfig();
    const password = config.registry.auth?.password;
    assert.ok(password);
    assert.equal(await pulumi.isSecret(password), true);
    assert.equal(await valueOf(password), "stack-secret-pw");
  });

  it("declares nothing when the registry is turned off", function () {
    useConfig({ ...registryOnly, "airgap-conformance:registryEnabled": "false" });
    assert.deepEqual(defineProgram(loadStackConfig(), "airgap-conformance"), {});
  });
});
