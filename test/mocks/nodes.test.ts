import { recorded, resourcesOf, settle, valueOf, type RecordedResource } from "./harness";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import {
  NodeRegistryConfig,
  type NodeRegistryConfigArgs,
  type NodeRegistryNode,
} from "../../components/nodes";
import { planNodeFiles, renderNodeScript } from "../../core/nodes";

const caPem = readFileSync(path.resolve(__dirname, "..", "fixtures", "registry.crt"), "utf8");
const privateKey =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nmock-key-never-in-plain-text\n-----END OPENSSH PRIVATE KEY-----\n";
const password = "mock-mirror-password-never-in-plain-text";
const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMTGdvLmgDPZ/nmBIl3MR5RS9lHoEVuY6hm/arU7AM5U";

const componentType = "airgap:nodes:NodeRegistryConfig";
const remoteType = "command:remote:Command";
const localType = "command:local:Command";

function sshNode(
  name: string,
  address: string,
  runtime: NodeRegistryNode["runtime"] = "containerd",
): NodeRegistryNode {
  return {
    name,
    address,
    runtime,
    access: { kind: "ssh", privateKey: pulumi.secret(privateKey), hostKey },
  };
}

const mirror = { endpoint: "registry.lab:5443", scheme: "https" as const, caCertificate: caPem };
const upstreams = [
  { registry: "registry.k8s.io" },
  { registry: "docker.io", pathPrefix: "dockerhub" },
];

function expectedScript(
  nodeName: string,
  runtime: NodeRegistryNode["runtime"],
  auth?: { username: string; password: string },
) {
  return renderNodeScript(planNodeFiles({ runtime, mirror: { ...mirror, auth }, upstreams }), {
    nodeName,
  });
}

function children(componentName: string): RecordedResource[] {
  return resourcesOf(componentName).filter((resource) => resource.custom);
}

/** How each test node is reached: its resource is named after that, not after the node. */
const resourceKeys: Record<string, string> = {
  "worker-1": "ssh-10.0.0.11",
  "worker-2": "ssh-10.0.0.12",
  "worker-3": "ssh-10.0.0.13",
  "kind-control-plane": "docker-kind-control-plane",
  "kind-worker": "docker-kind-worker",
  "server-1": "ssh-k3s-1.lab-2222",
};

/** The child declared for one node (registrations arrive in no fixed order). */
function child(componentName: string, nodeName: string): RecordedResource {
  const key = resourceKeys[nodeName];
  const matches = children(componentName).filter((r) => r.name === `${componentName}-${key}`);
  assert.equal(matches.length, 1, `one resource for node ${nodeName}`);
  return matches[0];
}

async function declare(name: string, args: NodeRegistryConfigArgs): Promise<NodeRegistryConfig> {
  const component = new NodeRegistryConfig(name, args);
  await valueOf(component.nodes);
  await settle();
  return component;
}

describe("NodeRegistryConfig (mocks)", function () {
  describe("ssh nodes and a kind node", function () {
    let component: NodeRegistryConfig;
    before(async function () {
      component = await declare("cluster", {
        nodes: [
          sshNode("worker-1", "10.0.0.11"),
          sshNode("worker-2", "10.0.0.12", "crio"),
          { name: "kind-control-plane", runtime: "containerd", access: { kind: "docker-exec" } },
        ],
        mirror,
        upstreams,
      });
    });

    it("declares one child per node, named <component>-<how it is reached> and parented to the component", function () {
      const nodes = children("cluster");
      assert.deepEqual(nodes.map((resource) => [resource.type, resource.name]).sort(), [
        [localType, "cluster-docker-kind-control-plane"],
        [remoteType, "cluster-ssh-10.0.0.11"],
        [remoteType, "cluster-ssh-10.0.0.12"],
      ]);
      for (const resource of nodes) {
        assert.match(resource.parent, new RegExp(`${componentType}::cluster$`));
        assert.equal(resource.deleteBeforeReplace, true);
      }
      const registration = resourcesOf("cluster").find(
        (resource) => resource.type === componentType,
      );
      assert.ok(registration && !registration.custom);
    });

    it("sends each node exactly the script core/nodes generates, on stdin, with apply/delete commands", function () {
      const [worker1, worker2, kind] = ["worker-1", "worker-2", "kind-control-plane"].map((node) =>
        child("cluster", node),
      );
      assert.equal(worker1.inputs.stdin, expectedScript("worker-1", "containerd"));
      assert.equal(worker2.inputs.stdin, expectedScript("worker-2", "crio"));
      assert.equal(kind.inputs.stdin, expectedScript("kind-control-plane", "containerd"));
      assert.equal(worker1.inputs.create, "sh -s apply");
      assert.equal(worker1.inputs.delete, "sh -s delete");
      assert.equal(kind.inputs.create, "docker exec -i 'kind-control-plane' sh -s apply");
      assert.equal(kind.inputs.delete, "docker exec -i 'kind-control-plane' sh -s delete");
    });

    it("connects over SSH with the key as a secret and nothing else secret", function () {
      const worker1 = child("cluster", "worker-1");
      const connection = worker1.inputs.connection as Record<string, unknown>;
      assert.equal(connection.host, "10.0.0.11");
      assert.equal(connection.port, 22);
      assert.equal(connection.user, "root");
      assert.equal(connection.privateKey, privateKey);
      assert.equal(connection.hostKey, hostKey, "the node's host key is checked on connect");
      assert.ok(
        worker1.secretPaths.some((secretPath) => /^connection(\.privateKey)?$/.test(secretPath)),
        `secret paths: ${worker1.secretPaths.join(", ")}`,
      );
      assert.ok(
        !worker1.secretPaths.includes("stdin"),
        "a script without a password stays readable",
      );
      assert.deepEqual(worker1.inputs.triggers, ["10.0.0.11", 22, "root"]);
      assert.equal(worker1.inputs.logging, "stdoutAndStderr");
      const kind = child("cluster", "kind-control-plane");
      assert.deepEqual(kind.secretPaths, []);
    });

    it("keeps the key out of every command line and plain input", function () {
      for (const resource of children("cluster")) {
        for (const key of ["create", "delete", "stdin"]) {
          assert.ok(!String(resource.inputs[key]).includes("mock-key-never-in-plain-text"));
        }
      }
    });

    it("reports per node the files written and where the originals are kept", async function () {
      const reports = await valueOf(component.nodes);
      assert.deepEqual(
        reports.map((report) => [report.name, report.runtime, report.files.map((f) => f.path)]),
        [
          [
            "worker-1",
            "containerd",
            [
              "/etc/containerd/config.toml",
              "/etc/airgap-conformance/mirror-ca.crt",
              "/etc/containerd/certs.d/registry.lab_5443_/hosts.toml",
              "/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
              "/etc/containerd/certs.d/docker.io/hosts.toml",
            ],
          ],
          [
            "worker-2",
            "crio",
            [
              "/etc/containers/certs.d/registry.lab:5443/ca.crt",
              "/etc/containers/registries.conf.d/50-airgap-mirror.conf",
            ],
          ],
          [
            "kind-control-plane",
            "containerd",
            [
              "/etc/containerd/config.toml",
              "/etc/airgap-conformance/mirror-ca.crt",
              "/etc/containerd/certs.d/registry.lab_5443_/hosts.toml",
              "/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
              "/etc/containerd/certs.d/docker.io/hosts.toml",
            ],
          ],
        ],
      );
      for (const file of reports[0].files) {
        assert.match(
          file.backupPath,
          /^\/var\/lib\/airgap-conformance\/node-registry\/entries\/[0-9a-f]{16}\/original$/,
        );
      }
    });
  });

  describe("k3s nodes with mirror credentials", function () {
    before(async function () {
      await declare("k3s", {
        nodes: [
          {
            ...sshNode("server-1", "k3s-1.lab", "k3s"),
            access: {
              kind: "ssh",
              user: "admin",
              port: 2222,
              privateKey: pulumi.secret(privateKey),
              skipHostKeyCheck: true,
            },
          },
        ],
        mirror: { ...mirror, auth: { username: "puller", password: pulumi.secret(password) } },
        upstreams,
      });
    });

    it("sends the script with the password only as a secret stdin, through sudo", function () {
      const server = child("k3s", "server-1");
      assert.ok(
        server.secretPaths.includes("stdin"),
        `secret paths: ${server.secretPaths.join(", ")}`,
      );
      assert.equal(
        server.inputs.stdin,
        expectedScript("server-1", "k3s", { username: "puller", password }),
      );
      assert.equal(server.inputs.create, "sudo -n sh -s apply");
      assert.equal((server.inputs.connection as { port: number }).port, 2222);
      assert.equal(
        (server.inputs.connection as { hostKey?: string }).hostKey,
        undefined,
        "skipHostKeyCheck: no host key is sent",
      );
      // The script's stdout stays out of the engine's log; progress and errors still show.
      assert.equal(server.inputs.logging, "stderr");
      assert.equal(child("k3s", "server-1").inputs.logging, "stderr");
    });

    it("never puts the password in a command line, a trigger or in clear text anywhere", function () {
      const server = child("k3s", "server-1");
      for (const key of ["create", "delete", "triggers", "connection"]) {
        assert.ok(!JSON.stringify(server.inputs[key]).includes(password));
      }
      // In the script it is only base64 inside the registries.yaml content.
      assert.ok(!String(server.inputs.stdin).includes(password));
    });
  });

  describe("containerd nodes with mirror credentials", function () {
    const header = `Basic ${Buffer.from(`puller:${password}`).toString("base64")}`;
    let component: NodeRegistryConfig;
    before(async function () {
      component = await declare("creds", {
        nodes: [
          sshNode("worker-1", "10.0.0.11", "containerd"),
          { name: "kind-worker", runtime: "containerd2", access: { kind: "docker-exec" } },
        ],
        mirror: { ...mirror, auth: { username: "puller", password: pulumi.secret(password) } },
        upstreams,
      });
    });

    it("sends each node a secret script whose hosts.toml files carry the Authorization header", function () {
      for (const [node, runtime] of [
        ["worker-1", "containerd"],
        ["kind-worker", "containerd2"],
      ] as const) {
        const resource = child("creds", node);
        assert.ok(resource.secretPaths.includes("stdin"), `${node}: ${resource.secretPaths}`);
        const script = String(resource.inputs.stdin);
        assert.equal(script, expectedScript(node, runtime, { username: "puller", password }));
        // The header travels base64-encoded inside the script, like every file's content.
        const files = planNodeFiles({
          runtime,
          mirror: { ...mirror, auth: { username: "puller", password } },
          upstreams,
        }).files;
        const withHeader = files.filter(
          (file) => file.kind === "file" && file.content.includes(header),
        );
        assert.deepEqual(
          withHeader.map((file) => file.path),
          [
            "/etc/containerd/certs.d/registry.lab_5443_/hosts.toml",
            "/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
            "/etc/containerd/certs.d/docker.io/hosts.toml",
          ],
        );
        assert.ok(!script.includes(password) && !script.includes(header));
        for (const key of ["create", "delete", "triggers"]) {
          assert.ok(!JSON.stringify(resource.inputs[key]).includes(password));
        }
      }
    });

    it("keeps the scripts output secret and reports no checksum of a file holding the password", async function () {
      assert.equal(await pulumi.isSecret(component.scripts), true);
      const reports = await valueOf(component.nodes);
      for (const report of reports) {
        for (const file of report.files.filter((f) => f.path.endsWith("hosts.toml"))) {
          assert.equal(file.sha256, undefined, `${report.name}: ${file.path}`);
        }
      }
    });
  });

  describe("a second configuration adds one node and removes another", function () {
    const keep = sshNode("worker-1", "10.0.0.11");
    let before1: RecordedResource[];
    let before2: RecordedResource[];
    before(async function () {
      await declare("first", {
        nodes: [keep, sshNode("worker-2", "10.0.0.12")],
        mirror,
        upstreams,
      });
      await declare("second", {
        nodes: [keep, sshNode("worker-3", "10.0.0.13")],
        mirror,
        upstreams,
      });
      before1 = children("first");
      before2 = children("second");
    });

    it("changes exactly those resources: the kept node's inputs are identical", function () {
      const byNode = (resources: RecordedResource[], component: string) =>
        new Map(resources.map((r) => [r.name.slice(component.length + 1), r]));
      const first = byNode(before1, "first");
      const second = byNode(before2, "second");
      const removed = [...first.keys()].filter((node) => !second.has(node));
      const added = [...second.keys()].filter((node) => !first.has(node));
      assert.deepEqual(removed, ["ssh-10.0.0.12"]);
      assert.deepEqual(added, ["ssh-10.0.0.13"]);
      const kept = [...first.keys()].filter((node) => second.has(node));
      assert.deepEqual(kept, ["ssh-10.0.0.11"]);
      const keptBefore = first.get("ssh-10.0.0.11")!;
      const keptAfter = second.get("ssh-10.0.0.11")!;
      assert.deepEqual(keptAfter.inputs, keptBefore.inputs);
      assert.deepEqual(keptAfter.secretPaths, keptBefore.secretPaths);
    });
  });

  describe("renaming a node entry (same host)", function () {
    let renamedBefore: RecordedResource[];
    let renamedAfter: RecordedResource[];
    before(async function () {
      await declare("rename-a", { nodes: [sshNode("worker-1", "10.0.0.11")], mirror, upstreams });
      await declare("rename-b", { nodes: [sshNode("cp-1", "10.0.0.11")], mirror, upstreams });
      renamedBefore = children("rename-a");
      renamedAfter = children("rename-b");
    });

    it("keeps the same resource (an update), so no delete restores the node's files afterwards", function () {
      assert.deepEqual(
        renamedBefore.map((r) => r.name),
        ["rename-a-ssh-10.0.0.11"],
      );
      assert.deepEqual(
        renamedAfter.map((r) => r.name),
        ["rename-b-ssh-10.0.0.11"],
      );
      // Only the script changes (it names the node): the command is updated in place.
      const changed = Object.keys(renamedAfter[0].inputs).filter(
        (key) =>
          JSON.stringify(renamedAfter[0].inputs[key]) !==
          JSON.stringify(renamedBefore[0].inputs[key]),
      );
      assert.deepEqual(changed, ["stdin"]);
    });
  });

  describe("a manual node", function () {
    let component: NodeRegistryConfig;
    let dir: string;
    before(async function () {
      dir = mkdtempSync(path.join(os.tmpdir(), "node-scripts-"));
      component = await declare("handoff", {
        nodes: [
          sshNode("worker-1", "10.0.0.11"),
          { name: "edge-7", runtime: "containerd", access: { kind: "manual" } },
        ],
        mirror,
        upstreams,
        manualScriptDir: dir,
      });
    });

    it("declares no command for it, only for the nodes Pulumi reaches", function () {
      assert.deepEqual(
        children("handoff").map((resource) => [resource.type, resource.name]),
        [[remoteType, "handoff-ssh-10.0.0.11"]],
      );
    });

    it("writes its exact script (mode 0600) and exports where it is", async function () {
      const written = await valueOf(component.manualScripts);
      const file = path.join(dir, "edge-7", "node-script.sh");
      assert.deepEqual(written, { "edge-7": file });
      assert.equal(readFileSync(file, "utf8"), expectedScript("edge-7", "containerd"));
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal((await valueOf(component.scripts))["edge-7"], readFileSync(file, "utf8"));
    });
  });

  describe("bad input fails before anything is created", function () {
    const cases: Array<[string, Partial<NodeRegistryConfigArgs>, RegExp]> = [
      [
        "unknown runtime flavour",
        { nodes: [{ ...sshNode("n1", "10.0.0.1"), runtime: "docker" as never }] },
        /NodeRegistryConfig: nodes\[0\]\.runtime: 'docker' is not a runtime flavour/,
      ],
      [
        "node listed twice",
        { nodes: [sshNode("n1", "10.0.0.1"), sshNode("n1", "10.0.0.2")] },
        /nodes\[1\]\.name: node 'n1' is listed twice/,
      ],
      [
        "bad address",
        { nodes: [sshNode("n1", "10.0.0.1:22")] },
        /nodes\[0\]\.address: '10\.0\.0\.1:22' is not an IP address or DNS name/,
      ],
      [
        "missing key",
        {
          nodes: [
            {
              name: "n1",
              address: "10.0.0.1",
              runtime: "containerd",
              access: { kind: "ssh" } as never,
            },
          ],
        },
        /nodes\[0\]\.access\.privateKey: an ssh node needs a private key/,
      ],
      [
        "credentials for a node that cannot carry them",
        {
          nodes: [sshNode("n1", "10.0.0.1", "crio")],
          mirror: { ...mirror, auth: { username: "puller", password: pulumi.secret(password) } },
        },
        /NodeRegistryConfig: mirror\.auth: crio nodes cannot be given the mirror's credentials/,
      ],
      [
        "ssh node without a host key",
        {
          nodes: [
            {
              name: "n1",
              address: "10.0.0.1",
              runtime: "containerd",
              access: { kind: "ssh", privateKey: "key" },
            },
          ],
        },
        /nodes\[0\]\.access\.hostKey: ssh node n1 \(10\.0\.0\.1\) needs its host key .*skipHostKeyCheck: true/,
      ],
      [
        "hosts flavour over plain http",
        { nodes: [sshNode("n1", "10.0.0.1", "hosts")], mirror: { endpoint: "10.0.0.5:5000" } },
        /mirror\.scheme: hosts spoofing .*over https on port 443 only/,
      ],
    ];
    for (const [label, patch, expected] of cases) {
      it(label, async function () {
        const name = `bad-${label.replace(/\W+/g, "-")}`;
        const count = recorded.length;
        assert.throws(
          () => new NodeRegistryConfig(name, { mirror, upstreams, nodes: [], ...patch }),
          expected,
        );
        await settle();
        assert.deepEqual(children(name), [], "no resource was created");
        assert.ok(
          recorded
            .slice(count)
            .every((resource) => !resource.name.startsWith(name) || !resource.custom),
        );
      });
    }
  });
});
