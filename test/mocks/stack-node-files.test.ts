import { recorded, settle, valueOf } from "./harness";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { nodeResourceKey } from "../../components/nodes";
import { RegistryContainer } from "../../components/registry";
import { E2E_REGISTRIES } from "../../core/images/e2e-registries";
import { type NodePlan, planNodeFiles, renderNodeScript } from "../../core/nodes";
import { loadStackConfig } from "../../infra/config";
import { defineProgram, nodeRegistryArgs, registryContainerArgs } from "../../infra/program";
import { readStackFile } from "../../infra/stack-file";
import { assertGolden } from "../unit/nodes/golden";
import { type ExpectedMirror, mirrorCoverageProblem } from "../unit/nodes/pull-sources";

/**
 * The example stacks, through the real config code and the program, render node files under
 * which every reference the run pulls is pulled from the mirror with the right scheme, CA and
 * credentials: the run pod's images, every registry KUBE_TEST_REPO_LIST points at, and every
 * upstream of the image set. The node files checked are the very ones in each node's script.
 */

const root = path.resolve(__dirname, "..", "..");
const fixtures = path.join(root, "test", "fixtures");
const project = "airgap-conformance";
const caFixture = path.join(fixtures, "registry.crt");
const standInPassword = "stack-registry-pw";

interface StackRender {
  /** Hosts the run pulls from, each with where it came from. */
  hosts: Map<string, string[]>;
  mirror: ExpectedMirror;
  /** Each node's plan, checked to be what its script carries. */
  plans: Map<string, NodePlan>;
}

function hostOf(reference: string): string {
  return reference.split("/")[0];
}

async function renderStack(file: string): Promise<StackRender> {
  const { config } = readStackFile(path.join(root, file));
  const start = recorded.length;
  // Files the stack names on its bastion are replaced by fixtures (only where it names them).
  const standIns = Object.fromEntries(
    Object.entries({
      [`${project}:registryTlsCertificateFile`]: caFixture,
      [`${project}:registryTlsKeyFile`]: path.join(fixtures, "registry.key"),
      [`${project}:mirrorCaFile`]: caFixture,
      [`${project}:imagesK3sImagesFile`]: path.join(fixtures, "k3s", "k3s-images.txt"),
    }).filter(([key]) => key in config),
  );
  pulumi.runtime.setAllConfig(
    {
      ...config,
      [`${project}:registryCheckHostPort`]: "false",
      [`${project}:kubeconfig`]: path.join(fixtures, "kubeconfig-kind-airgap.yaml"),
      ...standIns,
      ...(`${project}:registryUsername` in config
        ? { [`${project}:registryPassword`]: standInPassword }
        : {}),
      [`${project}:nodesSshPrivateKey`]: "-----BEGIN OPENSSH PRIVATE KEY-----\nstack-key\n",
    },
    [`${project}:registryPassword`, `${project}:nodesSshPrivateKey`],
  );
  const stackConfig = loadStackConfig();
  const outputs = defineProgram(stackConfig, project);
  const upstreams = await valueOf(outputs.upstreamRegistries);
  const registryUrl = new URL(await valueOf(outputs.registryUrl));
  await valueOf(outputs.conformanceVerdict);
  await settle();
  const registered = recorded.slice(start);

  const hosts = new Map<string, string[]>();
  const uses = (host: string, why: string) => hosts.set(host, [...(hosts.get(host) ?? []), why]);
  const pod = registered.find((r) => r.type === "kubernetes:core/v1:Pod");
  assert.ok(pod, `${file}: the run pod is declared`);
  const spec = pod.inputs.spec as {
    containers: Array<{ image: string }>;
    initContainers?: Array<{ image: string }>;
  };
  for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
    uses(hostOf(container.image), `pod image ${container.image}`);
  }
  const repoListMap = registered.find(
    (r) => r.type === "kubernetes:core/v1:ConfigMap" && r.name.startsWith("conformance"),
  );
  const repoList = YAML.parse(
    (repoListMap?.inputs.data as Record<string, string>)["repo-list.yaml"],
  ) as Record<string, string>;
  const leftAtDefault: string[] = [];
  for (const registry of E2E_REGISTRIES) {
    const value = repoList[registry.key];
    assert.ok(value, `${file}: KUBE_TEST_REPO_LIST has ${registry.key}`);
    if (registry.unmirrorableReason !== undefined) {
      // Deliberately unpullable or auth-only upstream registries: the tests expect their failure.
      assert.equal(value, registry.defaultValue);
      leftAtDefault.push(registry.key);
    } else {
      uses(hostOf(value), `KUBE_TEST_REPO_LIST ${registry.key}`);
    }
  }
  assert.ok(leftAtDefault.length < E2E_REGISTRIES.length / 2);
  for (const upstream of upstreams) uses(upstream, "upstream of the image set");

  // The program's own node arguments, with the registry settings the program composes them from.
  const probe = new RegistryContainer(`probe-${file}`, registryContainerArgs(stackConfig));
  const args = nodeRegistryArgs(stackConfig, project, probe.settings);
  const password =
    args.mirror.auth?.password === undefined
      ? undefined
      : await valueOf(pulumi.output(args.mirror.auth.password));
  const plans = new Map<string, NodePlan>();
  for (const node of args.nodes) {
    const plan = planNodeFiles({
      runtime: node.runtime,
      mirror: {
        endpoint: args.mirror.endpoint,
        scheme: args.mirror.scheme ?? "http",
        caCertificate: args.mirror.caCertificate,
        skipVerify: args.mirror.skipVerify,
        auth:
          args.mirror.auth && password !== undefined
            ? { username: args.mirror.auth.username!, password }
            : undefined,
      },
      upstreams: args.upstreams,
      options: { forbidFallback: args.forbidFallback ?? false, ...args.k3s },
    });
    // Exactly the files the node's command resource carries on stdin.
    const key = nodeResourceKey(
      node.access.kind === "ssh"
        ? {
            kind: "ssh",
            host: node.address!,
            port: node.access.port ?? 22,
            user: node.access.user ?? "root",
            sudo: false,
          }
        : node.access.kind === "docker-exec"
          ? { kind: "docker-exec", container: node.access.container ?? node.name }
          : { kind: "manual", node: node.name },
    );
    const command = registered.find(
      (r) => r.name === `nodes-${key}` && r.type.startsWith("command:"),
    );
    assert.equal(
      command?.inputs.stdin,
      renderNodeScript(plan, { nodeName: node.name }),
      `${file}: node ${node.name}`,
    );
    plans.set(node.name, plan);
  }
  const tls = registryUrl.protocol === "https:";
  return {
    hosts,
    plans,
    mirror: {
      endpoint: registryUrl.host,
      scheme: tls ? "https" : "http",
      caPem: tls ? readFileSync(caFixture, "utf8") : undefined,
      auth: password === undefined ? undefined : { username: "mirror", password },
    },
  };
}

/** Every host the run uses, with the problem a node has pulling it (none expected). */
function problems(render: StackRender): string[] {
  const found: string[] = [];
  for (const [node, plan] of render.plans) {
    for (const [host, why] of render.hosts) {
      const problem = mirrorCoverageProblem(plan, host, render.mirror);
      if (problem) found.push(`${node}: ${problem} (${why[0]})`);
    }
  }
  return found;
}

function withoutFile(plan: NodePlan, pathSuffix: string): NodePlan {
  return { ...plan, files: plan.files.filter((file) => !file.path.endsWith(pathSuffix)) };
}

function fileOf(plan: NodePlan, pathSuffix: string): string {
  const file = plan.files.find((candidate) => candidate.path.endsWith(pathSuffix));
  assert.ok(file?.kind === "file", `a planned file ending ${pathSuffix}`);
  return file.content;
}

describe("example stacks: node files cover every reference of the run", function () {
  it("dev (kind, plain http): the mirror's own name kind-registry:5000 and each upstream", async function () {
    const render = await renderStack("Pulumi.dev.yaml");
    assert.equal(render.mirror.endpoint, "kind-registry:5000");
    assert.ok(
      render.hosts.get("kind-registry:5000")?.some((why) => why.startsWith("pod image")),
      "the run pod pulls from the mirror's own name",
    );
    assert.ok(render.hosts.has("registry.k8s.io"));
    assert.deepEqual(problems(render), []);
    const plan = render.plans.get("airgap-control-plane")!;
    assertGolden(
      "stack-dev-kind-registry_5000_-hosts.toml",
      fileOf(plan, "/certs.d/kind-registry_5000_/hosts.toml"),
    );
    // Without the file for the mirror's own name, containerd would speak https to it.
    const before = withoutFile(plan, "/certs.d/kind-registry_5000_/hosts.toml");
    assert.match(
      mirrorCoverageProblem(before, "kind-registry:5000", render.mirror) ?? "",
      /kind-registry:5000: pulled from https:\/\/kind-registry:5000, not http:\/\/kind-registry:5000/,
    );
  });

  it("kubeadm (TLS + htpasswd): containerd nodes get the CA and the credentials for the mirror's own name", async function () {
    const render = await renderStack("Pulumi.kubeadm.yaml");
    assert.equal(render.mirror.endpoint, "10.0.0.5:5000");
    assert.equal(render.mirror.scheme, "https");
    assert.deepEqual(render.mirror.auth, { username: "mirror", password: standInPassword });
    assert.deepEqual([...render.plans.keys()], ["cp-1", "worker-1", "worker-2"]);
    assert.deepEqual(problems(render), []);
    for (const plan of render.plans.values()) {
      assert.equal(plan.secret, true);
      const own = plan.files.find((f) => f.path.endsWith("/certs.d/10.0.0.5_5000_/hosts.toml"));
      assert.ok(own?.kind === "file" && own.mode === "0600" && own.secret);
    }
    const plan = render.plans.get("cp-1")!;
    assertGolden(
      "stack-kubeadm-10.0.0.5_5000_-hosts.toml",
      fileOf(plan, "/certs.d/10.0.0.5_5000_/hosts.toml"),
    );
    // Without the header, the check sees the missing credentials (a 401 on the node).
    const withoutHeader: NodePlan = {
      ...plan,
      files: plan.files.map((file) =>
        file.kind === "file"
          ? { ...file, content: file.content.replace(/^ *Authorization = .*\n/gm, "") }
          : file,
      ),
    };
    assert.match(
      mirrorCoverageProblem(withoutHeader, "10.0.0.5:5000", render.mirror) ?? "",
      /no credentials for https:\/\/10\.0\.0\.5:5000/,
    );
  });

  it("k3s (plain http, no fallback): registries.yaml names the mirror itself, golden in the k3s format", async function () {
    const render = await renderStack("Pulumi.k3s.yaml");
    assert.equal(render.mirror.endpoint, "10.0.1.5:5000");
    assert.deepEqual(problems(render), []);
    const plan = render.plans.get("k3s-server")!;
    const registries = fileOf(plan, "/etc/rancher/k3s/registries.yaml");
    assertGolden("stack-k3s-registries.yaml", registries);
    assert.equal(
      fileOf(plan, "/etc/rancher/k3s/config.yaml.d/50-airgap-mirror.yaml").includes(
        "disable-default-registry-endpoint: true",
      ),
      true,
    );
    // The k3s format: mirrors.<name>.endpoint lists URLs; a name without an entry is pulled
    // from its default endpoint https://<name>, which a plain-http mirror does not answer.
    const parsed = YAML.parse(registries, { version: "1.1" }) as {
      mirrors: Record<string, { endpoint: string[] }>;
    };
    assert.deepEqual(parsed.mirrors["10.0.1.5:5000"], { endpoint: ["http://10.0.1.5:5000"] });
    const withoutOwn = YAML.stringify({
      mirrors: Object.fromEntries(
        Object.entries(parsed.mirrors).filter(([name]) => name !== "10.0.1.5:5000"),
      ),
    });
    const before: NodePlan = {
      ...plan,
      files: plan.files.map((file) =>
        file.kind === "file" && file.path.endsWith("registries.yaml")
          ? { ...file, content: withoutOwn }
          : file,
      ),
    };
    assert.match(
      mirrorCoverageProblem(before, "10.0.1.5:5000", render.mirror) ?? "",
      /pulled from https:\/\/10\.0\.1\.5:5000/,
    );
  });

  it("a CRI-O node on the TLS + htpasswd stack fails at preview, naming registryUsername", async function () {
    const { config } = readStackFile(path.join(root, "Pulumi.kubeadm.yaml"));
    pulumi.runtime.setAllConfig(
      {
        ...config,
        [`${project}:registryCheckHostPort`]: "false",
        [`${project}:kubeconfig`]: path.join(fixtures, "kubeconfig-kind-airgap.yaml"),
        [`${project}:registryTlsCertificateFile`]: caFixture,
        [`${project}:registryTlsKeyFile`]: path.join(fixtures, "registry.key"),
        [`${project}:mirrorCaFile`]: caFixture,
        [`${project}:registryPassword`]: standInPassword,
        [`${project}:nodesSshPrivateKey`]: "key",
        [`${project}:nodes`]: JSON.stringify(["ssh://root@10.0.0.11?runtime=crio&name=cp-1"]),
        [`${project}:nodesSshHostKeys`]: "[]",
        [`${project}:nodesSshHostKeyCheck`]: "false",
      },
      [`${project}:registryPassword`, `${project}:nodesSshPrivateKey`],
    );
    assert.throws(
      () => defineProgram(loadStackConfig(), project),
      (error: Error) => {
        assert.match(
          error.message,
          /^config airgap-conformance:registryUsername: NodeRegistryConfig: mirror\.auth: crio nodes cannot be given the mirror's credentials/,
        );
        assert.ok(!error.message.includes(standInPassword));
        return true;
      },
    );
  });
});
