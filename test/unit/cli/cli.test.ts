import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { commandHelp, runCli } from "../../../cli/airgap";
import { renderRepoList } from "../../../core/images/repo-list";
import { scratchDir } from "../../scratch";

describe("offline CLI", function () {
  it("--help, -h and help <command> print usage and exit 0", function () {
    for (const argv of [["--help"], ["-h"], ["help"]]) {
      const result = runCli(argv);
      assert.equal(result.code, 0, argv.join(" "));
      assert.match(result.stdout, /^usage: airgap <command>/);
      for (const command of Object.keys(commandHelp)) {
        assert.match(result.stdout, new RegExp(`^  ${command} `, "m"));
      }
    }
    for (const command of ["images", "mapping", "render"]) {
      for (const argv of [
        [command, "--help"],
        ["help", command],
      ]) {
        const result = runCli(argv);
        assert.equal(result.code, 0, argv.join(" "));
        assert.equal(result.stdout, `${commandHelp[command]}\n`);
      }
    }
    assert.equal(runCli(["help", "frobnicate"]).code, 2);
  });

  it("every subcommand works on the export stack (no registry: archive names)", function () {
    assert.equal(runCli(["images", "--stack", "export"]).code, 0);
    const mapping = runCli(["mapping", "--stack", "export", "--json"]);
    assert.equal(mapping.code, 0, mapping.stderr);
    assert.equal(
      (JSON.parse(mapping.stdout) as Record<string, string>)["registry.k8s.io/pause:3.10"],
      "oci:/media/usb/airgap-images:registry.k8s.io/pause:3.10",
    );
    const out = scratchDir("render-");
    const render = runCli(["render", "--stack", "export", "--out", out]);
    assert.equal(render.code, 0, render.stderr);
    assert.match(
      readFileSync(path.join(out, "mapping.txt"), "utf8"),
      /^registry\.k8s\.io\/pause:3\.10 oci:\/media\/usb\/airgap-images:registry\.k8s\.io\/pause:3\.10$/m,
    );
    assert.equal(existsSync(path.join(out, "repo-list.yaml")), false);
  });

  it("render names the CA key and writes nothing when a file is missing", function () {
    const out = path.join(scratchDir("render-"), "out");
    const result = runCli(["render", "--stack", "kubeadm", "--out", out]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /config airgap-conformance:mirrorCaFile: got "\/etc\/airgap\/ca\.crt"; allowed: a readable PEM file/,
    );
    assert.equal(existsSync(out), false);
  });

  it("names the config key when the mirror's address cannot be told", function () {
    const dir = scratchDir("stack-");
    const file = path.join(dir, "Pulumi.bare.yaml");
    writeFileSync(file, "config:\n  airgap-conformance:kubernetesVersion: 1.31.4\n");
    const result = runCli(["mapping", "--file", file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /config airgap-conformance:registryAdvertisedEndpoint: /);
  });
  it("lists the images of the dev stack with why each is there", function () {
    const result = runCli(["images", "--stack", "dev"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^# catalog 1\.31: release, not known to be complete/m);
    assert.match(result.stdout, /^registry\.k8s\.io\/conformance:v1\.31\.4\tconformance$/m);
    assert.match(
      result.stdout,
      /^registry\.k8s\.io\/e2e-test-images\/busybox:1\.36\.1-1\tcatalog 1\.31, results$/m,
    );
    assert.match(
      result.stdout,
      /^# not mirrored: invalid\.registry\.k8s\.io\/invalid\/alpine:3\.1 /m,
    );
  });

  it("prints the mapping onto the mirror the nodes use", function () {
    const result = runCli(["mapping", "--stack", "dev", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const mapping = JSON.parse(result.stdout) as Record<string, string>;
    assert.equal(mapping["registry.k8s.io/pause:3.10"], "kind-registry:5000/pause:3.10");
  });

  it("renders the repo list and lists for review", function () {
    const out = scratchDir("render-");
    const result = runCli(["render", "--stack", "dev", "--out", out]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      readFileSync(path.join(out, "repo-list.yaml"), "utf8"),
      renderRepoList({ mirrorHost: "kind-registry:5000" }),
    );
    assert.match(
      readFileSync(path.join(out, "mapping.txt"), "utf8"),
      /^registry\.k8s\.io\/pause:3\.10 kind-registry:5000\/pause:3\.10$/m,
    );
    // The node files NodeRegistryConfig would write on the kind node, for review.
    const hostsToml = readFileSync(
      path.join(
        out,
        "nodes/airgap-control-plane/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
      ),
      "utf8",
    );
    assert.match(hostsToml, /\[host\."http:\/\/kind-registry:5000"\]/);
    // The exact script the node runs: valid sh, carrying that same file as its content.
    const script = readFileSync(
      path.join(out, "nodes/airgap-control-plane/node-script.sh"),
      "utf8",
    );
    assert.match(
      script,
      /^#!\/bin\/sh\n# airgap-conformance NodeRegistryConfig for node airgap-control-plane \(containerd\)/,
    );
    const syntax = spawnSync("/bin/sh", ["-n"], { input: script, encoding: "utf8" });
    assert.equal(syntax.status, 0, syntax.stderr);
    const staged = [...script.matchAll(/<<'AIRGAP_CONTENT'\n([\s\S]*?)\nAIRGAP_CONTENT$/gm)].map(
      ([, body]) => Buffer.from(body.replace(/\n/g, ""), "base64").toString("utf8"),
    );
    assert.ok(staged.includes(hostsToml), "the script writes the reviewed hosts.toml");
    assert.match(result.stdout, /nodes\/airgap-control-plane\/node-script\.sh/);
    // ...and the file for the mirror's own name, which the run pod and the repo list use.
    const ownHostsToml = readFileSync(
      path.join(
        out,
        "nodes/airgap-control-plane/etc/containerd/certs.d/kind-registry_5000_/hosts.toml",
      ),
      "utf8",
    );
    assert.match(ownHostsToml, /^server = "http:\/\/kind-registry:5000"$/m);
  });

  it("renders where credentials go on a TLS + htpasswd stack, naming the key instead of the password", function () {
    const fixtures = path.resolve(__dirname, "..", "..", "fixtures");
    const dir = scratchDir("stack-");
    const file = path.join(dir, "Pulumi.kubeadm.yaml");
    // The kubeadm stack with its bastion's files replaced by fixtures.
    writeFileSync(
      file,
      readFileSync(path.resolve(__dirname, "..", "..", "..", "Pulumi.kubeadm.yaml"), "utf8")
        .replace("/etc/airgap/registry.crt", path.join(fixtures, "registry.crt"))
        .replace("/etc/airgap/registry.key", path.join(fixtures, "registry.key"))
        .replace("/etc/airgap/ca.crt", path.join(fixtures, "registry.crt")),
    );
    const out = scratchDir("render-");
    const result = runCli(["render", "--file", file, "--out", out]);
    assert.equal(result.code, 0, result.stderr);
    const own = readFileSync(
      path.join(out, "nodes/cp-1/etc/containerd/certs.d/10.0.0.5_5000_/hosts.toml"),
      "utf8",
    );
    assert.match(own, /^server = "https:\/\/10\.0\.0\.5:5000"$/m);
    assert.match(own, /^ {2}ca = "\/etc\/airgap-conformance\/mirror-ca\.crt"$/m);
    assert.match(
      own,
      /^ {4}Authorization = "Basic <base64 of mirror:<airgap-conformance:registryPassword>>"$/m,
    );
    assert.doesNotMatch(own, /placeholder/);
  });

  it("works for every example stack file", function () {
    for (const stack of ["dev", "export", "kubeadm", "k3s"]) {
      for (const command of ["images", "mapping"]) {
        const result = runCli([command, "--stack", stack]);
        assert.equal(result.code, 0, `${command} ${stack}: ${result.stderr}`);
      }
    }
  });

  it("names the stack file and the key for a bad stack", function () {
    const dir = scratchDir("stack-");
    const file = path.join(dir, "Pulumi.bad.yaml");
    writeFileSync(
      file,
      "config:\n  airgap-conformance:kubernetesVersion: 1.31.4\n  airgap-conformance:imagesExtras: [nginx]\n",
    );
    const result = runCli(["images", "--file", file]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /Pulumi\.bad\.yaml: config airgap-conformance:imagesExtras: unknown key; did you mean airgap-conformance:imagesExtra\?/,
    );
    const missing = runCli(["images", "--stack", "nope"]);
    assert.match(missing.stderr, /no stack file .*Pulumi\.nope\.yaml \(stacks here: .*dev/);
    assert.equal(runCli(["frobnicate", "--stack", "dev"]).code, 2);
  });
});
