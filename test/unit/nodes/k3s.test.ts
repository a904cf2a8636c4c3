import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import {
  type NodeMirror,
  NodeConfigError,
  planNodeFiles,
  renderRancherConfigDropIn,
  renderRegistriesYaml,
} from "../../../core/nodes";
import { assertGolden } from "./golden";

const docs = path.resolve(__dirname, "..", "..", "fixtures", "k3s");
/** A snippet of the k3s documentation, parsed. */
function documented(name: string): unknown {
  return YAML.parse(readFileSync(path.join(docs, name), "utf8"));
}

const httpMirror: NodeMirror = { endpoint: "10.0.0.5:5000", scheme: "http" };
const tlsMirror: NodeMirror = { endpoint: "registry.example.com:5000", scheme: "https" };
const upstreams = [{ registry: "registry.k8s.io" }, { registry: "docker.io" }];

describe("k3s/rke2 node options", function () {
  it("embedded registry: the documented '*' mirror beside the upstream mirrors", function () {
    const text = renderRegistriesYaml(tlsMirror, [{ registry: "docker.io" }], {
      embeddedRegistry: true,
    });
    assertGolden("registries.yaml-embedded-registry", text);
    const parsed = YAML.parse(text) as { mirrors: Record<string, unknown> };
    const wildcard = documented("docs-registry-mirror-wildcard.yaml") as {
      mirrors: Record<string, unknown>;
    };
    const mirror = documented("docs-private-registry-mirror.yaml") as {
      mirrors: Record<string, unknown>;
    };
    // The documentation's two snippets, beside the mirror's own name.
    assert.deepEqual(parsed.mirrors, {
      "registry.example.com:5000": { endpoint: ["https://registry.example.com:5000"] },
      ...mirror.mirrors,
      ...wildcard.mirrors,
    });
    // Written the way the documentation writes it, not `"*": null`.
    assert.match(text, /^ {2}"\*":$/m);
  });

  it("config drop-in: system-default-registry and embedded-registry as documented", function () {
    const text = renderRancherConfigDropIn(tlsMirror, {
      systemDefaultRegistry: true,
      embeddedRegistry: true,
    });
    assertGolden("k3s-config-system-default-registry-embedded.yaml", text);
    assert.deepEqual(YAML.parse(text), {
      ...(documented("docs-system-default-registry-config.yaml") as object),
      ...(documented("docs-embedded-registry-config.yaml") as object),
    });
  });

  it("plans the drop-in and the mirror's own name for k3s and rke2 nodes", function () {
    for (const runtime of ["k3s", "rke2"] as const) {
      const plan = planNodeFiles({
        runtime,
        mirror: httpMirror,
        upstreams,
        options: { systemDefaultRegistry: true, embeddedRegistry: true, forbidFallback: true },
      });
      const byPath = new Map(
        plan.files.map((file) => [file.path, file.kind === "file" ? file.content : ""]),
      );
      const dropIn = YAML.parse(
        byPath.get(`/etc/rancher/${runtime}/config.yaml.d/50-airgap-mirror.yaml`)!,
      );
      assert.deepEqual(dropIn, {
        "disable-default-registry-endpoint": true,
        "system-default-registry": "10.0.0.5:5000",
        "embedded-registry": true,
      });
      const registries = YAML.parse(byPath.get(`/etc/rancher/${runtime}/registries.yaml`)!) as {
        mirrors: Record<string, { endpoint?: string[] } | null>;
      };
      // System images are pulled as 10.0.0.5:5000/rancher/...: plain http, not https.
      assert.deepEqual(registries.mirrors["10.0.0.5:5000"], { endpoint: ["http://10.0.0.5:5000"] });
      assert.equal(registries.mirrors["*"], null);
      assert.ok("*" in registries.mirrors);
    }
    // Without the options nothing changes: no drop-in, no extra mirrors.
    const plain = planNodeFiles({ runtime: "k3s", mirror: httpMirror, upstreams });
    assert.deepEqual(
      plain.files.map((file) => file.path),
      ["/etc/rancher/k3s/registries.yaml"],
    );
  });

  it("refuses system-default-registry when Docker Hub images live under a prefix", function () {
    assert.throws(
      () =>
        planNodeFiles({
          runtime: "k3s",
          mirror: httpMirror,
          upstreams: [{ registry: "docker.io", pathPrefix: "dockerhub" }],
          options: { systemDefaultRegistry: true },
        }),
      (error: unknown) =>
        error instanceof NodeConfigError &&
        error.arg === "k3s.systemDefaultRegistry" &&
        /registry host only.*'dockerhub\/'/.test(error.message),
    );
  });
});
