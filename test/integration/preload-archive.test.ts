import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { stringify as stringifyYaml } from "yaml";
import { writeLock } from "../../components/mirror/actions/archive";
import { loadStackConfig } from "../../infra/config";
import { imageSetForStack } from "../../infra/images";
import { defineProgram } from "../../infra/program";
import { readStackFile } from "../../infra/stack-file";
import { criImageStatus, type CriImage } from "../lab/cri";
import { ensureLabNodeImage } from "../lab/node-image";
import {
  authorizeSshKey,
  labSshKey,
  removeLabNodeNetwork,
  runLikeLocalCommand,
  startLabNode,
  type LabNode,
} from "../lab/nodes";
import { labDir } from "../lab/paths";
import { LabEngine } from "../lab/program-engine";
import { labLabelValue } from "../lab/run-spec";
import {
  makeLayer,
  makeManifest,
  makeRandomLayer,
  multiPlatformImage,
  singlePlatformImage,
  writeOciLayout,
} from "../lab/synthetic-images";
import { scratchDir } from "../scratch";

/**
 * Preloading from the archive, the program's own way: a stack with no registry, no mirror and
 * no image copy (registryEnabled false, imagesEnabled false) whose nodes list a containerd node
 * reached with docker exec, a containerd node over SSH (the tarball goes by CopyToRemote), a
 * podman node, a k3s node whose k3s is not running and an rke2 node whose containerd is. The
 * real program is evaluated under mocks that create every resource for real in the lab
 * (test/lab/program-engine.ts): the tarball is built by its dynamic provider from an OCI
 * layout with images.lock.json, copied and imported by the command resources exactly as they
 * are declared, then destroyed in reverse. The nodes have no registry configuration and cannot
 * reach any upstream registry.
 */

const project = "airgap-conformance";
const key = (name: string) => `${project}:${name}`;

describe("preload from the archive on real nodes (the program, created and destroyed for real)", function () {
  this.timeout(20 * 60 * 1000);
  const nodes: LabNode[] = [];
  let archive: string;
  let workDir: string;
  /** What each image is in the archive: its config digest for linux/amd64 (the CRI image id). */
  const imageIds = new Map<string, string>();

  before(async function () {
    await ensureLabNodeImage();
    workDir = scratchDir("preload-archive-", labDir);
    archive = path.join(workDir, "archive");
    // The stack's image set (conformance and results images, two extras), exported as an
    // archive: one multi-arch index, shared base layers.
    const base = await makeLayer({ "etc/os-release": "ID=airgap-lab\n" });
    const amd64 = { os: "linux" as const, architecture: "amd64" };
    const arm64 = { os: "linux" as const, architecture: "arm64" };
    const conformanceAmd64 = makeManifest(
      [base, await makeRandomLayer("usr/local/bin/e2e.test", 96 * 1024)],
      amd64,
    );
    const images = {
      "registry.k8s.io/conformance:v1.31.4": multiPlatformImage([
        conformanceAmd64,
        makeManifest(
          [
            await makeLayer({ "etc/os-release": "ID=airgap-lab-arm\n" }),
            await makeRandomLayer("usr/local/bin/e2e.test", 96 * 1024),
          ],
          arm64,
        ),
      ]),
      "registry.k8s.io/e2e-test-images/busybox:1.36.1-1": singlePlatformImage(
        makeManifest([base, await makeRandomLayer("bin/busybox", 64 * 1024)], amd64),
      ),
      "registry.k8s.io/pause:3.10": singlePlatformImage(
        makeManifest([base, await makeRandomLayer("pause", 16 * 1024)], amd64),
      ),
      "docker.io/library/nginx:1.27-alpine": singlePlatformImage(
        makeManifest([base, await makeRandomLayer("usr/sbin/nginx", 128 * 1024)], amd64),
      ),
    };
    writeOciLayout(archive, images);
    writeLock(
      archive,
      Object.entries(images).map(([source, image]) => ({ source, digest: image.top.digest })),
    );
    for (const [source, image] of Object.entries(images)) {
      const manifest = image.manifests.find((entry) => entry.platform.architecture === "amd64")!;
      imageIds.set(source, manifest.config.digest);
    }
  });

  after(async function () {
    await Promise.all(nodes.map((node) => node.remove()));
    await removeLabNodeNetwork();
  });

  it("a node with no registry configuration answers CRI ImageStatus / podman image exists for every image after up, and no longer after destroy", async function () {
    const [execNode, sshNode, podmanNode, k3sNode, rke2Node] = await Promise.all(
      ["exec", "ssh", "podman", "k3s", "rke2"].map((role) =>
        startLabNode(`lab-preload-archive-${role}`),
      ),
    );
    nodes.push(execNode, sshNode, podmanNode, k3sNode, rke2Node);
    const sshKey = await labSshKey("preload-archive");
    await authorizeSshKey(sshNode, sshKey);
    const hostKey = (
      await sshNode.sh("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")
    ).stdout.trim();
    // rke2's containerd socket, where rke2 keeps it: here the node's containerd answers on it.
    await rke2Node.sh(
      "mkdir -p /run/k3s/containerd && ln -s /run/containerd/containerd.sock /run/k3s/containerd/containerd.sock",
    );

    const stackFile = path.join(workDir, "Pulumi.lab-preload-archive.yaml");
    writeFileSync(
      stackFile,
      stringifyYaml({
        config: {
          [key("kubernetesVersion")]: "1.31.4",
          [key("registryEnabled")]: false,
          [key("imagesEnabled")]: false,
          [key("conformanceEnabled")]: false,
          [key("imagesIncludeCatalog")]: false,
          [key("imagesExtra")]: [
            "registry.k8s.io/pause:3.10",
            "docker.io/library/nginx:1.27-alpine",
          ],
          [key("imagesArchiveDirectory")]: archive,
          [key("nodesPreload")]: true,
          [key("nodesPreloadSource")]: "archive",
          [key("nodes")]: [
            `docker://${execNode.name}?runtime=containerd`,
            `ssh://root@${sshNode.ip}?runtime=containerd&name=${sshNode.name}`,
            `docker://${podmanNode.name}?runtime=podman`,
            `docker://${k3sNode.name}?runtime=k3s`,
            `docker://${rke2Node.name}?runtime=rke2`,
          ],
          [key("nodesSshHostKeys")]: [`${sshNode.ip}=${hostKey}`],
          [key("nodesSshPrivateKey")]: { secure: "v1:lab-key-supplied-by-the-test" },
        },
      }),
    );
    const { config } = readStackFile(stackFile);
    const secrets = { [key("nodesSshPrivateKey")]: sshKey.privateKey };
    const engine = new LabEngine({
      runLabel: { key: "airgap-conformance.lab.preload-archive", value: labLabelValue },
      workDir: path.join(workDir, "engine"),
      programDir: workDir,
    });
    pulumi.runtime.setMocks(engine.mocks(), project, "lab-preload-archive", false);
    pulumi.runtime.setAllConfig({ ...config, ...secrets }, Object.keys(secrets));
    const stackConfig = loadStackConfig();
    const expected = imageSetForStack(stackConfig, project)
      .images.map((image) => image.canonical)
      .sort();
    assert.deepEqual(expected, [...imageIds.keys()].sort(), "the archive holds the stack's set");

    // Each node had one of the names before, with other content: it must keep it.
    const keptOnContainerd = "registry.k8s.io/pause:3.10";
    const keptOnPodman = "docker.io/library/nginx:1.27-alpine";
    await execNode.sh(
      `ctr -n k8s.io images import - >/dev/null && ctr -n k8s.io images tag lab.invalid/other:1 ${keptOnContainerd} >/dev/null && ctr -n k8s.io images rm lab.invalid/other:1 >/dev/null`,
      { input: await otherImageTarball("lab.invalid/other:1", workDir) },
    );
    const keptBefore = await criImageStatus(execNode.criSocket, keptOnContainerd);
    assert.ok(keptBefore && keptBefore.id !== imageIds.get(keptOnContainerd));
    await podmanNode.sh(
      `podman load -q >/dev/null && podman tag lab.invalid/other:1 ${keptOnPodman} && podman untag lab.invalid/other:1 lab.invalid/other:1`,
      { input: await otherImageTarball("lab.invalid/other:1", workDir) },
    );
    const podmanKeptId = async () =>
      (
        await podmanNode.sh(`podman image inspect --format '{{.Id}}' ${keptOnPodman}`)
      ).stdout.trim();
    const podmanKeptBefore = await podmanKeptId();

    // Before: none of the images, and no way to pull them by their upstream names.
    for (const node of [execNode, sshNode, rke2Node]) {
      for (const image of expected.filter(
        (name) => !(node === execNode && name === keptOnContainerd),
      )) {
        assert.equal(
          await criImageStatus(node.criSocket, image),
          undefined,
          `${node.name} ${image}`,
        );
      }
    }
    const direct = await sshNode.sh(`ctr -n k8s.io images pull ${expected[0]} 2>&1`, {
      allowFailure: true,
    });
    assert.notEqual(direct.code, 0, "upstream is unreachable");
    assert.equal(
      (await execNode.sh("ls /etc/containerd/certs.d 2>/dev/null | wc -l")).stdout.trim(),
      "0",
      "no registry configuration on the node",
    );

    // Up: the real program, each create performed for real.
    const previous = process.cwd();
    process.chdir(workDir);
    try {
      defineProgram(stackConfig, project);
    } finally {
      process.chdir(previous);
    }
    await engine.settle();
    assert.deepEqual(engine.failures, [], "every create succeeded");
    const types = engine.registered.filter((r) => r.custom).map((r) => r.type);
    assert.ok(!types.some((type) => type.startsWith("docker:")), "no registry container");
    assert.ok(!types.includes("pulumi-nodejs:dynamic/mirror:MirroredImage"), "no image copy");
    assert.equal(types.filter((type) => type === "command:remote:CopyToRemote").length, 1);

    const built = engine.created.find(
      (resource) => resource.type === "pulumi-nodejs:dynamic/nodes:PreloadTarball",
    );
    assert.ok(built, "the tarball was built by its dynamic provider");
    const stored = built.outputs as { file: string; sha256: string; repoTags: string[] };
    // Stored relative to the program's working directory, where the provider wrote it.
    assert.ok(!path.isAbsolute(stored.file), stored.file);
    const tarball = { ...stored, file: path.resolve(workDir, stored.file) };
    assert.deepEqual(tarball.repoTags, expected);
    assert.equal(
      createHash("sha256").update(readFileSync(tarball.file)).digest("hex"),
      tarball.sha256,
    );
    assert.ok(tarball.file.startsWith(path.join(workDir, ".airgap-conformance")));

    // containerd nodes (docker exec, SSH) and the rke2 node whose containerd runs: the kubelet's view.
    for (const node of [execNode, sshNode, rke2Node]) {
      for (const image of expected) {
        const status = await criImageStatus(node.criSocket, image);
        assert.ok(status, `CRI ImageStatus on ${node.name} knows ${image}`);
        assert.ok(status.repoTags.includes(image), `${image} in ${status.repoTags.join(", ")}`);
        if (!(node === execNode && image === keptOnContainerd)) {
          assert.equal(status.id, imageIds.get(image), `${node.name}: ${image} is the archive's`);
        }
      }
    }
    // The same command again (an update re-runs create): nothing more is imported.
    const execCommand = engine.registered.find((r) => r.name === `preload-${execNode.name}`)!;
    const again = await runLikeLocalCommand(
      execCommand.name,
      String(execCommand.inputs.create),
      String(execCommand.inputs.stdin),
      // In the program's directory, as the command provider runs it.
      workDir,
    );
    assert.match(again.stdout, new RegExp(`preloaded 0 of ${expected.length} images`));
    const keptDuring = await criImageStatus(execNode.criSocket, keptOnContainerd);
    assert.equal(keptDuring?.id, keptBefore.id, "the name the node had still names its image");
    // podman
    for (const image of expected) {
      const exists = await podmanNode.sh(`podman image exists ${image}`, { allowFailure: true });
      assert.equal(exists.code, 0, `podman image exists ${image}`);
    }
    assert.equal(
      await podmanKeptId(),
      podmanKeptBefore,
      "podman's own image under that name stays",
    );
    // k3s is not running on its node: the tarball is in agent/images under its name, and the
    // import k3s makes of it at start (containerd's import into k8s.io) yields every image.
    const agentFile = "/var/lib/rancher/k3s/agent/images/airgap-conformance-preload.tar";
    assert.equal(await k3sNode.checksum(agentFile), tarball.sha256);
    assert.equal(await rke2Node.checksum(agentFile.replace("/k3s/", "/rke2/")), tarball.sha256);
    for (const image of expected) {
      assert.equal(
        await criImageStatus(k3sNode.criSocket, image),
        undefined,
        "nothing imported yet",
      );
    }
    await k3sNode.sh(`ctr -n k8s.io images import ${agentFile} >/dev/null`);
    const k3sImported: CriImage[] = [];
    for (const image of expected) {
      const status = await criImageStatus(k3sNode.criSocket, image);
      assert.ok(status, `after containerd's import of ${agentFile}, CRI knows ${image}`);
      assert.equal(status.id, imageIds.get(image));
      k3sImported.push(status);
    }

    // Destroy, in reverse.
    await engine.destroy();
    assert.deepEqual(engine.deleteFailures, [], "every delete succeeded");
    for (const node of [execNode, sshNode, rke2Node]) {
      for (const image of expected.filter(
        (name) => !(node === execNode && name === keptOnContainerd),
      )) {
        assert.equal(
          await criImageStatus(node.criSocket, image),
          undefined,
          `${node.name}: ${image} is gone`,
        );
      }
      const leftovers = await node.sh(
        "ctr -n k8s.io images ls -q | grep airgap-conformance.invalid || true; ls /var/tmp/airgap-conformance-preload /var/lib/airgap-conformance/preload-* 2>/dev/null || true",
      );
      assert.equal(leftovers.stdout.trim(), "", `${node.name}: no alias, tarball or record left`);
    }
    const keptAfter = await criImageStatus(execNode.criSocket, keptOnContainerd);
    assert.equal(keptAfter?.id, keptBefore.id, "the image the node had is still there");
    for (const image of expected.filter((name) => name !== keptOnPodman)) {
      const exists = await podmanNode.sh(`podman image exists ${image}`, { allowFailure: true });
      assert.notEqual(exists.code, 0, `podman: ${image} is gone`);
    }
    assert.equal(await podmanKeptId(), podmanKeptBefore, "podman's own image is still there");
    const podmanLeft = await podmanNode.sh("podman images -q | wc -l");
    assert.equal(podmanLeft.stdout.trim(), "1", "only the node's own image is left in podman");
    assert.equal(await k3sNode.checksum(agentFile), "absent", "agent/images file removed");
    assert.equal(await rke2Node.checksum(agentFile.replace("/k3s/", "/rke2/")), "absent");
    assert.ok(!existsSync(tarball.file), "the tarball on this machine is removed");
  });
});

/** A docker-archive of one small image named `name`, unlike any image of the archive. */
async function otherImageTarball(name: string, workDir: string): Promise<Buffer> {
  const { writePreloadTarball } = await import("../../components/nodes/actions/preload-tarball");
  const layout = path.join(workDir, `other-${name.replace(/[^a-z0-9]/g, "-")}`);
  if (!existsSync(layout)) {
    mkdirSync(layout, { recursive: true });
    const image = singlePlatformImage(
      makeManifest([await makeLayer({ "other.txt": "not from the archive\n" })], {
        os: "linux",
        architecture: "amd64",
      }),
    );
    writeOciLayout(layout, { [name]: image });
  }
  const digest = (
    JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    }
  ).manifests[0].digest;
  const written = await writePreloadTarball({
    archiveDirectory: layout,
    images: [{ source: name, digest }],
    platform: "linux/amd64",
    outputDirectory: path.join(layout, "out"),
  });
  return readFileSync(written.file);
}
