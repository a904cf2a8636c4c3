import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
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
const nginx = "docker.io/library/nginx:1.27-alpine";

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

/** The kubelet's path: a CRI PullImage over the node's containerd socket; returns the image id. */
async function assertCriPulls(node: LabNode, image: string): Promise<void> {
  const plugins = await node.sh("ctr plugins ls");
  assert.match(
    plugins.stdout,
    /io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/,
    "the CRI plugin is loaded",
  );
  const imageRef = await criPullImage(node.criSocket, image);
  assert.match(imageRef, /^sha256:[0-9a-f]{64}$/);
}

/** sha256 of every file under the directories, by path ("absent" for none). */
async function treeSums(node: LabNode, dirs: string[]): Promise<string> {
  const listed = await node.sh(
    `for d in ${dirs.join(" ")}; do if [ -e "$d" ]; then find "$d" -exec sh -c 'if [ -f "$1" ]; then printf "%s %s\\n" "$(sha256sum < "$1" | cut -c1-16)" "$1"; else printf "dir %s\\n" "$1"; fi' _ {} \\; ; else echo "absent $d"; fi; done | sort`,
  );
  return listed.stdout;
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
    let plannedFiles = 0;
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
      plannedFiles = settings.nodes[0].plan.files.length;
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
      // config.toml and every hosts.toml (the upstreams' and the mirror's own name).
      assert.equal(again.stdout.match(/unchanged/g)?.length, plannedFiles);
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

  describe("containerd configurations as found on real nodes", function () {
    let wild: LabNode;
    let script: string;
    const commands = nodeCommands({ kind: "docker-exec", container: "lab-node-wild" });
    const apply = () => runLikeLocalCommand("nodes-lab-node-wild", commands.create, script);
    const remove = () => runLikeLocalCommand("nodes-lab-node-wild", commands.delete, script);
    const watchedDirs = ["/etc/containerd", "/var/lib/airgap-conformance"];
    let defaultConfig: string;

    before(async function () {
      wild = await node("lab-node-wild");
      defaultConfig = (await wild.sh("cat /etc/containerd/config.toml")).stdout;
      script = scriptFor(wild.name, {
        runtime: "containerd",
        mirror: { endpoint: httpMirror.nodeEndpoint, scheme: "http" },
      });
    });

    async function writeConfig(files: Record<string, string>): Promise<void> {
      await wild.sh(`rm -rf ${hostsDir} /etc/containerd/conf.d && mkdir -p /etc/containerd/conf.d`);
      for (const [file, content] of Object.entries(files)) {
        await wild.sh(`cat > ${file}`, { input: content });
      }
      await wild.sh("/etc/init.d/containerd restart >/dev/null");
      await wild.sh("until ctr version >/dev/null 2>&1; do sleep 0.2; done");
    }

    it("refuses mirrors in an imports drop-in, naming the file and the key, and changes nothing", async function () {
      await writeConfig({
        "/etc/containerd/config.toml": `imports = ["/etc/containerd/conf.d/*.toml"]\n${defaultConfig}`,
        "/etc/containerd/conf.d/10-mirrors.toml": [
          "version = 2",
          '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]',
          '  endpoint = ["https://mirror.example:5000"]',
          "",
        ].join("\n"),
      });
      const before = await treeSums(wild, watchedDirs);
      await assert.rejects(
        apply(),
        /error: \/etc\/containerd\/conf\.d\/10-mirrors\.toml sets mirrors\."docker\.io" under plugins\."io\.containerd\.grpc\.v1\.cri"\.registry, which containerd refuses/,
      );
      assert.equal(await treeSums(wild, watchedDirs), before);
      const plugins = await wild.sh("ctr plugins ls");
      assert.match(plugins.stdout, /io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/);
    });

    it("adds config_path where only dotted keys define the registry table, and CRI pulls through the mirror", async function () {
      const dotted = [
        "version = 2",
        "",
        '[plugins."io.containerd.grpc.v1.cri"]',
        '  registry.configs."other.example".auth.username = "someone"',
        "",
      ].join("\n");
      await writeConfig({ "/etc/containerd/config.toml": dotted });
      const before = await treeSums(wild, watchedDirs);
      await apply();
      const config = (await wild.sh("cat /etc/containerd/config.toml")).stdout;
      assert.match(config, /^ {2}registry\.config_path = "\/etc\/containerd\/certs\.d"$/m);
      await assertCriPulls(wild, busybox);
      await remove();
      assert.equal(await treeSums(wild, watchedDirs), before);
    });

    it("accepts a config_path list that already holds the directory, changing nothing in config.toml", async function () {
      await writeConfig({
        "/etc/containerd/config.toml": [
          "version = 2",
          '[plugins."io.containerd.grpc.v1.cri".registry]',
          `  config_path = "/etc/docker/certs.d:${hostsDir}"`,
          "",
        ].join("\n"),
      });
      const configBefore = await wild.checksum("/etc/containerd/config.toml");
      const applied = await apply();
      assert.match(
        applied.stdout,
        /unchanged \/etc\/containerd\/config\.toml \(config_path .* holds/,
      );
      assert.equal(await wild.checksum("/etc/containerd/config.toml"), configBefore);
      await assertCriPulls(wild, nginx);
      await remove();
    });
  });

  describe("k3s registries.yaml the operator already has", function () {
    let rancher: LabNode;
    const file = "/etc/rancher/k3s/registries.yaml";
    const commands = nodeCommands({ kind: "docker-exec", container: "lab-node-rancher" });
    // Indented by four, with a flow sequence and comments: the shape hand-written files have.
    const operatorFile = [
      "# the operator's own mirrors",
      "mirrors:",
      "    quay.io:",
      "        endpoint:",
      '            - "https://quay-mirror.corp:5000"',
      '    "10.0.0.9:5000":',
      '        endpoint: ["http://10.0.0.9:5000"]',
      "configs:",
      '    "quay-mirror.corp:5000":',
      "        tls:",
      "            ca_file: /etc/ssl/corp.crt",
      "",
    ].join("\n");
    let script: string;

    before(async function () {
      rancher = await node("lab-node-rancher");
      script = scriptFor(rancher.name, {
        runtime: "k3s",
        mirror: { endpoint: httpMirror.nodeEndpoint, scheme: "http" },
      });
      await rancher.sh(`mkdir -p /etc/rancher/k3s && cat > ${file}`, { input: operatorFile });
    });

    it("keeps the operator's mirrors and configs, adds ours, and restores the file byte for byte", async function () {
      const original = await rancher.checksum(file);
      await runLikeLocalCommand("nodes-lab-node-rancher", commands.create, script);
      const merged = YAML.parse((await rancher.sh(`cat ${file}`)).stdout) as {
        mirrors: Record<string, { endpoint: string[] }>;
        configs: Record<string, unknown>;
      };
      const operator = YAML.parse(operatorFile) as typeof merged;
      assert.deepEqual(merged.configs, operator.configs);
      assert.deepEqual(merged.mirrors, {
        ...operator.mirrors,
        "registry.k8s.io": { endpoint: [`http://${httpMirror.nodeEndpoint}`] },
        "docker.io": { endpoint: [`http://${httpMirror.nodeEndpoint}`] },
        // The mirror's own name, which the run pod pulls.
        [httpMirror.nodeEndpoint]: { endpoint: [`http://${httpMirror.nodeEndpoint}`] },
      });
      const again = await runLikeLocalCommand("nodes-lab-node-rancher", commands.create, script);
      assert.match(again.stdout, /unchanged \/etc\/rancher\/k3s\/registries\.yaml/);
      await runLikeLocalCommand("nodes-lab-node-rancher", commands.delete, script);
      assert.equal(await rancher.checksum(file), original);
    });

    it("refuses a registry both files configure, naming the file and the key, and changes nothing", async function () {
      const conflicting = `${operatorFile.replace("quay.io:", "registry.k8s.io:")}`;
      await rancher.sh(`cat > ${file}`, { input: conflicting });
      const original = await rancher.checksum(file);
      await assert.rejects(
        runLikeLocalCommand("nodes-lab-node-rancher", commands.create, script),
        /error: cannot merge into \/etc\/rancher\/k3s\/registries\.yaml: mirrors\."registry\.k8s\.io" is set there already/,
      );
      assert.equal(await rancher.checksum(file), original);
      assert.equal(await rancher.checksum("/var/lib/airgap-conformance"), "absent");
    });

    it("stops when the merged file was edited by hand since the last apply, instead of losing the edit", async function () {
      await rancher.sh(`cat > ${file}`, { input: operatorFile });
      await runLikeLocalCommand("nodes-lab-node-rancher", commands.create, script);
      await rancher.sh(`printf '%s\\n' '# a hand edit' >> ${file}`);
      const edited = await rancher.checksum(file);
      await assert.rejects(
        runLikeLocalCommand("nodes-lab-node-rancher", commands.create, script),
        /error: \/etc\/rancher\/k3s\/registries\.yaml changed since the last apply/,
      );
      assert.equal(await rancher.checksum(file), edited);
      await runLikeLocalCommand("nodes-lab-node-rancher", commands.delete, script);
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

    it("refuses when another file has a [[registry]] for the same prefix, naming it, and changes nothing", async function () {
      // Sorted after ours, it would silently replace our entry for registry.k8s.io.
      const operatorDropIn = "/etc/containers/registries.conf.d/60-operator.conf";
      await podmanNode.sh(`cat > ${operatorDropIn}`, {
        input: [
          "# the operator's mirror",
          "[[registry]]",
          'prefix = "registry.k8s.io"',
          'location = "registry.k8s.io"',
          "[[registry.mirror]]",
          'location = "k8s-mirror.corp:5000"',
          "",
        ].join("\n"),
      });
      const before = await treeSums(podmanNode, ["/etc/containers", "/var/lib/airgap-conformance"]);
      try {
        await assert.rejects(
          runLikeLocalCommand("nodes-lab-node-podman", commands.create, script),
          /error: \/etc\/containers\/registries\.conf\.d\/60-operator\.conf has a \[\[registry\]\] for registry\.k8s\.io, which this configuration's \/etc\/containers\/registries\.conf\.d\/50-airgap-mirror\.conf sets too/,
        );
        assert.equal(
          await treeSums(podmanNode, ["/etc/containers", "/var/lib/airgap-conformance"]),
          before,
        );
      } finally {
        await podmanNode.sh(`rm ${operatorDropIn}`);
      }
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
    it("resolves upstream names to the mirror's IP, trusts its CA system-wide, restarts containerd, then restores everything", async function () {
      const hostsNode = await node("lab-node-hosts", { blockUpstreams: false });
      const watchedFiles = ["/etc/hosts", "/etc/ssl/certs/ca-certificates.crt"];
      const original = await Promise.all(watchedFiles.map((file) => hostsNode.checksum(file)));
      const mirrorIp = "192.0.2.10"; // nothing connects: the script writes, trusts and resolves
      // Self-signed for the spoofed names and the mirror's IP, so it is its own CA.
      const certificate = readFileSync(
        path.resolve(__dirname, "..", "fixtures", "spoofed-upstreams.crt"),
        "utf8",
      );
      const script = scriptFor(hostsNode.name, {
        runtime: "hosts",
        mirror: {
          endpoint: `${mirrorIp}:443`,
          scheme: "https",
          caCertificate: certificate,
          certificate,
        },
      });
      const commands = nodeCommands({ kind: "docker-exec", container: hostsNode.name });
      const pidBefore = await containerdPid(hostsNode);
      const applied = await runLikeLocalCommand("nodes-lab-node-hosts", commands.create, script);
      assert.match(applied.stdout, /updated the system CA store/);
      assert.match(applied.stdout, /restarted containerd/);
      assert.notEqual(await containerdPid(hostsNode), pidBefore, "containerd re-reads the roots");
      const resolved = await hostsNode.sh("getent hosts registry.k8s.io registry-1.docker.io");
      assert.deepEqual(
        resolved.stdout
          .trim()
          .split("\n")
          .map((line) => line.split(/\s+/)[0]),
        [mirrorIp, mirrorIp],
      );
      // The system store (what Go reads) now verifies a certificate this CA signed.
      const trusted = await hostsNode.sh(
        "cat > /tmp/leaf.crt && openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt /tmp/leaf.crt",
        { input: certificate },
      );
      assert.match(trusted.stdout, /\/tmp\/leaf\.crt: OK/);
      await runLikeLocalCommand("nodes-lab-node-hosts", commands.create, script);
      assert.equal(
        (await hostsNode.sh("grep -c 'BEGIN airgap-conformance' /etc/hosts")).stdout.trim(),
        "1",
        "a second apply does not add a second block",
      );
      await runLikeLocalCommand("nodes-lab-node-hosts", commands.delete, script);
      assert.deepEqual(
        await Promise.all(watchedFiles.map((file) => hostsNode.checksum(file))),
        original,
      );
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

    it("a write failing half-way rolls back everything the run changed, byte for byte, and says so", async function () {
      // docker.io's hosts.toml is the last file: config.toml and registry.k8s.io's are written first.
      await victim.sh(
        `rm -rf ${hostsDir} && mkdir -p ${hostsDir}/docker.io && mount -t tmpfs -o ro tmpfs ${hostsDir}/docker.io`,
      );
      const before = await treeSums(victim, ["/etc/containerd", "/var/lib/airgap-conformance"]);
      let failure: Error | undefined;
      try {
        await runLikeLocalCommand("nodes-lab-node-faults", commands.create, script);
      } catch (error) {
        failure = error as Error;
      } finally {
        await victim.sh(`umount ${hostsDir}/docker.io`);
      }
      assert.ok(failure, "the apply failed");
      assert.match(
        failure.message,
        /node lab-node-faults: error: cannot write \/etc\/containerd\/certs\.d\/docker\.io\/\.hosts\.toml\.airgap-new: .*Read-only file system/,
      );
      assert.match(
        failure.message,
        /removed \/etc\/containerd\/certs\.d\/registry\.k8s\.io\/hosts\.toml/,
      );
      assert.match(failure.message, /restored \/etc\/containerd\/config\.toml/);
      assert.match(failure.message, /every file is as it was before this run/);
      assert.equal(
        await treeSums(victim, ["/etc/containerd", "/var/lib/airgap-conformance"]),
        before,
      );
      assert.equal(await victim.checksum("/etc/containerd/config.toml"), originalConfig);
      const plugins = await victim.sh("ctr plugins ls");
      assert.match(plugins.stdout, /io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/);
    });

    it("verification failing after the restart rolls back and restarts containerd again", async function () {
      await victim.sh(`rm -rf ${hostsDir}`);
      const before = await treeSums(victim, ["/etc/containerd", "/var/lib/airgap-conformance"]);
      // A ctr that reports the CRI plugin as failed (what a config CRI refuses looks like).
      await victim.sh("cat > /usr/local/bin/ctr && chmod 755 /usr/local/bin/ctr", {
        input: `#!/bin/sh
if [ "$1" = plugins ]; then /usr/bin/ctr "$@" | sed -e '/[[:space:]]cri[[:space:]]/s/ok[[:space:]]*$/error/'; exit 0; fi
exec /usr/bin/ctr "$@"
`,
      });
      const pidBefore = await containerdPid(victim);
      let failure: Error | undefined;
      try {
        await runLikeLocalCommand("nodes-lab-node-faults", commands.create, script);
      } catch (error) {
        failure = error as Error;
      } finally {
        await victim.sh("rm /usr/local/bin/ctr");
      }
      assert.ok(failure, "the apply failed");
      assert.match(failure.message, /error: containerd's CRI plugin is not loaded/);
      assert.match(failure.message, /restored \/etc\/containerd\/config\.toml/);
      assert.match(failure.message, /restarted containerd/);
      assert.equal(
        await treeSums(victim, ["/etc/containerd", "/var/lib/airgap-conformance"]),
        before,
      );
      assert.notEqual(await containerdPid(victim), pidBefore);
      const dump = (await victim.sh("containerd config dump")).stdout;
      assert.match(dump, /config_path = ""/, "the running containerd has the original config");
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
