import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { backupPathFor, resolveNodeRegistrySettings } from "../../components/nodes/spec";
import {
  type NodePlanInput,
  defaultStateDir,
  nodeCommands,
  planNodeFiles,
  renderNodeScript,
} from "../../core/nodes";
import { criImageStatus, criPullImage, criRemoveImage } from "../lab/cri";
import { run } from "../lab/exec";
import { ensureLabNodeImage } from "../lab/node-image";
import {
  type LabNode,
  type LabSshKey,
  type NodeMirror,
  authorizeSshKey,
  labSshKey,
  removeLabNodeNetwork,
  runLikeLocalCommand,
  runLikeRemoteCommand,
  startLabNode,
  startNodeMirror,
} from "../lab/nodes";
import { labUpstreams } from "../lab/upstreams";

/**
 * The node scripts run for real: against containerd 1.6, podman and sshd in Debian node
 * containers, pulling from a real registry on the lab network while the upstream registries
 * are unreachable. The scripts are exactly what NodeRegistryConfig sends (resolved through the
 * component's own spec), delivered the way remote.Command and local.Command deliver them.
 */

const upstreams = [{ registry: "registry.k8s.io" }, { registry: "docker.io" }];
const hostsDir = "/etc/containerd/certs.d";
const busybox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
const pause = "registry.k8s.io/pause:3.10";

function scriptFor(
  node: string,
  input: Omit<NodePlanInput, "upstreams"> & { upstreams?: NodePlanInput["upstreams"] },
) {
  return renderNodeScript(planNodeFiles({ upstreams, ...input }), { nodeName: node });
}

type CriPull =
  { image: string; ok: true; digest: string } | { image: string; ok: false; error: string };

/**
 * A CRI PullImage over the node's containerd socket, the kubelet's call for a pod's image (no
 * pull secret: what an e2e test pod gets), after forgetting any earlier pull of that name.
 */
async function criPull(node: LabNode, image: string): Promise<CriPull> {
  await criRemoveImage(node.criSocket, image);
  try {
    await criPullImage(node.criSocket, image, undefined, 60_000);
  } catch (error) {
    return { image, ok: false, error: (error as Error).message };
  }
  const status = await criImageStatus(node.criSocket, image);
  const repository = image.slice(0, image.lastIndexOf(":"));
  const digest = status?.repoDigests
    .find((name) => name.startsWith(`${repository}@`))
    ?.slice(repository.length + 1);
  assert.ok(digest, `${image}: CRI image status names its digest (${status?.repoDigests})`);
  return { image, ok: true, digest };
}

/** Every name the run uses for the lab's images: the upstream names and the mirror's own. */
function namesOf(mirror: NodeMirror): Array<{ name: string; upstream: string }> {
  return mirror.images.flatMap((upstream) => [
    { name: upstream, upstream },
    { name: mirror.ownNames[upstream], upstream },
  ]);
}

/** CRI-pulls every name and checks each arrives by the upstream image's digest. */
async function assertCriPullsAll(
  node: LabNode,
  mirror: NodeMirror,
  digests: Record<string, string>,
): Promise<void> {
  const names = namesOf(mirror);
  const pulls: CriPull[] = [];
  for (const { name } of names) pulls.push(await criPull(node, name));
  assert.deepEqual(
    pulls.map((pull) => [pull.image, pull.ok ? pull.digest : pull.error]),
    names.map(({ name, upstream }) => [name, digests[upstream]]),
  );
}

/** CRI-pulls every name and checks each fails; returns the errors by name. */
async function assertCriPullsFail(
  node: LabNode,
  mirror: NodeMirror,
): Promise<Record<string, string>> {
  const errors: Record<string, string> = {};
  for (const { name } of namesOf(mirror)) {
    const pull = await criPull(node, name);
    assert.equal(pull.ok, false, `${name} must not pull on this node`);
    if (!pull.ok) errors[name] = pull.error;
  }
  return errors;
}

async function containerdPid(node: LabNode): Promise<string> {
  return (await node.sh("pidof containerd")).stdout.trim();
}

const mirrorUser = { username: "puller", password: "lab-mirror-password" };

describe("NodeRegistryConfig scripts on real nodes", function () {
  let httpMirror: NodeMirror;
  let authMirror: NodeMirror;
  let digests: Record<string, string>;
  const nodes: LabNode[] = [];

  async function node(name: string, options?: { blockUpstreams?: boolean }): Promise<LabNode> {
    const started = await startLabNode(name, options);
    nodes.push(started);
    return started;
  }

  before(async function () {
    // Cold: debootstrap + import (a few minutes, once per machine); warm: a cache hit.
    this.timeout(15 * 60 * 1000);
    const { buildSeconds } = await ensureLabNodeImage();
    if (buildSeconds > 0) console.log(`      (node image built in ${buildSeconds} s)`);
    [httpMirror, authMirror] = await Promise.all([
      startNodeMirror("lab-node-mirror"),
      startNodeMirror("lab-node-mirror-auth", { tls: true, auth: mirrorUser }),
    ]);
    digests = Object.fromEntries(
      (await labUpstreams()).images.map((image) => [image.name, image.digest]),
    );
  });

  after(async function () {
    await Promise.all(nodes.map((started) => started.remove()));
    await Promise.all([httpMirror, authMirror].map((mirror) => mirror?.registry.stop()));
    await removeLabNodeNetwork();
  });

  describe("containerd over SSH, plain http mirror", function () {
    let worker: LabNode;
    let key: LabSshKey;
    let script: string;
    let commands: { create: string; delete: string };
    const resourceName = "nodes-lab-node-ssh";
    const original: Record<string, string> = {};
    const existingHostsToml =
      '# the operator\'s own docker.io config\nserver = "https://registry-1.docker.io"\n';
    const ownHostsToml = `${hostsDir}/lab-node-mirror_5000_/hosts.toml`;
    const watched = [
      "/etc/containerd/config.toml",
      ownHostsToml,
      `${hostsDir}/docker.io/hosts.toml`,
      `${hostsDir}/registry.k8s.io/hosts.toml`,
    ];

    before(async function () {
      [worker, key] = await Promise.all([node("lab-node-ssh"), labSshKey("lab-node-ssh")]);
      await authorizeSshKey(worker, key);
      // The operator already has a hosts.toml for docker.io: it must be backed up, not lost.
      await worker.sh(`mkdir -p ${hostsDir}/docker.io && cat > ${hostsDir}/docker.io/hosts.toml`, {
        input: existingHostsToml,
      });
      for (const file of watched) original[file] = await worker.checksum(file);
      // Exactly what the component declares for an ssh node.
      const settings = resolveNodeRegistrySettings({
        nodes: [
          {
            name: worker.name,
            address: worker.ip,
            runtime: "containerd",
            access: { kind: "ssh", hasPrivateKey: true },
          },
        ],
        mirror: { endpoint: httpMirror.nodeEndpoint, scheme: "http" },
        upstreams,
      });
      commands = settings.nodes[0].commands;
      script = renderNodeScript(settings.nodes[0].plan, { nodeName: worker.name });
    });

    const apply = () =>
      runLikeRemoteCommand(
        resourceName,
        { host: worker.ip, user: "root", privateKeyFile: key.privateKeyFile },
        commands.create,
        script,
      );

    it("before it is configured, a CRI pull fails for upstream names and the mirror's own names", async function () {
      const errors = await assertCriPullsFail(worker, httpMirror);
      assert.match(errors[pause], /127\.0\.0\.1:443: connect: connection refused/);
      assert.match(
        errors[httpMirror.ownNames[pause]],
        /http: server gave HTTP response to HTTPS client/,
      );
    });

    it("apply over SSH writes the files, backs up the operator's file, restarts containerd once", async function () {
      const pidBefore = await containerdPid(worker);
      const applied = await apply();
      assert.match(
        applied.stdout,
        /wrote \/etc\/containerd\/certs\.d\/registry\.k8s\.io\/hosts\.toml/,
      );
      assert.match(
        applied.stdout,
        /backed up \/etc\/containerd\/certs\.d\/docker\.io\/hosts\.toml/,
      );
      assert.equal(applied.stdout.match(/restarted containerd/g)?.length, 1);
      assert.notEqual(await containerdPid(worker), pidBefore, "containerd was restarted");
      const backup = backupPathFor(defaultStateDir, `${hostsDir}/docker.io/hosts.toml`);
      assert.equal(await worker.checksum(backup), original[`${hostsDir}/docker.io/hosts.toml`]);
      const config = (await worker.sh("containerd config dump")).stdout;
      assert.match(config, /config_path = "\/etc\/containerd\/certs\.d"/);
    });

    it("then a CRI pull gets registry.k8s.io and docker.io names and the mirror's own names, by the right digests", async function () {
      assert.equal((await worker.checksum(ownHostsToml)) === "absent", false);
      await assertCriPullsAll(worker, httpMirror, digests);
    });

    it("apply again changes nothing and restarts nothing", async function () {
      const pidBefore = await containerdPid(worker);
      const sums = await Promise.all(watched.map((file) => worker.checksum(file)));
      const again = await apply();
      assert.doesNotMatch(again.stdout, /wrote|restarted|backed up/);
      assert.equal(again.stdout.match(/unchanged/g)?.length, 4);
      assert.equal(await containerdPid(worker), pidBefore);
      assert.deepEqual(await Promise.all(watched.map((file) => worker.checksum(file))), sums);
    });

    it("delete restores every file byte for byte and removes what it added", async function () {
      const deleted = await runLikeRemoteCommand(
        resourceName,
        { host: worker.ip, user: "root", privateKeyFile: key.privateKeyFile },
        commands.delete,
        script,
      );
      assert.match(deleted.stdout, /restarted containerd/);
      for (const file of watched) assert.equal(await worker.checksum(file), original[file], file);
      const leftovers = await worker.sh(
        `ls -d ${hostsDir}/registry.k8s.io ${hostsDir}/lab-node-mirror_5000_ /var/lib/airgap-conformance 2>/dev/null || true`,
      );
      assert.equal(leftovers.stdout, "");
      const config = (await worker.sh("containerd config dump")).stdout;
      assert.doesNotMatch(config, /config_path = "\/etc\/containerd\/certs\.d"/);
      await assertCriPullsFail(worker, httpMirror);
    });

    it("over SSH with a TLS + htpasswd mirror and no fallback: CA and credentials let a CRI pull get every name", async function () {
      const tlsScript = scriptFor(worker.name, {
        runtime: "containerd",
        mirror: {
          endpoint: authMirror.nodeEndpoint,
          scheme: "https",
          caCertificate: readFileSync(authMirror.registry.caFile!, "utf8"),
          auth: mirrorUser,
        },
        options: { forbidFallback: true },
      });
      const connection = { host: worker.ip, user: "root", privateKeyFile: key.privateKeyFile };
      await assertCriPullsFail(worker, authMirror);
      await runLikeRemoteCommand(resourceName, connection, commands.create, tlsScript);
      try {
        await assertCriPullsAll(worker, authMirror, digests);
      } finally {
        await runLikeRemoteCommand(resourceName, connection, commands.delete, tlsScript);
      }
      for (const file of watched) assert.equal(await worker.checksum(file), original[file], file);
    });

    it("refused SSH authentication fails naming the node's resource", async function () {
      const stranger = await labSshKey("lab-node-ssh-stranger");
      await assert.rejects(
        runLikeRemoteCommand(
          resourceName,
          { host: worker.ip, user: "root", privateKeyFile: stranger.privateKeyFile },
          commands.create,
          script,
        ),
        /nodes-lab-node-ssh: .*\n.*Permission denied \(publickey/,
      );
    });
  });

  describe("containerd by docker exec, TLS + htpasswd mirror, kubeadm-style default config", function () {
    let kindNode: LabNode;
    let script: string;
    let commands: { create: string; delete: string };
    let defaultConfigSum: string;
    const ownHostsToml = `${hostsDir}/lab-node-mirror-auth_5000_/hosts.toml`;

    before(async function () {
      kindNode = await node("lab-node-kind");
      // kubeadm guides generate the full default config: it has `config_path = ""`.
      await kindNode.sh("containerd config default > /etc/containerd/config.toml");
      defaultConfigSum = await kindNode.checksum("/etc/containerd/config.toml");
      commands = nodeCommands({ kind: "docker-exec", container: kindNode.name });
      script = scriptFor(kindNode.name, {
        runtime: "containerd",
        mirror: {
          endpoint: authMirror.nodeEndpoint,
          scheme: "https",
          caCertificate: readFileSync(authMirror.registry.caFile!, "utf8"),
          auth: mirrorUser,
        },
      });
    });

    it("before it is configured, a CRI pull fails for every name (the mirror's own name on x509)", async function () {
      const errors = await assertCriPullsFail(kindNode, authMirror);
      assert.match(
        errors[authMirror.ownNames[busybox]],
        /x509: certificate signed by unknown authority/,
      );
    });

    it("fills in the empty config_path; a CRI pull gets every name over verified TLS with the credentials", async function () {
      const applied = await runLikeLocalCommand("nodes-lab-node-kind", commands.create, script);
      assert.match(applied.stdout, /wrote \/etc\/airgap-conformance\/mirror-ca\.crt/);
      assert.match(applied.stdout, /restarted containerd/);
      const config = await kindNode.sh("grep -n 'config_path' /etc/containerd/config.toml");
      assert.match(config.stdout, /config_path = "\/etc\/containerd\/certs\.d"/);
      assert.equal(config.stdout.trim().split("\n").length, 1);
      // The credentials sit only in root-only hosts.toml files.
      const modes = await kindNode.sh(`stat -c '%a %n' ${hostsDir}/*/hosts.toml`);
      assert.deepEqual(modes.stdout.trim().split("\n").sort(), [
        `600 ${hostsDir}/docker.io/hosts.toml`,
        `600 ${ownHostsToml}`,
        `600 ${hostsDir}/registry.k8s.io/hosts.toml`,
      ]);
      assert.ok(!applied.stdout.includes(mirrorUser.password));
      await assertCriPullsAll(kindNode, authMirror, digests);
    });

    it("really verifies the mirror: with another CA in its place the same pull fails", async function () {
      const otherCa = readFileSync(path.resolve(__dirname, "..", "fixtures", "registry.crt"));
      await kindNode.sh("cp /etc/airgap-conformance/mirror-ca.crt /tmp/ca.crt");
      await kindNode.sh("cat > /etc/airgap-conformance/mirror-ca.crt", { input: otherCa });
      const pulled = await criPull(kindNode, authMirror.ownNames[busybox]);
      await kindNode.sh("cp /tmp/ca.crt /etc/airgap-conformance/mirror-ca.crt");
      assert.equal(pulled.ok, false);
      assert.match(pulled.ok ? "" : pulled.error, /x509: certificate signed by unknown authority/);
    });

    it("really authenticates: without the Authorization header the same pull is refused", async function () {
      await kindNode.sh(`cp -p ${ownHostsToml} /tmp/hosts.toml`);
      await kindNode.sh(`sed -i '/Authorization = /d' ${ownHostsToml}`);
      const pulled = await criPull(kindNode, authMirror.ownNames[busybox]);
      await kindNode.sh(`cp -p /tmp/hosts.toml ${ownHostsToml}`);
      assert.equal(pulled.ok, false);
      assert.match(pulled.ok ? "" : pulled.error, /401 Unauthorized/);
      assert.equal((await criPull(kindNode, authMirror.ownNames[busybox])).ok, true);
    });

    it("delete restores the default config byte for byte", async function () {
      await runLikeLocalCommand("nodes-lab-node-kind", commands.delete, script);
      assert.equal(await kindNode.checksum("/etc/containerd/config.toml"), defaultConfigSum);
      assert.equal(await kindNode.checksum("/etc/airgap-conformance/mirror-ca.crt"), "absent");
      assert.equal(await kindNode.checksum(ownHostsToml), "absent");
    });
  });

  describe("podman with the registries.conf.d drop-in", function () {
    let podmanNode: LabNode;
    let script: string;
    const commands = nodeCommands({ kind: "docker-exec", container: "lab-node-podman" });
    const podmanPull = (image: string) =>
      podmanNode.sh(`podman pull --quiet ${image} 2>&1`, { allowFailure: true });

    before(async function () {
      podmanNode = await node("lab-node-podman");
      script = scriptFor(podmanNode.name, {
        runtime: "podman",
        mirror: { endpoint: httpMirror.nodeEndpoint, scheme: "http" },
      });
    });

    it("fails a tag pull of upstream names and of the mirror's own names without the drop-in", async function () {
      for (const { name } of namesOf(httpMirror)) {
        const pulled = await podmanPull(name);
        assert.notEqual(pulled.code, 0, `${name} must not pull: ${pulled.stdout}`);
      }
      const own = await podmanPull(httpMirror.ownNames[busybox]);
      assert.match(own.stdout, /http: server gave HTTP response to HTTPS client/);
    });

    it("pulls upstream tags through the mirror (pull-from-mirror = all) and the mirror's own names with it, and removes it on delete", async function () {
      await runLikeLocalCommand("nodes-lab-node-podman", commands.create, script);
      for (const { name, upstream } of namesOf(httpMirror)) {
        await podmanNode.sh(`podman rmi --force ${name} >/dev/null 2>&1 || true`);
        const pulled = await podmanPull(name);
        assert.equal(pulled.code, 0, `${name}: ${pulled.stdout}`);
        const digest = await podmanNode.sh(`podman image inspect --format '{{.Digest}}' ${name}`);
        assert.equal(digest.stdout.trim(), digests[upstream], name);
      }
      await runLikeLocalCommand("nodes-lab-node-podman", commands.delete, script);
      assert.equal(
        await podmanNode.checksum("/etc/containers/registries.conf.d/50-airgap-mirror.conf"),
        "absent",
      );
    });
  });

  describe("hosts spoofing on a bind-mounted /etc/hosts", function () {
    it("resolves upstream names to the mirror's IP, then restores /etc/hosts exactly", async function () {
      const hostsNode = await node("lab-node-hosts", { blockUpstreams: false });
      const original = await hostsNode.checksum("/etc/hosts");
      const mirrorIp = "192.0.2.10"; // nothing connects: the script only writes and resolves
      const script = scriptFor(hostsNode.name, {
        runtime: "hosts",
        mirror: { endpoint: `${mirrorIp}:80`, scheme: "http" },
      });
      const commands = nodeCommands({ kind: "docker-exec", container: hostsNode.name });
      await runLikeLocalCommand("nodes-lab-node-hosts", commands.create, script);
      const resolved = await hostsNode.sh("getent hosts registry.k8s.io registry-1.docker.io");
      assert.deepEqual(
        resolved.stdout
          .trim()
          .split("\n")
          .map((line) => line.split(/\s+/)[0]),
        [mirrorIp, mirrorIp],
      );
      await runLikeLocalCommand("nodes-lab-node-hosts", commands.create, script);
      assert.equal(
        (await hostsNode.sh("grep -c 'BEGIN airgap-conformance' /etc/hosts")).stdout.trim(),
        "1",
        "a second apply does not add a second block",
      );
      await runLikeLocalCommand("nodes-lab-node-hosts", commands.delete, script);
      assert.equal(await hostsNode.checksum("/etc/hosts"), original);
    });
  });

  describe("failures leave the node consistent", function () {
    let victim: LabNode;
    const target = `${hostsDir}/registry.k8s.io/hosts.toml`;
    const commands = nodeCommands({ kind: "docker-exec", container: "lab-node-faults" });
    let script: string;
    let originalConfig: string;

    before(async function () {
      victim = await node("lab-node-faults");
      originalConfig = await victim.checksum("/etc/containerd/config.toml");
      script = scriptFor(victim.name, {
        runtime: "containerd",
        mirror: { endpoint: httpMirror.nodeEndpoint, scheme: "http" },
      });
    });

    it("a run killed between the temp write and the rename leaves the target untouched", async function () {
      const original = "# hand-written before the run\n";
      await victim.sh(
        `mkdir -p ${hostsDir}/registry.k8s.io && printf '%s' '${original}' > ${target}`,
      );
      const originalSum = await victim.checksum(target);
      // An `mv` that SIGKILLs the script when it is about to rename the temp file onto target.
      await victim.sh("cat > /usr/local/bin/mv && chmod 755 /usr/local/bin/mv", {
        input: `#!/bin/sh
case "$*" in
  *" ${target}")
    for cmdline in /proc/[0-9]*/cmdline; do
      case "$(tr '\\0' ' ' < "$cmdline" 2>/dev/null)" in
        "sh -s apply "*) kill -9 "$(basename "$(dirname "$cmdline")")" ;;
      esac
    done
    exit 1 ;;
esac
exec /bin/mv "$@"
`,
      });
      const killed = await run("docker", ["exec", "-i", victim.name, "sh", "-s", "apply"], {
        input: script,
        allowFailure: true,
      });
      await victim.sh("rm /usr/local/bin/mv");
      assert.equal(killed.code, 137, `killed by SIGKILL: ${killed.stdout}${killed.stderr}`);
      assert.equal(await victim.checksum(target), originalSum, "the target is the old file");
      const staged = await victim.sh(`cat ${hostsDir}/registry.k8s.io/.hosts.toml.airgap-new`);
      assert.match(
        staged.stdout,
        /\[host\."http:\/\/lab-node-mirror:5000"\]/,
        "the new file was complete, only not renamed",
      );

      // The next run finishes the job; destroy still finds the original backed up.
      await runLikeLocalCommand("nodes-lab-node-faults", commands.create, script);
      assert.match((await victim.sh(`cat ${target}`)).stdout, /lab-node-mirror:5000/);
      await runLikeLocalCommand("nodes-lab-node-faults", commands.delete, script);
      assert.equal(await victim.checksum(target), originalSum);
    });

    it("a read-only target directory fails clearly, naming the node and the path", async function () {
      await victim.sh(`mkdir -p ${hostsDir} && mount -t tmpfs -o ro tmpfs ${hostsDir}`);
      try {
        await assert.rejects(
          runLikeLocalCommand("nodes-lab-node-faults", commands.create, script),
          /node lab-node-faults: error: cannot create directory \/etc\/containerd\/certs\.d\/lab-node-mirror_5000_: .*Read-only file system/,
        );
      } finally {
        await victim.sh(`umount ${hostsDir}`);
      }
      // What the failed run had changed (config.toml, before it stopped) is put back.
      await runLikeLocalCommand("nodes-lab-node-faults", commands.delete, script);
      assert.equal(await victim.checksum("/etc/containerd/config.toml"), originalConfig);
      assert.equal(await victim.checksum(defaultStateDir), "absent");
    });

    it("a config.toml pointing config_path elsewhere stops before any file changes", async function () {
      const targetBefore = await victim.checksum(target);
      await victim.sh(
        `printf 'version = 2\\n[plugins."io.containerd.grpc.v1.cri".registry]\\n  config_path = "/etc/docker/certs.d"\\n' > /etc/containerd/config.toml`,
      );
      await assert.rejects(
        runLikeLocalCommand("nodes-lab-node-faults", commands.create, script),
        /error: \/etc\/containerd\/config\.toml sets config_path to \/etc\/docker\/certs\.d/,
      );
      assert.equal(await victim.checksum(target), targetBefore);
      assert.equal(await victim.checksum(`${hostsDir}/docker.io/hosts.toml`), "absent");
    });
  });
});
