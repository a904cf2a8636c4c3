import assert from "node:assert/strict";
import { mirrorPathFor } from "../../core/images/mapping";
import { parseImageReference } from "../../core/images/reference";
import { nodeCommands, renderPreloadScript, type PreloadStore } from "../../core/nodes";
import { criImageStatus } from "../lab/cri";
import { ensureLabNodeImage } from "../lab/node-image";
import {
  removeLabNodeNetwork,
  runLikeLocalCommand,
  startLabNode,
  startNodeMirror,
  type LabNode,
  type NodeMirror,
} from "../lab/nodes";

/**
 * Preloading on real nodes: containerd 1.6 (checked through CRI ImageStatus, the kubelet's
 * view) and podman. The node has no registry configuration and cannot reach any upstream.
 */
describe("image preload on real nodes", function () {
  let mirror: NodeMirror;
  let node: LabNode;
  const container = "lab-node-preload";
  const commands = nodeCommands({ kind: "docker-exec", container });

  before(async function () {
    this.timeout(15 * 60 * 1000);
    await ensureLabNodeImage();
    mirror = await startNodeMirror("lab-preload-mirror");
    node = await startLabNode(container);
  });
  after(async function () {
    await node?.remove();
    await mirror?.registry.stop();
    await removeLabNodeNetwork();
  });

  function script(store: PreloadStore): string {
    return renderPreloadScript({
      store,
      mirror: { endpoint: mirror.nodeEndpoint, scheme: "http" },
      images: mirror.images.map((source) => ({
        source,
        mirrorReference: `${mirror.nodeEndpoint}/${mirrorPathFor(parseImageReference(source), {
          mirrorHost: mirror.nodeEndpoint,
        })}:${source.slice(source.lastIndexOf(":") + 1)}`,
      })),
      nodeName: container,
      stateDir: "/var/lib/airgap-conformance",
    });
  }

  it("containerd: every image answers CRI ImageStatus after apply; destroy removes only what it imported", async function () {
    const kept = mirror.images.find((image) => image.includes("pause"))!;
    // Without preload the node has none of them, and cannot pull them by their upstream name.
    for (const image of mirror.images) {
      assert.equal(await criImageStatus(node.criSocket, image), undefined, image);
    }
    const direct = await node.sh(`ctr -n k8s.io images pull ${mirror.images[0]} 2>&1`, {
      allowFailure: true,
    });
    assert.notEqual(direct.code, 0, "upstream is unreachable");
    // One image the node already had: preload must leave it alone, on apply and on destroy.
    const keptMirrorName = `${mirror.nodeEndpoint}/pause:3.10`;
    await node.sh(
      `ctr -n k8s.io images pull --plain-http ${keptMirrorName} >/dev/null && ctr -n k8s.io images tag ${keptMirrorName} ${kept} >/dev/null && ctr -n k8s.io images rm ${keptMirrorName} >/dev/null`,
    );
    const keptBefore = await criImageStatus(node.criSocket, kept);
    assert.ok(keptBefore);

    const applied = await runLikeLocalCommand("preload", commands.create, script("containerd"));
    assert.match(
      applied.stdout,
      new RegExp(`preloaded ${mirror.images.length - 1} of ${mirror.images.length} images`),
    );
    for (const image of mirror.images) {
      const status = await criImageStatus(node.criSocket, image);
      assert.ok(status, `CRI ImageStatus knows ${image}`);
      assert.ok(status.repoTags.includes(image), `${image} in ${status.repoTags.join(", ")}`);
    }
    // Applying again changes nothing.
    const again = await runLikeLocalCommand("preload", commands.create, script("containerd"));
    assert.match(again.stdout, new RegExp(`preloaded 0 of ${mirror.images.length} images`));

    await runLikeLocalCommand("preload", commands.delete, script("containerd"));
    for (const image of mirror.images.filter((name) => name !== kept)) {
      assert.equal(await criImageStatus(node.criSocket, image), undefined, `${image} is gone`);
    }
    const keptAfter = await criImageStatus(node.criSocket, kept);
    assert.equal(keptAfter?.id, keptBefore.id, "the image the node had is still there");
    const leftovers = await node.sh("ctr -n k8s.io images ls -q");
    assert.doesNotMatch(leftovers.stdout, new RegExp(mirror.nodeEndpoint.replace(".", "\\.")));
  });

  it("podman: `podman image exists` for every image after apply, and no longer after destroy", async function () {
    const exists = async (image: string) =>
      (await node.sh(`podman image exists ${image}`, { allowFailure: true })).code === 0;
    for (const image of mirror.images) assert.equal(await exists(image), false, image);
    await runLikeLocalCommand("preload", commands.create, script("podman"));
    for (const image of mirror.images) assert.equal(await exists(image), true, image);
    await runLikeLocalCommand("preload", commands.delete, script("podman"));
    for (const image of mirror.images) assert.equal(await exists(image), false, image);
    const left = await node.sh("podman images --format '{{.Repository}}:{{.Tag}}'");
    assert.equal(left.stdout.trim(), "", "nothing left in podman's store");
  });
});
