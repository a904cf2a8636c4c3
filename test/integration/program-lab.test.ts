import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { imageSetForStack } from "../../infra/images";
import { loadStackConfig } from "../../infra/config";
import { readStackFile } from "../../infra/stack-file";
import { e2eRegistryOf } from "../../core/images/e2e-registries";
import { parseImageReference, repositoryName } from "../../core/images/reference";
import type { NodeReport } from "../../components/nodes";
import { startFakeApiServer, type FakeApiServer } from "../fixtures/conformance/fake-apiserver";
import { criPullImage } from "../lab/cri";
import { docker } from "../lab/engine";
import { inBatches, startLabImageSource, type LabImageSource } from "../lab/image-source";
import { credentialsFor, startLabKubelet } from "../lab/kubelet";
import { ensureLabNodeImage } from "../lab/node-image";
import {
  authorizeSshKey,
  labNodeNetwork,
  labSshKey,
  startLabNode,
  type LabNode,
} from "../lab/nodes";
import { labDir } from "../lab/paths";
import { LabEngine, type RegisteredResource } from "../lab/program-engine";
import { freePort, labCertificateAuthority } from "../lab/registries";
import { labRegistryImage } from "../lab/registry-image";
import { labLabelValue } from "../lab/run-spec";
import { issueServerCertificate } from "../lab/tls";

/**
 * The test of the composition: the real program entry (infra/index.ts, what `pulumi up` runs)
 * evaluated with a lab stack file under Pulumi mocks whose newResource performs every create
 * for real in the lab (test/lab/program-engine.ts), then destroyed in reverse. Between up and
 * destroy, with the upstream registries unreachable from the nodes, every image the run needs
 * is pulled on each containerd node the kubelet's way (CRI PullImage) and with podman on the
 * podman node. Runs twice: a plain-http mirror, and TLS + htpasswd.
 */

const project = "airgap-conformance";
const key = (name: string) => `${project}:${name}`;
const root = path.resolve(__dirname, "..", "..");
const fixtures = path.join(root, "test", "fixtures", "conformance");
const registryName = "lab-program-mirror";
const runLabelKey = "airgap-conformance.lab.program-run";
/** What the node configuration may touch, snapshotted before up and compared after destroy. */
const watchedTrees = ["/etc", "/var/lib/airgap-conformance"];
/** Files a runtime writes by being used (podman's network locks on its first pull), not config. */
const runtimeStateFiles = ["/etc/cni/net.d/cni.lock", "/etc/containers/networks/netavark.lock"];

interface PullResult {
  node: string;
  image: string;
  error?: string;
}

/** sha256 of every regular file and symlink target under the watched trees, by path. */
async function snapshot(node: LabNode): Promise<Map<string, string>> {
  const result = await node.sh(
    `for tree in ${watchedTrees.join(" ")}; do [ -e "$tree" ] && find "$tree" -xdev \\( -type f -o -type l \\) -print; done | sort | while IFS= read -r f; do if [ -L "$f" ]; then echo "link:$(readlink "$f") $f"; else echo "$(sha256sum < "$f" | cut -c1-64) $f"; fi; done`,
  );
  const files = new Map<string, string>();
  for (const line of result.stdout.split("\n").filter(Boolean)) {
    const space = line.indexOf(" ");
    files.set(line.slice(space + 1), line.slice(0, space));
  }
  return files;
}

function valueOf<T>(output: pulumi.Output<T> | undefined): Promise<T> {
  if (!output) return Promise.reject(new Error("the program has no such output"));
  return new Promise((resolve) => output.apply((value) => resolve(value)));
}

/** The image as the e2e framework names it once KUBE_TEST_REPO_LIST is applied (manifest.go). */
function rewrittenByRepoList(image: string, repoList: Record<string, string>): string | undefined {
  const reference = parseImageReference(image);
  const registry = e2eRegistryOf(reference);
  if (!registry || repoList[registry.key] === undefined) return undefined;
  const rest = repositoryName(reference).slice(registry.defaultValue.length);
  return `${repoList[registry.key]}${rest}${reference.tag ? `:${reference.tag}` : ""}${reference.digest ? `@${reference.digest}` : ""}`;
}

function only(registered: RegisteredResource[], type: string): RegisteredResource {
  const matches = registered.filter((resource) => resource.type === type);
  assert.equal(matches.length, 1, `one ${type} registered`);
  return matches[0];
}

describe("the program in the lab (infra/index.ts, creates and deletes for real)", function () {
  this.timeout(30 * 60 * 1000);
  let source: LabImageSource;
  const summaries: string[] = [];

  before(async function () {
    await ensureLabNodeImage();
    source = await startLabImageSource("lab-program-source", "registry.k8s.io");
  });

  after(async function () {
    await source?.registry.stop();
    if (summaries.length > 0) console.log(summaries.map((line) => `      ${line}`).join("\n"));
  });

  for (const mode of ["plain-http", "tls-htpasswd"] as const) {
    it(`converges a ${mode} mirror: every reference the run uses pulls on every node, and destroy restores all`, async function () {
      const runName = `program-${mode}`;
      const workDir = path.join(labDir, `run-${process.pid}`, runName);
      mkdirSync(workDir, { recursive: true });
      const runLabel = { key: runLabelKey, value: `${labLabelValue}-${mode}` };
      const secure = mode === "tls-htpasswd";

      // The nodes: containerd reached with docker exec, containerd over SSH, podman.
      const nodes: LabNode[] = [];
      const sshKey = await labSshKey(`program-lab-${mode}`);
      let api: FakeApiServer | undefined;
      try {
        // A podman node cannot be given the mirror's credentials, and the program refuses one
        // with an htpasswd mirror: it joins the plain-http run only.
        const [execNode, sshNode, podmanNode] = await Promise.all([
          startLabNode("lab-program-exec"),
          startLabNode("lab-program-ssh"),
          secure ? undefined : startLabNode("lab-program-podman"),
        ]);
        nodes.push(execNode, sshNode, ...(podmanNode ? [podmanNode] : []));
        await authorizeSshKey(sshNode, sshKey);
        // The SSH node's host key, as `ssh-keyscan -t ed25519` prints it (nodesSshHostKeys).
        const hostKey = (
          await sshNode.sh("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")
        ).stdout.trim();
        const containerdNodes = [execNode, sshNode];

        const kubelet = startLabKubelet(execNode, () => api!);
        const ranFixtures = {
          "/tmp/results/e2e.log": readFileSync(path.join(fixtures, "e2e-passed.log"), "utf8"),
          "/tmp/results/junit_01.xml": readFileSync(
            path.join(fixtures, "junit-passed.xml"),
            "utf8",
          ),
        };
        api = await startFakeApiServer({
          dir: workDir,
          serverVersion: "v1.31.4",
          onApply: (object) => kubelet.onApply(object),
          // The results exist once the pod's containers ran (the kubelet pulled its images).
          files: () =>
            kubelet.pulls.length > 0 && kubelet.pulls.every((pull) => !pull.error)
              ? ranFixtures
              : {},
        });

        // The lab stack file, read back through the real config code.
        const hostPort = await freePort();
        const secrets: Record<string, string> = {
          [key("nodesSshPrivateKey")]: sshKey.privateKey,
        };
        const stack: Record<string, unknown> = {
          [key("kubernetesVersion")]: "1.31.4",
          [key("registryImage")]: labRegistryImage,
          [key("registryContainerName")]: registryName,
          [key("registryHostPort")]: hostPort,
          [key("registryBindAddress")]: "127.0.0.1",
          [key("registryNetworks")]: [labNodeNetwork],
          [key("registryRestartPolicy")]: "no",
          [key("imagesSourceOverrides")]: [`registry.k8s.io=http://${source.registry.endpoint}`],
          [key("kubeconfig")]: api.kubeconfig,
          [key("kubeContext")]: "fake",
          [key("conformanceResultsDirectory")]: path.join(workDir, "results"),
          [key("nodes")]: [
            `docker://${execNode.name}?runtime=containerd`,
            `ssh://root@${sshNode.ip}?runtime=containerd&name=${sshNode.name}`,
            ...(podmanNode ? [`docker://${podmanNode.name}?runtime=podman`] : []),
          ],
          [key("nodesSshHostKeys")]: [`${sshNode.ip}=${hostKey}`],
          [key("nodesSshPrivateKey")]: { secure: "v1:lab-key-supplied-by-the-test" },
        };
        if (secure) {
          const ca = await labCertificateAuthority();
          const certificate = await issueServerCertificate(ca, `${registryName}-${mode}`, {
            dns: [registryName, "localhost"],
            ips: ["127.0.0.1"],
          });
          Object.assign(stack, {
            [key("registryTlsCertificateFile")]: certificate.certificateFile,
            [key("registryTlsKeyFile")]: certificate.keyFile,
            [key("mirrorCaFile")]: ca.caFile,
            [key("registryUsername")]: "mirror",
            [key("registryPassword")]: { secure: "v1:lab-password-supplied-by-the-test" },
          });
          secrets[key("registryPassword")] = `lab-${process.pid}-mirror-pw`;
        }
        const stackFile = path.join(workDir, `Pulumi.lab-${mode}.yaml`);
        writeFileSync(stackFile, stringifyYaml({ config: stack }));
        const { config, secureKeys } = readStackFile(stackFile);
        assert.deepEqual(secureKeys.sort(), Object.keys(secrets).sort());

        // Up: the real entry under mocks that create for real.
        const engine = new LabEngine({ runLabel, workDir });
        pulumi.runtime.setMocks(engine.mocks(), project, `lab-${mode}`, false);
        pulumi.runtime.setAllConfig({ ...config, ...secrets }, Object.keys(secrets));
        const imageSet = imageSetForStack(loadStackConfig(), project);
        const upstreamNames = imageSet.images.map((image) => image.canonical);
        await source.seed(upstreamNames);

        const before = new Map(
          await Promise.all(nodes.map(async (node) => [node.name, await snapshot(node)] as const)),
        );
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const program = require("../../infra/index") as () => Promise<Record<string, unknown>>;
        const outputs = await program();
        const nodeReports = valueOf(outputs.nodeFiles as pulumi.Output<NodeReport[]>);
        await engine.settle();
        await kubelet.idle();
        const created = engine.created.length;
        const upFailures = [...engine.failures];

        // What the program registered: the run pod, its pull secret and the repo list.
        const pod = only(engine.registered, "kubernetes:core/v1:Pod").inputs as {
          spec: { containers: Array<{ image: string }>; initContainers?: Array<{ image: string }> };
        };
        const podImages = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map(
          (container) => container.image,
        );
        const secret = engine.registered.find(
          (resource) => resource.type === "kubernetes:core/v1:Secret",
        )?.inputs as { stringData?: Record<string, string> } | undefined;
        const pullSecret = secret?.stringData?.[".dockerconfigjson"];
        const configMap = only(engine.registered, "kubernetes:core/v1:ConfigMap").inputs as {
          data: Record<string, string>;
        };
        const repoList = parseYaml(configMap.data["repo-list.yaml"]) as Record<string, string>;
        const rewritten = upstreamNames
          .map((image) => rewrittenByRepoList(image, repoList))
          .filter((image): image is string => image !== undefined);
        const wanted = [...new Set([...podImages, ...rewritten, ...upstreamNames])];

        // Between up and destroy: the kubelet's pulls on every containerd node, podman's on podman.
        const criPulls: PullResult[] = (
          await Promise.all(
            containerdNodes.map((node) =>
              inBatches(
                4,
                wanted.map((image) => async (): Promise<PullResult> => {
                  // Only the run pod's own images come with its pull secret (the kubelet's keyring).
                  const auth =
                    podImages.includes(image) && pullSecret
                      ? credentialsFor(image, pullSecret)
                      : undefined;
                  try {
                    await criPullImage(node.criSocket, image, auth, 60_000);
                    return { node: node.name, image };
                  } catch (error) {
                    return { node: node.name, image, error: (error as Error).message };
                  }
                }),
              ),
            ),
          )
        ).flat();
        const podmanPulls: PullResult[] = [];
        for (const image of podmanNode ? wanted : []) {
          const pulled = await podmanNode!.sh(`podman pull --quiet ${image} 2>&1`, {
            allowFailure: true,
          });
          podmanPulls.push({
            node: podmanNode!.name,
            image,
            ...(pulled.code === 0 ? {} : { error: pulled.stdout.trim().split("\n").pop() }),
          });
        }
        // Reported once the node commands ran (even when a later create failed).
        // What the containerd nodes hold while pulls fail: the evidence for the report.
        const nodeEvidence = criPulls.some((pull) => pull.error)
          ? await Promise.all(
              containerdNodes.map(async (node) => {
                const shown = await node.sh(
                  'grep -n config_path /etc/containerd/config.toml; for f in /etc/containerd/certs.d/*/hosts.toml; do echo "== $f"; sed \'s/Basic .*/Basic <redacted>"/\' "$f"; done',
                  { allowFailure: true },
                );
                return `${node.name}:\n${shown.stdout}${shown.stderr}`;
              }),
            )
          : [];
        const reports = await Promise.race([
          nodeReports,
          new Promise<NodeReport[]>((resolve) => setTimeout(() => resolve([]), 5000)),
        ]);
        const applied = new Map(
          await Promise.all(nodes.map(async (node) => [node.name, await snapshot(node)] as const)),
        );

        // Destroy, in reverse.
        await engine.destroy();
        const after = new Map(
          await Promise.all(nodes.map(async (node) => [node.name, await snapshot(node)] as const)),
        );

        // Every file the node configuration wrote, byte-identical to before (or absent again).
        const touched = reports.flatMap((report) =>
          report.files.map((file) => ({ node: report.name, file: file.path })),
        );
        const restored = touched.filter(
          ({ node, file }) => before.get(node)?.get(file) === after.get(node)?.get(file),
        );
        const changedAnywhere = nodes.flatMap((node) => {
          const was = before.get(node.name)!;
          const is = after.get(node.name)!;
          return [...new Set([...was.keys(), ...is.keys()])]
            .filter((file) => was.get(file) !== is.get(file) && !runtimeStateFiles.includes(file))
            .map((file) => `${node.name}:${file}`);
        });
        const registryLeft = await docker
          .getContainer(registryName)
          .inspect()
          .then(() => true)
          .catch(() => false);
        const filter = { label: [`${runLabel.key}=${runLabel.value}`] };
        const leftovers = [
          ...(await docker.listContainers({ all: true, filters: filter })).map(
            (c) => `container ${c.Names.join(",")}`,
          ),
          ...((await docker.listVolumes({ filters: filter })).Volumes ?? []).map(
            (v) => `volume ${v.Name}`,
          ),
          ...(await docker.listNetworks({ filters: filter })).map((n) => `network ${n.Name}`),
          ...[...api.objects.keys()].map((apiPath) => `kubernetes ${apiPath}`),
          ...(registryLeft ? [`container ${registryName} (by name)`] : []),
        ];

        const okPulls = criPulls.filter((pull) => !pull.error).length;
        const summary = `program lab run: ${created} resources created, ${okPulls}/${criPulls.length} CRI pulls ok, ${restored.length}/${touched.length} node files restored, ${leftovers.length} objects left`;
        summaries.push(`[${mode}] ${summary}`);
        console.log(`      (${mode} mirror)`);
        console.log(`      ${summary}`);

        // The verdict: every problem named (pull failures grouped by node and message).
        const problems: string[] = [];
        for (const failure of upFailures) problems.push(`up: ${failure.name}: ${failure.error}`);
        for (const failure of engine.deleteFailures) {
          problems.push(`destroy: ${failure.name}: ${failure.error}`);
        }
        if (criPulls.length < 30) problems.push(`only ${criPulls.length} CRI pulls (30 or more)`);
        const grouped = new Map<string, string[]>();
        for (const pull of [...criPulls, ...podmanPulls].filter((p) => p.error)) {
          const group = `${pull.node}: ${pull.error}`;
          grouped.set(group, [...(grouped.get(group) ?? []), pull.image]);
        }
        for (const [group, images] of grouped) {
          problems.push(`${images.length} pulls failed on ${group}\n    ${images.join("\n    ")}`);
        }
        for (const pull of kubelet.pulls.filter((p) => p.error)) {
          problems.push(`kubelet, pod ${pull.pod}: ${pull.image}: ${pull.error}`);
        }
        if (kubelet.pulls.length === 0) problems.push("the run pod's images were never pulled");
        if (touched.length === 0) problems.push("the node configuration reported no files");
        for (const { node, file } of touched) {
          if (applied.get(node)?.get(file) === before.get(node)?.get(file)) {
            problems.push(`${node}:${file} was not changed by up`);
          }
        }
        for (const file of changedAnywhere) problems.push(`not as before up: ${file}`);
        if (nodeEvidence.length > 0)
          problems.push(`node files while pulls failed:\n${nodeEvidence.join("\n")}`);
        for (const object of leftovers) problems.push(`left after destroy: ${object}`);
        if (problems.length > 0)
          console.log(`      problems:\n      - ${problems.join("\n      - ")}`);
        assert.deepEqual(problems, [], `the ${mode} run has ${problems.length} problems`);
      } finally {
        await Promise.all(nodes.map((node) => node.remove()));
        await api?.close();
        const labelled = await docker.listContainers({
          all: true,
          filters: { label: [`${runLabel.key}=${runLabel.value}`] },
        });
        // Whatever a failed run left behind (the assertions above have reported it).
        for (const container of labelled) {
          await docker
            .getContainer(container.Id)
            .remove({ force: true })
            .catch(() => undefined);
        }
      }
    });
  }
});
