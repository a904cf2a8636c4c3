import assert from "node:assert/strict";
import { NodeConfigError, preloadStoreFor, renderPreloadScript } from "../../../core/nodes";

const base = {
  store: "containerd" as const,
  mirror: { endpoint: "10.0.0.5:5000", scheme: "http" as const },
  images: [{ source: "registry.k8s.io/pause:3.10", mirrorReference: "10.0.0.5:5000/pause:3.10" }],
  nodeName: "worker-1",
  stateDir: "/var/lib/airgap-conformance",
};

describe("image preload script", function () {
  it("records a name before it creates it, and pulls plain http only from an http mirror", function () {
    const script = renderPreloadScript(base);
    const remember = script.indexOf("remember '10.0.0.5:5000/pause:3.10'");
    const pull = script.indexOf("images pull --plain-http '10.0.0.5:5000/pause:3.10'");
    assert.ok(remember > 0 && pull > remember, "the record comes first");
    assert.ok(
      script.indexOf("remember 'registry.k8s.io/pause:3.10'") <
        script.indexOf("images tag --force"),
    );
    const tls = renderPreloadScript({
      ...base,
      mirror: { endpoint: "10.0.0.5:5000", scheme: "https" },
    });
    assert.doesNotMatch(tls, /--plain-http/);
    const podman = renderPreloadScript({ ...base, store: "podman" });
    assert.match(podman, /podman pull --quiet --tls-verify=false '10\.0\.0\.5:5000\/pause:3\.10'/);
    assert.match(
      podman,
      /podman tag '10\.0\.0\.5:5000\/pause:3\.10' 'registry\.k8s\.io\/pause:3\.10'/,
    );
  });

  it("maps runtimes to stores and names the argument for bad input", function () {
    assert.equal(preloadStoreFor("containerd2"), "containerd");
    assert.equal(preloadStoreFor("crio"), "podman");
    assert.equal(preloadStoreFor("k3s"), undefined);
    const refused = (input: Partial<typeof base> & Record<string, unknown>, arg: string) =>
      assert.throws(
        () => renderPreloadScript({ ...base, ...input } as typeof base),
        (error: unknown) => error instanceof NodeConfigError && error.arg === arg,
      );
    refused({ images: [] }, "images");
    refused(
      {
        images: [
          {
            source: "registry.k8s.io/pause:3.10; rm -rf /",
            mirrorReference: "10.0.0.5:5000/pause:3.10",
          },
        ],
      },
      "images[0].source",
    );
    refused(
      {
        images: [
          { source: "registry.k8s.io/pause:3.10", mirrorReference: "elsewhere:5000/pause:3.10" },
        ],
      },
      "images[0].mirrorReference",
    );
    refused({ stateDir: "relative" }, "stateDir");
    refused({ store: "k3s" as never }, "store");
  });
});
