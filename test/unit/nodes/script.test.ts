import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import {
  type NodePlan,
  type NodePlanInput,
  containerdHostsDir,
  nodeCommands,
  planNodeFiles,
  renderNodeScript,
  runtimeFlavours,
  sha256Hex,
  shellQuote,
  systemCaPath,
  systemCaPathRhel,
} from "../../../core/nodes";
import { assertGolden } from "./golden";

const caPem = readFileSync(path.resolve(__dirname, "..", "..", "fixtures", "registry.crt"), "utf8");
/** Self-signed, naming the spoofed upstreams and 10.0.0.5: its own CA. */
const spoofedPem = readFileSync(
  path.resolve(__dirname, "..", "..", "fixtures", "spoofed-upstreams.crt"),
  "utf8",
);

function inputFor(runtime: NodePlanInput["runtime"]): NodePlanInput {
  return {
    runtime,
    mirror:
      runtime === "hosts"
        ? {
            endpoint: "10.0.0.5:443",
            scheme: "https",
            caCertificate: spoofedPem,
            certificate: spoofedPem,
          }
        : { endpoint: "registry.lab:5443", scheme: "https", caCertificate: caPem },
    upstreams: [{ registry: "registry.k8s.io" }, { registry: "docker.io" }],
  };
}

/** Every `stage <id> <sha> <<'AIRGAP_CONTENT'` block of a script, decoded. */
function stagedContents(script: string): Array<{ id: string; sha: string; content: string }> {
  const blocks = [
    ...script.matchAll(
      /^ {2}stage (\S+) ([0-9a-f]{64}) <<'AIRGAP_CONTENT'\n([\s\S]*?)\nAIRGAP_CONTENT$/gm,
    ),
  ];
  return blocks.map(([, id, sha, body]) => ({
    id,
    sha,
    content: Buffer.from(body.replace(/\n/g, ""), "base64").toString("utf8"),
  }));
}

function shellSyntaxError(script: string): string | undefined {
  const checked = spawnSync("/bin/sh", ["-n"], { input: script, encoding: "utf8" });
  return checked.status === 0 ? undefined : checked.stderr;
}

describe("node plans and scripts", function () {
  it("plans containerd nodes: config.toml first (so a bad one stops the run early), CA, hosts.toml for the mirror's own name and per upstream", function () {
    const plan = planNodeFiles(inputFor("containerd"));
    assert.deepEqual(
      plan.files.map((file) => [file.kind, file.path, file.afterChange]),
      [
        ["containerd-config", "/etc/containerd/config.toml", "restart-containerd"],
        ["file", "/etc/airgap-conformance/mirror-ca.crt", "none"],
        // containerd looks for host_port_ before host:port: this name cannot be shadowed.
        ["file", `${containerdHostsDir}/registry.lab_5443_/hosts.toml`, "none"],
        ["file", `${containerdHostsDir}/registry.k8s.io/hosts.toml`, "none"],
        ["file", `${containerdHostsDir}/docker.io/hosts.toml`, "none"],
      ],
    );
    assert.deepEqual(plan.verify, { containerdConfigPath: containerdHostsDir });
  });

  it("plans each flavour's files where its runtime reads them", function () {
    const paths = (runtime: NodePlanInput["runtime"], forbidFallback = false) =>
      planNodeFiles({ ...inputFor(runtime), options: { forbidFallback } }).files.map((f) => f.path);
    assert.deepEqual(paths("k3s", true), [
      "/etc/airgap-conformance/mirror-ca.crt",
      "/etc/rancher/k3s/registries.yaml",
      "/etc/rancher/k3s/config.yaml.d/50-airgap-mirror.yaml",
    ]);
    assert.deepEqual(paths("rke2"), [
      "/etc/airgap-conformance/mirror-ca.crt",
      "/etc/rancher/rke2/registries.yaml",
    ]);
    assert.deepEqual(paths("crio"), [
      "/etc/containers/certs.d/registry.lab:5443/ca.crt",
      "/etc/containers/registries.conf.d/50-airgap-mirror.conf",
    ]);
    assert.deepEqual(paths("hosts"), [
      "/usr/local/share/ca-certificates/airgap-conformance-mirror.crt",
      "/etc/hosts",
    ]);
  });

  it("keeps the k3s password only in a 0600 file and marks the plan secret", function () {
    const plan = planNodeFiles({
      ...inputFor("k3s"),
      mirror: { ...inputFor("k3s").mirror, auth: { username: "puller", password: "pw" } },
    });
    assert.equal(plan.secret, true);
    const registries = plan.files.find((file) => file.path.endsWith("registries.yaml"));
    assert.ok(registries?.kind === "file" && registries.mode === "0600" && registries.secret);
    assert.equal(planNodeFiles(inputFor("k3s")).secret, false);
  });

  it("keeps containerd's credentials only in 0600 hosts.toml files and marks the plan secret", function () {
    const plan = planNodeFiles({
      ...inputFor("containerd2"),
      mirror: { ...inputFor("containerd2").mirror, auth: { username: "puller", password: "pw" } },
    });
    assert.equal(plan.secret, true);
    const header = `Authorization = "Basic ${Buffer.from("puller:pw").toString("base64")}"`;
    for (const file of plan.files) {
      if (file.kind !== "file") continue;
      const holds = file.content.includes(header);
      assert.equal(holds, file.path.endsWith("/hosts.toml"), file.path);
      assert.equal(file.secret, holds, file.path);
      assert.equal(file.mode, holds ? "0600" : "0644", file.path);
    }
    assert.equal(planNodeFiles(inputFor("containerd2")).secret, false);
  });

  it("merges registries.yaml, checks registries.conf prefixes first, and puts the system CA where the node's tool reads", function () {
    const configureOf = (runtime: NodePlanInput["runtime"]) => {
      const script = renderNodeScript(planNodeFiles(inputFor(runtime)), { nodeName: "node-1" });
      return {
        configure: script.slice(script.indexOf("configure() {"), script.indexOf("verify() {")),
        verify: script.slice(script.indexOf("verify() {")),
      };
    };
    const k3s = configureOf("k3s");
    assert.match(
      k3s.configure,
      /^ {2}merge_registries_yaml \S+ '\/etc\/rancher\/k3s\/registries\.yaml' 0\d{3} restart-k3s$/m,
    );
    assert.doesNotMatch(k3s.verify, /registries\.yaml/, "the merged file is not checked by sum");
    const podman = configureOf("podman");
    const check = podman.configure.indexOf(
      "check_registry_prefixes '/etc/containers/registries.conf.d/50-airgap-mirror.conf'",
    );
    const write = podman.configure.indexOf(
      "put_file content-2 '/etc/containers/registries.conf.d/50-airgap-mirror.conf'",
    );
    assert.ok(check > 0 && check < write, "prefixes are checked before the drop-in is written");
    assert.match(podman.verify, /verify_registries_conf/);
    const hosts = configureOf("hosts");
    assert.match(
      hosts.configure,
      /put_system_ca \S+ '\/usr\/local\/share\/ca-certificates\/airgap-conformance-mirror\.crt' '\/etc\/pki\/ca-trust\/source\/anchors\/airgap-conformance-mirror\.crt' 0644 update-ca-trust/,
    );
    assert.match(hosts.verify, /verify_file "\$system_ca" [0-9a-f]{64}/);
  });

  it("names a damaged or changed secret file without any digest of its content", function () {
    const script = renderNodeScript(
      planNodeFiles({
        ...inputFor("k3s"),
        mirror: { ...inputFor("k3s").mirror, auth: { username: "puller", password: "pw-secret" } },
      }),
      { nodeName: "k3s-1" },
    );
    // The script's own checks, run for real on a file that holds something else.
    const functions = ["say", "fail", "stage", "verify_file"].map((name) => {
      const match = script.match(new RegExp(`^${name}\\(\\) \\{(.*\\}$|[\\s\\S]*?^\\}$)`, "m"));
      assert.ok(match, `the script defines ${name}`);
      return match[0];
    });
    const [registries] = stagedContents(script).filter((c) => c.content.includes("pw-secret"));
    const changed = `${registries.content}# edited\n`;
    const dir = mkdtempSync(path.join(os.tmpdir(), "airgap-script-"));
    writeFileSync(path.join(dir, "registries.yaml"), changed);
    writeFileSync(path.join(dir, "sent.b64"), Buffer.from(changed).toString("base64"));
    for (const [call, expected] of [
      [
        'verify_file "$dir/registries.yaml" "$sum"',
        /registries\.yaml does not hold what was written/,
      ],
      ['work=$dir; stage staged "$sum" <"$dir/sent.b64"', /content staged arrived damaged/],
    ] as const) {
      const result = spawnSync("/bin/sh", ["-c", `${functions.join("\n")}\nnode=k3s-1\n${call}`], {
        encoding: "utf8",
        env: { dir, sum: registries.sha, PATH: process.env.PATH },
      });
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, expected);
      assert.ok(!/[0-9a-f]{64}/.test(result.stderr), `no digest in: ${result.stderr}`);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("golden script for a containerd node", function () {
    const plan = planNodeFiles({
      runtime: "containerd",
      mirror: { endpoint: "10.0.0.5:5000", scheme: "http" },
      upstreams: [{ registry: "registry.k8s.io" }],
    });
    assertGolden("script-containerd.sh", renderNodeScript(plan, { nodeName: "worker-1" }));
  });

  it("every flavour's script is valid sh and carries exactly the plan's contents", function () {
    for (const runtime of runtimeFlavours) {
      const plan: NodePlan = planNodeFiles(inputFor(runtime));
      const script = renderNodeScript(plan, { nodeName: "node-1" });
      assert.equal(shellSyntaxError(script), undefined, `${runtime}: ${shellSyntaxError(script)}`);
      const staged = stagedContents(script);
      const expected = plan.files.flatMap((file) =>
        file.kind === "file"
          ? [file.content]
          : file.kind === "block"
            ? [file.block]
            : [file.newFile, file.fragments[2], file.fragments[3]],
      );
      assert.deepEqual(
        staged.map((block) => block.content),
        expected,
        runtime,
      );
      for (const block of staged) assert.equal(block.sha, sha256Hex(block.content));
      // The system CA's place depends on the node's CA tool: both places are managed.
      const managed = plan.files.flatMap((f) =>
        f.path === systemCaPath ? [f.path, systemCaPathRhel] : [f.path],
      );
      assert.ok(script.includes(`managed=${shellQuote(managed.join("\n"))}`));
    }
  });

  it("never splices content into shell: hostile bytes travel only as base64", function () {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (password) => {
        const marker = `$(touch /tmp/pwned)'\`;${password}`;
        const plan = planNodeFiles({
          runtime: "k3s",
          mirror: {
            endpoint: "10.0.0.5:5000",
            scheme: "http",
            auth: { username: "u", password: marker },
          },
          upstreams: [{ registry: "registry.k8s.io" }],
        });
        const script = renderNodeScript(plan, { nodeName: "n" });
        assert.ok(!script.includes("/tmp/pwned"));
        const registries = stagedContents(script).find((block) =>
          block.content.includes("mirrors"),
        );
        assert.ok(registries?.content.includes("password:"));
      }),
      { numRuns: 50 },
    );
  });

  it("refuses node names that are not Kubernetes names", function () {
    const plan = planNodeFiles(inputFor("podman"));
    assert.throws(
      () => renderNodeScript(plan, { nodeName: "Node_1; rm -rf /" }),
      /nodes\[\]\.name: 'Node_1; rm -rf \/' is not a node name/,
    );
  });

  it("command lines carry no content: the script goes on stdin", function () {
    assert.deepEqual(nodeCommands({ kind: "ssh", sudo: false }), {
      create: "sh -s apply",
      delete: "sh -s delete",
    });
    assert.deepEqual(nodeCommands({ kind: "ssh", sudo: true }), {
      create: "sudo -n sh -s apply",
      delete: "sudo -n sh -s delete",
    });
    assert.deepEqual(nodeCommands({ kind: "docker-exec", container: "kind-worker" }), {
      create: "docker exec -i 'kind-worker' sh -s apply",
      delete: "docker exec -i 'kind-worker' sh -s delete",
    });
  });

  it("shellQuote survives sh for any string", function () {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme-ascii" }).filter((s) => !s.includes("\0")),
        (value) => {
          const echoed = spawnSync("/bin/sh", ["-c", `printf %s ${shellQuote(value)}`], {
            encoding: "utf8",
          });
          assert.equal(echoed.stdout, value);
        },
      ),
      { numRuns: 40 },
    );
  });
});
