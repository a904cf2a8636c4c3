import assert from "node:assert/strict";
import {
  NodeConfigError,
  archivePreloadDockerCreate,
  archivePreloadStoreFor,
  preloadIncomingPath,
  renderArchivePreloadScript,
} from "../../../core/nodes";

const sha256 = "ab".repeat(32);
const base = {
  store: "containerd" as const,
  tarball: {
    sha256,
    images: ["registry.k8s.io/pause:3.10", "docker.io/library/nginx:1.27-alpine"],
  },
  nodeName: "worker-1",
  stateDir: "/var/lib/airgap-conformance",
};

describe("image preload from the archive: node script", function () {
  it("checks the tarball's sha256, records each name before the import, and imports once", function () {
    const script = renderArchivePreloadScript(base);
    assert.match(script, new RegExp(`incoming='${preloadIncomingPath(sha256)}'`));
    assert.match(script, /sha256sum <"\$incoming"/);
    const remember = script.indexOf("remember 'registry.k8s.io/pause:3.10'");
    const importAt = script.indexOf('$ctr images import "$import_from"');
    assert.ok(remember > 0 && importAt > remember, "the record comes first");
    assert.equal(script.split("images import").length, 2, "one import of the whole tarball");
    assert.match(script, /ctr="ctr -n k8s\.io"/);
    // A name the node had is held under an alias across the import and put back.
    assert.match(
      script,
      /\$ctr images tag --force 'registry\.k8s\.io\/pause:3\.10' 'airgap-conformance\.invalid\/preload-kept:0'/,
    );
    assert.match(
      script,
      /\$ctr images tag --force 'airgap-conformance\.invalid\/preload-kept:0' 'registry\.k8s\.io\/pause:3\.10' >\/dev\/null && \$ctr images rm 'airgap-conformance\.invalid\/preload-kept:0'/,
    );
    const podman = renderArchivePreloadScript({ ...base, store: "podman" });
    assert.match(podman, /podman load --quiet --input "\$import_from"/);
    assert.doesNotMatch(podman, /\$ctr/);
  });

  it("puts the tarball in agent/images on k3s and rke2 nodes, and imports it only into a running containerd", function () {
    const k3s = renderArchivePreloadScript({ ...base, store: "k3s" });
    assert.match(
      k3s,
      /mv -f '\/var\/lib\/rancher\/k3s\/agent\/images\/\.airgap-conformance-preload\.tar\.tmp' '\/var\/lib\/rancher\/k3s\/agent\/images\/airgap-conformance-preload\.tar'/,
    );
    assert.match(
      k3s,
      /import_from='\/var\/lib\/rancher\/k3s\/agent\/images\/airgap-conformance-preload\.tar'/,
    );
    assert.match(k3s, /socket='\/run\/k3s\/containerd\/containerd\.sock'/);
    assert.match(k3s, /k3s ctr --address \$socket -n k8s\.io/);
    assert.match(
      k3s,
      /rm -f '\/var\/lib\/rancher\/k3s\/agent\/images\/airgap-conformance-preload\.tar'/,
    );
    const rke2 = renderArchivePreloadScript({ ...base, store: "rke2" });
    assert.match(rke2, /\/var\/lib\/rancher\/rke2\/agent\/images\/airgap-conformance-preload\.tar/);
    assert.match(rke2, /\/var\/lib\/rancher\/rke2\/bin\/ctr --address \$socket/);
    assert.doesNotMatch(renderArchivePreloadScript(base), /agent\/images/);
  });

  it("maps runtimes to stores and names the argument for bad input", function () {
    assert.equal(archivePreloadStoreFor("containerd2"), "containerd");
    assert.equal(archivePreloadStoreFor("crio"), "podman");
    assert.equal(archivePreloadStoreFor("k3s"), "k3s");
    assert.equal(archivePreloadStoreFor("rke2"), "rke2");
    assert.equal(archivePreloadStoreFor("hosts"), undefined);
    const refused = (input: Record<string, unknown>, arg: string) =>
      assert.throws(
        () => renderArchivePreloadScript({ ...base, ...input } as typeof base),
        (error: unknown) => error instanceof NodeConfigError && error.arg === arg,
      );
    refused({ tarball: { sha256: "abc", images: base.tarball.images } }, "tarball.sha256");
    refused({ tarball: { sha256, images: [] } }, "tarball.images");
    refused({ tarball: { sha256, images: ["pause:3.10; rm -rf /"] } }, "tarball.images[0]");
    refused({ nodeName: "a b" }, "nodeName");
    refused({ stateDir: "relative/dir" }, "stateDir");
    refused({ store: "hosts" }, "store");
  });
});

describe("image preload from the archive: docker exec nodes", function () {
  it("copies the tarball in with docker cp where the script takes it, then runs the script", function () {
    assert.equal(
      archivePreloadDockerCreate("kind-worker", "/srv/p/preload-abab.tar", sha256),
      `docker exec 'kind-worker' mkdir -p '/var/tmp/airgap-conformance-preload' && docker cp '/srv/p/preload-abab.tar' 'kind-worker':'${preloadIncomingPath(sha256)}' && docker exec -i 'kind-worker' sh -s apply`,
    );
    assert.throws(() => archivePreloadDockerCreate("n", "/f", "nope"), NodeConfigError);
  });
});
