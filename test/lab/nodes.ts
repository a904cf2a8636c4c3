import { mkdirSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";
import { mirrorPathFor } from "../../core/images/mapping";
import { parseImageReference } from "../../core/images/reference";
import { docker } from "./engine";
import { run, type RunResult } from "./exec";
import { ensureLabNodeImage } from "./node-image";
import { labDir } from "./paths";
import { startLabRegistry, type LabRegistry } from "./registries";
import { labLabel, labLabelValue } from "./run-spec";
import { labUpstreams } from "./upstreams";

/** The Docker network nodes and their mirror share; nodes reach the mirror by container name. */
export const labNodeNetwork = "airgap-lab-nodes";

let nodeNetwork: Promise<string> | undefined;

/**
 * Creates the lab network if it is not there (labelled, so it is recognisably the lab's). Once
 * per run: Docker allows two networks of one name, so parallel callers share one creation.
 */
export function ensureLabNodeNetwork(): Promise<string> {
  nodeNetwork ??= (async () => {
    const existing = await docker.listNetworks({ filters: { name: [labNodeNetwork] } });
    if (!existing.some((network) => network.Name === labNodeNetwork)) {
      await docker.createNetwork({ Name: labNodeNetwork, Labels: { [labLabel]: labLabelValue } });
    }
    return labNodeNetwork;
  })();
  return nodeNetwork;
}

/** Removes the lab network (after its containers are gone). */
export async function removeLabNodeNetwork(): Promise<void> {
  nodeNetwork = undefined;
  const networks = await docker.listNetworks({ filters: { name: [labNodeNetwork] } });
  for (const network of networks.filter((candidate) => candidate.Name === labNodeNetwork)) {
    await docker
      .getNetwork(network.Id)
      .remove()
      .catch(() => undefined);
  }
}

export interface LabNode {
  /** Container name (= node name). */
  name: string;
  /** Address on the lab network (what SSH connects to). */
  ip: string;
  /** Runs a shell command inside the node (as root). */
  sh(
    script: string,
    options?: { input?: string | Buffer; allowFailure?: boolean },
  ): Promise<RunResult>;
  /**
   * containerd's socket as the host reaches it (the node's /run/containerd is bind-mounted):
   * where the lab makes CRI calls the way the kubelet does (test/lab/cri).
   */
  criSocket: string;
  /** sha256 of a file in the node, or "absent". */
  checksum(file: string): Promise<string>;
  remove(): Promise<void>;
}

/** Upstream registry names a node must never reach. */
export const upstreamHostnames = ["registry.k8s.io", "docker.io", "registry-1.docker.io"];

/**
 * Starts a node container with the flags lab-facts.md records (no --privileged, which fails
 * here), labelled for teardown, on the lab network; waits until sshd and containerd run.
 *
 * The upstream registries are unreachable (no internet), and by default the node also maps
 * their names to 127.0.0.1 (`--add-host`): a pull that is not redirected then fails at once
 * with "connection refused" instead of waiting on DNS, and can never leave the machine.
 * The hosts-spoofing test turns that off, since it writes those names itself.
 */
export async function startLabNode(
  name: string,
  options: { blockUpstreams?: boolean } = {},
): Promise<LabNode> {
  const blockUpstreams = options.blockUpstreams ?? true;
  const { image } = await ensureLabNodeImage();
  const network = await ensureLabNodeNetwork();
  // containerd's socket directory on the host, so the lab can call CRI as the kubelet does.
  const runDir = path.join(labDir, `run-${process.pid}`, "nodes", name, "run-containerd");
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  await run("docker", [
    "run",
    "-d",
    "--name",
    name,
    "--hostname",
    name,
    "--network",
    network,
    "--label",
    `${labLabel}=${labLabelValue}`,
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/var/lib/containerd:exec",
    "-v",
    `${runDir}:/run/containerd`,
    ...(blockUpstreams
      ? upstreamHostnames.flatMap((host) => ["--add-host", `${host}:127.0.0.1`])
      : []),
    image,
  ]);
  const sh: LabNode["sh"] = (script, options = {}) =>
    run("docker", ["exec", "-i", name, "sh", "-c", script], options);
  const inspect = await docker.getContainer(name).inspect();
  const ip = inspect.NetworkSettings.Networks[network]?.IPAddress;
  if (!ip) throw new Error(`node ${name} has no address on ${network}`);
  const node: LabNode = {
    name,
    ip,
    sh,
    criSocket: path.join(runDir, "containerd.sock"),
    async checksum(file) {
      const result = await sh(
        `if [ -e '${file}' ]; then sha256sum < '${file}' | cut -c1-64; else echo absent; fi`,
      );
      return result.stdout.trim();
    },
    remove: async () => {
      await docker
        .getContainer(name)
        .remove({ force: true })
        .catch(() => undefined);
    },
  };
  for (let attempt = 0; ; attempt++) {
    const ready = await sh("ctr version >/dev/null 2>&1 && pidof sshd >/dev/null", {
      allowFailure: true,
    });
    if (ready.code === 0) break;
    if (attempt > 100) {
      const logs = await sh("cat /var/log/containerd.log", { allowFailure: true });
      throw new Error(`node ${name}: containerd or sshd did not start:\n${logs.stdout}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // The tests prove the mirror is used because upstream is unreachable; make sure it is, and
  // that no test could ever send a pull to a real registry.
  // Bounded: where DNS queries time out rather than fail, that is unreachable too.
  const upstream = await sh(`timeout 5 getent hosts ${upstreamHostnames.join(" ")}`, {
    allowFailure: true,
  });
  const addresses = upstream.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(/\s+/)[0]);
  const blocked = blockUpstreams
    ? addresses.length === upstreamHostnames.length && addresses.every((a) => a === "127.0.0.1")
    : upstream.code !== 0;
  if (!blocked) {
    await node.remove();
    throw new Error(
      `node ${name} could reach upstream registries (${upstream.stdout.trim() || "resolved"}); the lab must be offline`,
    );
  }
  return node;
}

export interface LabSshKey {
  privateKeyFile: string;
  privateKey: string;
  publicKey: string;
}

/** A fresh ed25519 key pair for this test run. */
export async function labSshKey(name: string): Promise<LabSshKey> {
  const dir = path.join(labDir, `run-${process.pid}`, "ssh");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const privateKeyFile = path.join(dir, name);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", privateKeyFile]);
  return {
    privateKeyFile,
    privateKey: readFileSync(privateKeyFile, "utf8"),
    publicKey: readFileSync(`${privateKeyFile}.pub`, "utf8"),
  };
}

/** Lets `key` log in as root on the node. */
export async function authorizeSshKey(node: LabNode, key: LabSshKey): Promise<void> {
  await node.sh(
    "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys",
    { input: key.publicKey },
  );
}

/**
 * Runs a command the way @pulumi/command's remote.Command does: one SSH session running the
 * command line, stdin attached. A failure is reported under the resource's name, as Pulumi does.
 */
export async function runLikeRemoteCommand(
  resourceName: string,
  connection: { host: string; port?: number; user: string; privateKeyFile: string },
  commandLine: string,
  stdin: string,
): Promise<RunResult> {
  const result = await run(
    "ssh",
    [
      "-i",
      connection.privateKeyFile,
      "-p",
      String(connection.port ?? 22),
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      "-o",
      "ConnectTimeout=10",
      `${connection.user}@${connection.host}`,
      commandLine,
    ],
    { input: stdin, allowFailure: true },
  );
  if (result.code !== 0) {
    throw new Error(
      `command:remote:Command ${resourceName}: running ${JSON.stringify(commandLine)} exited ${result.code}:\n${result.stderr.trim()}${result.stdout.trim() ? `\n${result.stdout.trim()}` : ""}`,
    );
  }
  return result;
}

/**
 * Runs a command line the way local.Command does: `/bin/sh -c <line>` with stdin attached, in
 * the program's directory when given.
 */
export async function runLikeLocalCommand(
  resourceName: string,
  commandLine: string,
  stdin: string,
  programDir?: string,
): Promise<RunResult> {
  const result = await run("/bin/sh", ["-c", commandLine], {
    input: stdin,
    cwd: programDir,
    allowFailure: true,
  });
  if (result.code !== 0) {
    throw new Error(
      `command:local:Command ${resourceName}: running ${JSON.stringify(commandLine)} exited ${result.code}:\n${result.stderr.trim()}`,
    );
  }
  return result;
}

export interface NodeMirror {
  registry: LabRegistry;
  /** host:port as nodes on the lab network reach the mirror. */
  nodeEndpoint: string;
  /** Images copied in, by upstream name. */
  images: string[];
  /** Upstream name -> the mirror's own name for it (`<nodeEndpoint>/<mirror path>:<tag>`). */
  ownNames: Record<string, string>;
}

/**
 * A mirror on the lab network holding the lab upstreams' images at their mirror paths
 * (core/images/mapping: the upstream host dropped), copied from the OCI layout by skopeo.
 */
export async function startNodeMirror(
  name: string,
  options: { tls?: boolean; auth?: { username: string; password: string } } = {},
): Promise<NodeMirror> {
  const network = await ensureLabNodeNetwork();
  const upstreams = await labUpstreams();
  const registry = await startLabRegistry({
    name,
    tls: options.tls,
    auth: options.auth,
    networks: [network],
  });
  const nodeEndpoint = `${name}:5000`;
  const images = upstreams.images.map((image) => image.name);
  const ownNames: Record<string, string> = {};
  await Promise.all(
    images.map((image) => {
      const mirrorPath = mirrorPathFor(parseImageReference(image), { mirrorHost: nodeEndpoint });
      const tag = image.slice(image.lastIndexOf(":") + 1);
      ownNames[image] = `${nodeEndpoint}/${mirrorPath}:${tag}`;
      return run("skopeo", [
        "copy",
        "--all",
        "--preserve-digests",
        ...(registry.certDir
          ? [`--dest-cert-dir=${registry.certDir}`]
          : ["--dest-tls-verify=false"]),
        ...(registry.authFile ? [`--dest-authfile=${registry.authFile}`] : []),
        `oci:${upstreams.layoutDir}:${image}`,
        `docker://${registry.endpoint}/${mirrorPath}:${tag}`,
      ]);
    }),
  );
  return { registry, nodeEndpoint, images, ownNames };
}
