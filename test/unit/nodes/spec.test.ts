import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import {
  type NodeRegistrySettingsInput,
  backupPathFor,
  nodeReport,
  resolveNodeRegistrySettings,
} from "../../../components/nodes/spec";
import { sha256Hex } from "../../../core/nodes";

const caPem = readFileSync(path.resolve(__dirname, "..", "..", "fixtures", "registry.crt"), "utf8");
const spoofedPem = readFileSync(
  path.resolve(__dirname, "..", "..", "fixtures", "spoofed-upstreams.crt"),
  "utf8",
);

const base: NodeRegistrySettingsInput = {
  nodes: [
    {
      name: "worker-1",
      address: "10.0.0.11",
      runtime: "containerd",
      access: { kind: "ssh", hasPrivateKey: true },
    },
    { name: "kind-control-plane", runtime: "containerd", access: { kind: "docker-exec" } },
  ],
  mirror: { endpoint: "10.0.0.5:5000" },
  upstreams: [{ registry: "registry.k8s.io" }],
};

function withNode(patch: Partial<NodeRegistrySettingsInput["nodes"][number]>, index = 0) {
  const nodes = base.nodes.map((node, i) => (i === index ? { ...node, ...patch } : node));
  return { ...base, nodes } as NodeRegistrySettingsInput;
}

describe("NodeRegistryConfig arguments", function () {
  it("resolves access defaults: root over port 22 without sudo; kind container = node name", function () {
    const settings = resolveNodeRegistrySettings(base);
    assert.deepEqual(settings.nodes[0].access, {
      kind: "ssh",
      host: "10.0.0.11",
      port: 22,
      user: "root",
      sudo: false,
    });
    assert.deepEqual(settings.nodes[0].commands, { create: "sh -s apply", delete: "sh -s delete" });
    assert.deepEqual(settings.nodes[1].access, {
      kind: "docker-exec",
      container: "kind-control-plane",
    });
    const admin = resolveNodeRegistrySettings(
      withNode({ access: { kind: "ssh", user: "admin", hasPrivateKey: true } }),
    );
    assert.equal(admin.nodes[0].commands.create, "sudo -n sh -s apply");
  });

  it("reports files and where the node keeps their originals", function () {
    const settings = resolveNodeRegistrySettings({
      ...base,
      mirror: { endpoint: "registry.lab:5443", scheme: "https", caCertificate: caPem },
    });
    const report = nodeReport(settings.nodes[0], settings.stateDir);
    assert.deepEqual(
      report.files.map((file) => file.path),
      [
        "/etc/containerd/config.toml",
        "/etc/airgap-conformance/mirror-ca.crt",
        "/etc/containerd/certs.d/registry.lab_5443_/hosts.toml",
        "/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
      ],
    );
    assert.deepEqual(report.files[1], {
      path: "/etc/airgap-conformance/mirror-ca.crt",
      sha256: sha256Hex(caPem),
      backupPath: `/var/lib/airgap-conformance/node-registry/entries/${sha256Hex("/etc/airgap-conformance/mirror-ca.crt").slice(0, 16)}/original`,
    });
    assert.equal(report.files[0].path, "/etc/containerd/config.toml");
    assert.equal(report.files[0].sha256, undefined, "config.toml is edited, not replaced");
    assert.equal(
      backupPathFor("/s", "/etc/hosts"),
      `/s/entries/${sha256Hex("/etc/hosts").slice(0, 16)}/original`,
    );
  });

  it("gives containerd nodes the credentials, and reports no checksum of a file holding them", function () {
    const settings = resolveNodeRegistrySettings({
      ...base,
      mirror: {
        endpoint: "registry.lab:5443",
        scheme: "https",
        caCertificate: caPem,
        auth: { username: "puller", hasPassword: true },
      },
    });
    const node = settings.nodes[0];
    assert.equal(node.plan.secret, true);
    const report = nodeReport(node, settings.stateDir);
    for (const file of report.files.filter((f) => f.path.endsWith("hosts.toml"))) {
      assert.equal(file.sha256, undefined, `${file.path} holds the password`);
    }
    assert.equal(report.files[1].sha256, sha256Hex(caPem), "the CA is no secret");
  });

  const failures: Array<[string, NodeRegistrySettingsInput, RegExp]> = [
    [
      "unknown runtime flavour",
      withNode({ runtime: "docker" }),
      /nodes\[0\]\.runtime: 'docker' is not a runtime flavour; use one of containerd, containerd2, k3s, rke2, crio, podman, hosts/,
    ],
    [
      "node listed twice",
      withNode({ name: "worker-1" }, 1),
      /nodes\[1\]\.name: node 'worker-1' is listed twice \(also nodes\[0\]\)/,
    ],
    [
      "two names for one machine",
      {
        ...base,
        nodes: [base.nodes[0], { ...base.nodes[0], name: "worker-1b" }],
      },
      /nodes\[1\]\.access: node 'worker-1b' is reached the same way as nodes\[0\] \(ssh:\/\/root@10\.0\.0\.11:22\)/,
    ],
    [
      "bad address",
      withNode({ address: "ssh://10.0.0.11" }),
      /nodes\[0\]\.address: 'ssh:\/\/10\.0\.0\.11' is not an IP address or DNS name/,
    ],
    [
      "ssh node without address",
      withNode({ address: undefined }),
      /nodes\[0\]\.address: an ssh node needs the address/,
    ],
    [
      "missing key",
      withNode({ access: { kind: "ssh", hasPrivateKey: false } }),
      /nodes\[0\]\.access\.privateKey: an ssh node needs a private key/,
    ],
    [
      "port out of range",
      withNode({ access: { kind: "ssh", port: 0, hasPrivateKey: true } }),
      /nodes\[0\]\.access\.port: 0 is out of range/,
    ],
    [
      "unknown access kind",
      withNode({ access: { kind: "winrm" } as never }),
      /nodes\[0\]\.access\.kind: 'winrm' is not an access kind; use ssh, docker-exec or manual/,
    ],
    [
      "bad node name",
      withNode({ name: "Worker_1" }),
      /nodes\[0\]\.name: 'Worker_1' is not a node name/,
    ],
    [
      "hosts flavour over plain http",
      withNode({ runtime: "hosts" }),
      /mirror\.scheme: hosts spoofing .* over https on port 443 only.* \(node 'worker-1', runtime hosts\)/,
    ],
    [
      "hosts flavour on a port other than 443",
      {
        ...withNode({ runtime: "hosts" }),
        mirror: { endpoint: "10.0.0.5:5000", scheme: "https", certificate: spoofedPem },
      },
      /mirror\.endpoint: hosts spoofing .* must listen on port 443 \(https\); '10\.0\.0\.5:5000' uses 5000\..* \(node 'worker-1', runtime hosts\)/,
    ],
    [
      "hosts flavour without the mirror's certificate",
      { ...withNode({ runtime: "hosts" }), mirror: { endpoint: "10.0.0.5:443", scheme: "https" } },
      /mirror\.certificate: hosts spoofing needs the mirror's own certificate \(PEM\) to check that it covers registry\.k8s\.io, 10\.0\.0\.5/,
    ],
    [
      "hosts flavour with a certificate that misses spoofed names",
      {
        ...withNode({ runtime: "hosts" }),
        mirror: { endpoint: "10.0.0.5:443", scheme: "https", certificate: caPem },
      },
      /mirror\.certificate: does not cover registry\.k8s\.io \(it names DNS:registry\.lab, DNS:localhost, IP Address:10\.0\.0\.5, IP Address:127\.0\.0\.1\); hosts spoofing needs a certificate whose subject alternative names include every spoofed name/,
    ],
    [
      "hosts flavour with a certificate that misses the mirror's own address",
      {
        ...withNode({ runtime: "hosts" }),
        mirror: { endpoint: "192.0.2.99:443", scheme: "https", certificate: spoofedPem },
      },
      /mirror\.certificate: does not cover 192\.0\.2\.99 /,
    ],
    [
      "credentials for a podman node",
      {
        ...withNode({ runtime: "podman" }),
        mirror: { ...base.mirror, auth: { username: "u", hasPassword: true } },
      },
      /mirror\.auth: podman nodes cannot be given the mirror's credentials \(only containerd, containerd2, k3s, rke2 nodes can\), so every pull would fail with 401.*\(node 'worker-1', runtime podman\)/,
    ],
    [
      "the mirror listed as one of its own upstreams",
      { ...base, upstreams: [{ registry: "registry.k8s.io" }, { registry: "10.0.0.5:5000" }] },
      /upstreams\[1\]\.registry: '10\.0\.0\.5:5000' is the mirror itself/,
    ],
    [
      "user without password",
      { ...base, mirror: { ...base.mirror, auth: { username: "u", hasPassword: false } } },
      /mirror\.auth\.password: user 'u' needs a password/,
    ],
    [
      "CA for a plain http mirror",
      { ...base, mirror: { ...base.mirror, caCertificate: caPem } },
      /mirror\.caCertificate: only applies to an https mirror/,
    ],
    [
      "CA that is no certificate",
      { ...base, mirror: { endpoint: "r.lab:443", scheme: "https", caCertificate: "hello" } },
      /mirror\.caCertificate: is not a PEM certificate/,
    ],
    [
      "unknown scheme",
      { ...base, mirror: { ...base.mirror, scheme: "ftp" } },
      /mirror\.scheme: 'ftp' is not a scheme; use http or https/,
    ],
    [
      "endpoint with a scheme",
      { ...base, mirror: { endpoint: "http://10.0.0.5:5000" } },
      /mirror\.endpoint: 'http:\/\/10\.0\.0\.5:5000' must be host\[:port\] without a scheme/,
    ],
    ["no upstreams", { ...base, upstreams: [] }, /upstreams: name at least one upstream registry/],
    [
      "upstream with a path",
      { ...base, upstreams: [{ registry: "registry.k8s.io/pause" }] },
      /upstreams\[0\]\.registry: 'registry\.k8s\.io\/pause' is not a registry host/,
    ],
    [
      "docker.io twice under two spellings",
      { ...base, upstreams: [{ registry: "docker.io" }, { registry: "index.docker.io" }] },
      /upstreams\[1\]\.registry: 'docker\.io' is already upstreams\[0\]/,
    ],
    [
      "bad path prefix",
      { ...base, upstreams: [{ registry: "docker.io", pathPrefix: "Docker Hub" }] },
      /upstreams\[0\]\.pathPrefix: 'Docker Hub' must be lowercase path components/,
    ],
    ["no nodes", { ...base, nodes: [] }, /nodes: list at least one node/],
    [
      "relative state dir",
      { ...base, stateDir: "var/lib/x" },
      /stateDir: 'var\/lib\/x' must be an absolute directory path/,
    ],
  ];
  for (const [label, input, expected] of failures) {
    it(`refuses: ${label}`, function () {
      assert.throws(() => resolveNodeRegistrySettings(input), expected);
    });
  }
});
