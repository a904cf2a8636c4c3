import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import {
  commandHelp,
  mirrorPasswordVariable,
  registryAccessFromFlags,
  runAirgap,
  runArchiveCli,
  runCli,
  runSizeCli,
  upstreamPrefixesFromFlags,
} from "../../../cli/airgap";
import { bytesOf, writeLayout } from "../mirror/oci-layout";
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

  it("--help exits 0 for the size and archive commands too, whatever else is given", async function () {
    const commands = [
      "size",
      "archive-size",
      "archive-split",
      "archive-join",
      "archive-diff",
      "archive-apply",
    ];
    for (const command of commands) {
      for (const argv of [
        [command, "--help"],
        [command, "-h"],
        ["help", command],
        [command, "/nowhere", "--max-part-size", "1G", "--out", "/nowhere", "--help"],
      ]) {
        const result = await runAirgap(argv);
        assert.equal(result.code, 0, argv.join(" "));
        assert.equal(result.stdout, `${commandHelp[command]}\n`);
      }
    }
    // A usage error shows the command's own help.
    const split = await runAirgap(["archive-split", "/nowhere", "--out", "/nowhere"]);
    assert.equal(split.code, 2);
    assert.match(
      split.stderr,
      /archive-split needs --max-part-size\nairgap archive-split ARCHIVE_DIR/,
    );
    assert.equal((await runAirgap(["size"])).code, 2);
    assert.match((await runAirgap(["size"])).stderr, /^airgap size \(--stack NAME/);
    assert.equal((await runAirgap(["--help"])).code, 0);
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

  it("renders the OpenShift mirror objects and no node file for openshift nodes", function () {
    const out = scratchDir("render-");
    const result = runCli(["render", "--stack", "openshift", "--out", out]);
    assert.equal(result.code, 0, result.stderr);
    const documents = YAML.parseAllDocuments(
      readFileSync(path.join(out, "openshift/mirror-objects.yaml"), "utf8"),
    ).map((document) => document.toJS() as { kind: string; spec: Record<string, unknown[]> });
    assert.deepEqual(
      documents.map((document) => document.kind),
      ["ImageDigestMirrorSet", "ImageTagMirrorSet"],
    );
    assert.deepEqual(documents[1].spec.imageTagMirrors[0], {
      source: "registry.k8s.io",
      mirrors: ["registry.lab:5000"],
      mirrorSourcePolicy: "NeverContactSource",
    });
    assert.equal(existsSync(path.join(out, "nodes")), false);

    const file = path.join(scratchDir("stack-"), "Pulumi.old.yaml");
    writeFileSync(
      file,
      readFileSync(path.join(__dirname, "../../../Pulumi.openshift.yaml"), "utf8").replace(
        'nodesOpenshiftVersion: "4.18"',
        'nodesOpenshiftVersion: "4.12"',
      ),
    );
    const old = scratchDir("render-");
    assert.equal(runCli(["render", "--file", file, "--out", old]).code, 0);
    const policy = readFileSync(path.join(old, "openshift/mirror-objects.yaml"), "utf8");
    assert.match(policy, /^# Note: ImageContentSourcePolicy mirrors pulls by digest only/);
    assert.match(policy, /kind: ImageContentSourcePolicy/);
  });

  it("works for every example stack file", function () {
    const root = path.resolve(__dirname, "..", "..", "..");
    const dir = scratchDir("stacks-");
    for (const stack of ["dev", "export", "kubeadm", "k3s", "openshift", "preload"]) {
      // Files a stack names on its bastion are replaced by the test fixtures.
      const file = path.join(dir, `Pulumi.${stack}.yaml`);
      writeFileSync(
        file,
        readFileSync(path.join(root, `Pulumi.${stack}.yaml`), "utf8").replace(
          "/etc/airgap/k3s-images.txt",
          path.join(root, "test", "fixtures", "k3s", "k3s-images.txt"),
        ),
      );
      for (const command of ["images", "mapping"]) {
        const result = runCli([command, "--file", file]);
        assert.equal(result.code, 0, `${command} ${stack}: ${result.stderr}`);
      }
    }
    const k3s = runCli(["images", "--file", path.join(dir, "Pulumi.k3s.yaml")]);
    assert.match(
      k3s.stdout,
      /^docker\.io\/rancher\/mirrored-pause:3\.6\tlist file .*\(k3s system images\):8$/m,
    );
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

describe("offline CLI: archives", function () {
  it("prints the size report before any part is written, then splits and joins", async function () {
    const archive = scratchDir("archive-");
    writeLayout(archive, [
      {
        name: "registry.k8s.io/pause:3.10",
        platforms: [
          { platform: "linux/amd64", layers: [bytesOf("a", 3000)] },
          { platform: "linux/arm64", layers: [bytesOf("b", 3000)] },
        ],
      },
    ]);
    const parts = path.join(scratchDir("parts-"), "usb");
    const printed: { text: string; partsBefore: boolean }[] = [];
    const result = await runArchiveCli(
      ["archive-split", archive, "--max-part-size", "2K", "--out", parts],
      (text) => printed.push({ text, partsBefore: existsSync(parts) }),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(printed.length, 1);
    assert.match(printed[0].text, /^ {2}registry\.k8s\.io\/pause:3\.10 /m);
    assert.match(printed[0].text, /^ {4}linux\/arm64 /m);
    assert.equal(printed[0].partsBefore, false, "the report comes before anything is written");
    assert.match(result.stdout, /^wrote \d+ parts of at most 2\.0 KiB/);

    const size = await runArchiveCli(["archive-size", archive, "--json"]);
    assert.equal(size.code, 0);
    assert.deepEqual(Object.keys(JSON.parse(size.stdout).platforms), [
      "linux/amd64",
      "linux/arm64",
    ]);

    const joined = path.join(scratchDir("joined-"), "archive");
    const join = await runArchiveCli(["archive-join", parts, "--out", joined]);
    assert.equal(join.code, 0, join.stderr);
    assert.equal(
      readFileSync(path.join(joined, "index.json"), "utf8"),
      readFileSync(path.join(archive, "index.json"), "utf8"),
    );
    // A differential against the joined copy's lock carries nothing; applied, nothing changes.
    const diff = path.join(scratchDir("diff-"), "d");
    const diffResult = await runArchiveCli([
      "archive-diff",
      archive,
      "--against",
      path.join(joined, "images.lock.json"),
      "--out",
      diff,
    ]);
    assert.equal(diffResult.code, 0, diffResult.stderr);
    assert.match(
      diffResult.stdout,
      /^wrote 0 images \(0 blobs, 0 B\).* 1 images and 0 shared blobs/,
    );
    const apply = await runArchiveCli(["archive-apply", diff, "--onto", joined]);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /^applied 0 images onto /);
    assert.equal((await runArchiveCli(["archive-diff", archive, "--out", diff])).code, 2);

    const bad = await runArchiveCli([
      "archive-split",
      archive,
      "--max-part-size",
      "lots",
      "--out",
      parts,
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--max-part-size: 'lots' is not a size/);
  });
});

describe("offline CLI: size before anything is written", function () {
  function stackFile(lines: string[]): string {
    const file = path.join(scratchDir("stack-"), "Pulumi.size.yaml");
    writeFileSync(
      file,
      [
        "config:",
        "  airgap-conformance:kubernetesVersion: 1.31.4",
        ...lines.map((l) => `  airgap-conformance:${l}`),
      ].join("\n") + "\n",
    );
    return file;
  }

  it("measures an archive the stack imports", async function () {
    const archive = scratchDir("archive-");
    writeLayout(archive, [
      {
        name: "registry.k8s.io/pause:3.10",
        platforms: [{ platform: "linux/amd64", layers: [bytesOf("p", 2000)] }],
      },
    ]);
    const file = stackFile([
      "imagesSource: archive",
      `imagesArchiveDirectory: ${archive}`,
      "conformanceEnabled: false",
    ]);
    const result = await runSizeCli(["--file", file, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as {
      images: { image: string }[];
      unmeasured: unknown[];
    };
    assert.deepEqual(
      report.images.map((image) => image.image),
      ["registry.k8s.io/pause:3.10"],
    );
    assert.deepEqual(report.unmeasured, []);
  });

  it("names every image it could not measure and fails, writing nothing", async function () {
    const out = path.join(scratchDir("export-"), "images");
    const file = stackFile([
      "registryEnabled: false",
      "imagesSource: registry",
      "imagesSourceRegistry: http://127.0.0.1:9",
      "imagesDestination: archive",
      `imagesArchiveDirectory: ${out}`,
      "conformanceEnabled: false",
    ]);
    const images = runCli(["images", "--file", file])
      .stdout.split("\n")
      .filter((line) => /^[a-z]/.test(line));
    const result = await runSizeCli(["--file", file]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `${images.length} of ${images.length} images could not be measured\n`,
    );
    assert.match(
      result.stdout,
      /^not measured: registry\.k8s\.io\/pause:3\.10 \(cannot reach registry 127\.0\.0\.1:9/m,
    );
    assert.equal(existsSync(out), false);
  });
});

describe("offline CLI: archive-apply --onto-registry", function () {
  const env = { [mirrorPasswordVariable]: "from-env-pw" };

  it("verifies TLS by default, takes a CA file, and marks insecure or plain HTTP only when told", function () {
    const ca = path.join(scratchDir("ca-"), "ca.crt");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\n");
    assert.deepEqual(registryAccessFromFlags({ "onto-registry": "https://mirror:5000" }, {}), {
      host: "mirror:5000",
      scheme: "https",
    });
    assert.deepEqual(
      registryAccessFromFlags({ "onto-registry": "https://mirror:5000/", "ca-file": ca }, {}),
      { host: "mirror:5000", scheme: "https", caFile: ca },
    );
    assert.deepEqual(
      registryAccessFromFlags({ "onto-registry": "https://mirror:5000", insecure: true }, {}),
      { host: "mirror:5000", scheme: "https", insecureSkipVerify: true },
    );
    assert.deepEqual(registryAccessFromFlags({ "onto-registry": "http://10.0.0.5:5000" }, {}), {
      host: "10.0.0.5:5000",
      scheme: "http",
    });
    for (const [flags, message] of [
      [{ "onto-registry": "mirror:5000" }, /give the mirror as https:\/\/HOST\[:PORT\]/],
      [{ "onto-registry": "https://mirror:5000/v2/x" }, /give the mirror as https/],
      [{ "onto-registry": "http://mirror:5000", insecure: true }, /apply to https:\/\/ only/],
      [{ "onto-registry": "https://mirror:5000", insecure: true, "ca-file": ca }, /give one/],
      [{ "onto-registry": "https://mirror:5000", "ca-file": "/nowhere/ca.crt" }, /--ca-file/],
    ] as const) {
      assert.throws(() => registryAccessFromFlags(flags, {}), message);
    }
  });

  it("takes the password from the environment or a file, never from the command line", function () {
    const flags = { "onto-registry": "https://mirror:5000", username: "mirror" };
    assert.equal(registryAccessFromFlags(flags, env).password, "from-env-pw");
    const file = path.join(scratchDir("pw-"), "password");
    writeFileSync(file, "from-file-pw\n");
    const access = registryAccessFromFlags({ ...flags, "password-file": file }, env);
    assert.deepEqual([access.username, access.password], ["mirror", "from-file-pw"]);
    assert.throws(
      () => registryAccessFromFlags(flags, {}),
      /needs a password: set AIRGAP_MIRROR_PASSWORD/,
    );
    assert.throws(
      () =>
        registryAccessFromFlags(
          { "onto-registry": flags["onto-registry"], "password-file": file },
          {},
        ),
      /--password-file needs --username/,
    );
    assert.equal(
      registryAccessFromFlags({ "onto-registry": flags["onto-registry"] }, env).password,
      undefined,
    );
  });

  it("refuses --password by name, and says so without echoing it", async function () {
    const result = await runArchiveCli(
      [
        "archive-apply",
        scratchDir("diff-"),
        "--onto-registry",
        "https://mirror:5000",
        "--username",
        "mirror",
        "--password",
        "argv-secret-pw",
      ],
      () => undefined,
      {},
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--password is not accepted/);
    assert.doesNotMatch(result.stderr + result.stdout, /argv-secret-pw/);
  });

  it("needs exactly one of --onto and --onto-registry", async function () {
    const diff = scratchDir("diff-");
    for (const extra of [[], ["--onto", diff, "--onto-registry", "https://mirror:5000"]]) {
      const result = await runArchiveCli(["archive-apply", diff, ...extra], () => undefined, {});
      assert.equal(result.code, 2);
      assert.match(result.stderr, /--onto-registry \(https\|http\):\/\/HOST/);
    }
  });

  it("reads the mirror's upstream prefixes as the stack's upstreamPrefixes", function () {
    assert.deepEqual(upstreamPrefixesFromFlags(["docker.io=dockerhub", "quay.io=quay"]), {
      "docker.io": "dockerhub",
      "quay.io": "quay",
    });
    assert.throws(() => upstreamPrefixesFromFlags(["docker.io"]), /give REGISTRY=PREFIX/);
    assert.throws(
      () => upstreamPrefixesFromFlags(["docker.io=Docker_Hub"]),
      /^CliArgumentError: --upstream-prefix: invalid upstreamPrefixes\["docker\.io"\] = "Docker_Hub": a prefix is one or more lowercase path components/,
    );
  });
});
