import {
  commandStdout,
  recorded,
  resourcesOf,
  only,
  settle,
  valueOf,
  type RecordedResource,
} from "./harness";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ConformanceRun, type ConformanceRunArgs } from "../../components/conformance";
import {
  actionScript,
  conformanceObjects,
  dockerConfigJson,
  formatReportLine,
  planConformanceRun,
  withSpecPodName,
} from "../../core/conformance";
import { renderRepoList } from "../../core/images";

const password = "mock-mirror-password-never-in-clear";
const repoList = renderRepoList({ mirrorHost: "10.0.0.5:5000" });
const work = mkdtempSync(path.join(os.tmpdir(), "conformance-mocks-"));
const kubeconfig = path.join(work, "kubeconfig");
writeFileSync(
  kubeconfig,
  `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://10.0.0.10:6443"}
users:
- name: admin
  user: {token: abc}
contexts:
- name: lab-admin
  context: {cluster: lab, user: admin}
current-context: lab-admin
`,
);
const resultsDirectory = path.join(work, "results");

function baseArgs(overrides: Partial<ConformanceRunArgs> = {}): ConformanceRunArgs {
  return {
    kubeconfig,
    kubernetesVersion: "v1.31.4",
    mirror: { endpoint: "10.0.0.5:5000", access: { host: "127.0.0.1:5001", scheme: "http" } },
    repoList,
    resultsDirectory,
    ...overrides,
  };
}

/** Paths (dotted) of every string in `value` that contains `needle`. */
function pathsHolding(value: unknown, needle: string, at = ""): string[] {
  if (typeof value === "string") return value.includes(needle) ? [at] : [];
  if (Array.isArray(value))
    return value.flatMap((item, i) => pathsHolding(item, needle, `${at}[${i}]`));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) =>
      pathsHolding(item, needle, at ? `${at}.${key}` : key),
    );
  }
  return [];
}

function byName(resources: RecordedResource[], name: string): RecordedResource {
  const found = resources.find((resource) => resource.name === name);
  if (!found) throw new Error(`no resource ${name}: ${resources.map((r) => r.name).join(", ")}`);
  return found;
}

/** The manifest as the mock monitor saw it (no undefined fields). */
function asSent(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe("ConformanceRun (mocks)", function () {
  describe("with an authenticated mirror", function () {
    let run: ConformanceRun;
    let resources: RecordedResource[];
    before(async function () {
      run = new ConformanceRun(
        "cert",
        baseArgs({
          mirror: {
            endpoint: "10.0.0.5:5000",
            access: { host: "127.0.0.1:5001", scheme: "http" },
            username: "mirror",
            password: pulumi.secret(password),
          },
          imageDigests: { "registry.k8s.io/pause:3.10": `sha256:${"1".repeat(64)}` },
          focus: "\\[sig-node\\].*\\[Conformance\\]",
          parallelism: 2,
          failOnTestFailures: false,
        }),
      );
      await valueOf(run.podName);
      await valueOf(run.verdict);
      await settle();
      resources = resourcesOf("cert");
    });

    it("declares the run's objects, two commands and a provider, all children of the component", function () {
      const children = resources.filter((resource) => resource.custom);
      assert.deepEqual(children.map((child) => `${child.type} ${child.name}`).sort(), [
        "command:local:Command cert-preflight",
        "command:local:Command cert-run",
        "kubernetes:core/v1:ConfigMap cert-repo-list",
        "kubernetes:core/v1:Namespace cert-namespace",
        "kubernetes:core/v1:Pod cert-pod",
        "kubernetes:core/v1:Secret cert-pull-secret",
        "kubernetes:core/v1:ServiceAccount cert-service-account",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole cert-cluster-role",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding cert-cluster-role-binding",
        "pulumi:providers:kubernetes cert-k8s",
      ]);
      for (const child of children) {
        assert.match(child.parent, /airgap:conformance:ConformanceRun::cert$/, child.name);
      }
      for (const child of children.filter((c) => c.type.startsWith("kubernetes:"))) {
        assert.match(
          child.provider,
          /pulumi:providers:kubernetes::cert-k8s::cert-k8s-id$/,
          child.name,
        );
      }
      const provider = only(resources, "pulumi:providers:kubernetes");
      assert.equal(provider.inputs.kubeconfig, kubeconfig);
      assert.equal(provider.inputs.context, "lab-admin");
    });

    it("declares exactly the pod of the pure spec, skipAwait included", function () {
      const plan = withSpecPodName(
        planConformanceRun({
          kubernetesVersion: "v1.31.4",
          mirror: { endpoint: "10.0.0.5:5000", authenticated: true },
          focus: "\\[sig-node\\].*\\[Conformance\\]",
          parallelism: 2,
          kubeconfig,
          context: "lab-admin",
          resultsDirectory,
          stack: "test",
          failOnTestFailures: false,
        }),
      );
      const expected = conformanceObjects(plan, { repoList, dockerConfigJson: "" });
      const pod = byName(resources, "cert-pod");
      assert.deepEqual(pod.inputs.metadata, asSent(expected.pod.metadata));
      assert.deepEqual(pod.inputs.spec, asSent(expected.pod.spec));
      const metadata = pod.inputs.metadata as { annotations: Record<string, string> };
      assert.equal(metadata.annotations["pulumi.com/skipAwait"], "true");
      const spec = pod.inputs.spec as {
        imagePullSecrets: unknown;
        containers: Array<{ image: string; env: Array<{ name: string; value: string }> }>;
      };
      assert.deepEqual(spec.imagePullSecrets, [{ name: "conformance-mirror-pull" }]);
      assert.equal(spec.containers[0].image, "10.0.0.5:5000/conformance:v1.31.4");
      assert.ok(
        spec.containers[0].env.some(
          (entry) =>
            entry.name === "E2E_EXTRA_GINKGO_ARGS" && entry.value === "--procs=2 --timeout=20700s",
        ),
      );
      for (const name of [
        "cert-namespace",
        "cert-service-account",
        "cert-cluster-role",
        "cert-cluster-role-binding",
      ]) {
        const resource = byName(resources, name);
        const key = {
          "cert-namespace": "namespace",
          "cert-service-account": "serviceAccount",
          "cert-cluster-role": "clusterRole",
          "cert-cluster-role-binding": "clusterRoleBinding",
        }[name] as "namespace" | "serviceAccount" | "clusterRole" | "clusterRoleBinding";
        assert.deepEqual(resource.inputs, asSent(expected[key]), name);
      }
    });

    it("mounts the given repo list, byte for byte", function () {
      const configMap = byName(resources, "cert-repo-list");
      assert.deepEqual(configMap.inputs.data, { "repo-list.yaml": repoList });
      assert.deepEqual(configMap.inputs.metadata, {
        name: "repo-list-config",
        namespace: "conformance",
        labels: {
          "app.kubernetes.io/name": "conformance",
          "app.kubernetes.io/managed-by": "pulumi",
        },
      });
    });

    it("sends the pull secret and the mirror password only as secrets", function () {
      const secret = byName(resources, "cert-pull-secret");
      // The SDK sends a Secret's whole stringData as a secret.
      assert.deepEqual(secret.secretPaths, ["stringData"]);
      assert.equal(secret.inputs.type, "kubernetes.io/dockerconfigjson");
      assert.deepEqual(secret.inputs.stringData, {
        ".dockerconfigjson": dockerConfigJson("10.0.0.5:5000", "mirror", password),
      });
      const preflight = byName(resources, "cert-preflight");
      assert.deepEqual(preflight.secretPaths, ["environment.CONFORMANCE_MIRROR_PASSWORD"]);
      // Wherever the password (or its base64 form) appears, it was sent as a secret.
      const encoded = Buffer.from(`mirror:${password}`).toString("base64");
      for (const resource of recorded) {
        for (const needle of [password, encoded]) {
          for (const at of pathsHolding(resource.inputs, needle)) {
            assert.ok(
              resource.secretPaths.some(
                (secretPath) => at === secretPath || at.startsWith(`${secretPath}.`),
              ),
              `${resource.name}.${at} holds the password in clear`,
            );
          }
        }
      }
      for (const command of resources.filter((r) => r.type === "command:local:Command")) {
        assert.ok(!String(command.inputs.create).includes(password));
        assert.ok(!String(command.inputs.delete ?? "").includes(password));
      }
    });

    it("runs preflight before the pod, and the run after it, with fixed command text", function () {
      const preflight = byName(resources, "cert-preflight");
      const run = byName(resources, "cert-run");
      const pod = byName(resources, "cert-pod");
      assert.equal(preflight.inputs.create, actionScript("preflight"));
      assert.equal(run.inputs.create, actionScript("run"));
      assert.equal(run.inputs.delete, actionScript("cleanup"));
      assert.ok(pod.dependencies.some((urn) => urn.endsWith("::cert-preflight")));
      assert.ok(pod.dependencies.some((urn) => urn.endsWith("::cert-pull-secret")));
      assert.ok(pod.dependencies.some((urn) => urn.endsWith("::cert-repo-list")));
      assert.ok(run.dependencies.some((urn) => urn.endsWith("::cert-pod")));
      const environment = preflight.inputs.environment as Record<string, string>;
      assert.deepEqual(JSON.parse(environment.CONFORMANCE_MIRROR), {
        host: "127.0.0.1:5001",
        scheme: "http",
        username: "mirror",
      });
      assert.deepEqual(JSON.parse(environment.CONFORMANCE_IMAGE_DIGESTS), {
        "registry.k8s.io/pause:3.10": `sha256:${"1".repeat(64)}`,
      });
      const plan = JSON.parse(environment.CONFORMANCE_PLAN);
      assert.match(plan.podName, /^e2e-conformance-1-[0-9a-f]{8}$/);
      assert.equal(plan.failOnTestFailures, false);
      // Stored in state and run again by destroy: nothing absolute into the project.
      assert.equal(environment.CONFORMANCE_NODE, "node");
      assert.equal(environment.CONFORMANCE_ACTION, "./components/conformance/actions/main.ts");
      assert.equal(environment.NODE_OPTIONS, "--require=ts-node/register/transpile-only");
      const root = path.resolve(__dirname, "..", "..");
      for (const command of [preflight, run]) {
        const stored = JSON.stringify(command.inputs);
        assert.ok(!stored.includes(path.join(root, "node_modules")), "no path into node_modules");
        assert.ok(!stored.includes(path.join(root, "components")), "no path into the checkout");
      }
      const runEnvironment = run.inputs.environment as Record<string, string>;
      assert.equal(runEnvironment.CONFORMANCE_MIRROR_PASSWORD, undefined);
      assert.deepEqual(run.secretPaths, []);
    });

    it("reports the image, results directory and an unknown verdict before the run has reported", async function () {
      assert.equal(await valueOf(run.conformanceImage), "10.0.0.5:5000/conformance:v1.31.4");
      assert.equal(await valueOf(run.resultsDirectory), path.join(resultsDirectory, "test", "1"));
      assert.equal(await valueOf(run.kubernetesVersion), "v1.31.4");
      assert.equal(await valueOf(run.namespace), "conformance");
      assert.match(await valueOf(run.podName), /^e2e-conformance-1-[0-9a-f]{8}$/);
      assert.equal(await valueOf(run.verdict), "unknown");
      assert.deepEqual(await valueOf(run.failedTests), []);
      assert.deepEqual(await valueOf(run.failures), []);
    });
  });

  describe("after the run has reported", function () {
    it("outputs each failure, suite nodes first, with the first lines of its message", async function () {
      const failure = {
        name: "[sig-network] Services should serve a basic endpoint from pods  [Conformance]",
        state: "failed",
        message: 'pod "pod1" was not running: ErrImagePull',
      };
      const suiteFailure = {
        name: "[SynchronizedAfterSuite]",
        state: "failed",
        message: "namespaces left behind",
      };
      commandStdout.set(
        "reported-run",
        `progress\n${formatReportLine({
          verdict: "failed",
          passed: 3,
          failed: 1,
          skipped: 0,
          total: 4,
          durationSeconds: 60,
          failedTests: [failure.name],
          failures: [failure],
          suiteFailures: [suiteFailure],
          resultsDirectory: "/r",
          conformanceImage: "10.0.0.5:5000/conformance:v1.31.4",
          exitCode: 1,
          e2eRunIds: [],
        })}\n`,
      );
      const run = new ConformanceRun("reported", baseArgs({ namespace: "reported" }));
      assert.equal(await valueOf(run.verdict), "failed");
      assert.deepEqual(await valueOf(run.failedTests), [failure.name]);
      assert.deepEqual(await valueOf(run.failures), [suiteFailure, failure]);
      await settle();
    });

    it("passes failOnNoTests to the actions, true unless the stack says otherwise", async function () {
      const strict = new ConformanceRun("strict", baseArgs({ namespace: "strict" }));
      const lenient = new ConformanceRun(
        "lenient",
        baseArgs({ namespace: "lenient", failOnNoTests: false }),
      );
      await valueOf(strict.podName);
      await valueOf(lenient.podName);
      await settle();
      const planOf = (name: string) =>
        JSON.parse(
          (byName(resourcesOf(name), `${name}-run`).inputs.environment as Record<string, string>)
            .CONFORMANCE_PLAN,
        ) as { failOnNoTests: boolean };
      assert.equal(planOf("strict").failOnNoTests, true);
      assert.equal(planOf("lenient").failOnNoTests, false);
    });
  });

  describe("a new runId", function () {
    let first: RecordedResource[];
    let second: RecordedResource[];
    before(async function () {
      const a = new ConformanceRun("rerun-a", baseArgs({ namespace: "conf-a" }));
      const b = new ConformanceRun("rerun-b", baseArgs({ namespace: "conf-a", runId: "2" }));
      await Promise.all([valueOf(a.podName), valueOf(b.podName)]);
      await settle();
      first = resourcesOf("rerun-a");
      second = resourcesOf("rerun-b");
    });

    it("changes only the pod and the commands' triggers; the other objects stay as they are", function () {
      const differing = first
        .filter((resource) => resource.custom && resource.type.startsWith("kubernetes:"))
        .filter((resource) => {
          const other = byName(second, resource.name.replace("rerun-a", "rerun-b"));
          return JSON.stringify(resource.inputs) !== JSON.stringify(other.inputs);
        })
        .map((resource) => resource.type);
      assert.deepEqual(differing, ["kubernetes:core/v1:Pod"]);
      const podA = byName(first, "rerun-a-pod").inputs.metadata as { name: string };
      const podB = byName(second, "rerun-b-pod").inputs.metadata as { name: string };
      assert.match(podA.name, /^e2e-conformance-1-[0-9a-f]{8}$/);
      assert.match(podB.name, /^e2e-conformance-2-[0-9a-f]{8}$/);
      // The run action waits for exactly the pod that was declared.
      const planA = JSON.parse(
        (byName(first, "rerun-a-run").inputs.environment as Record<string, string>)
          .CONFORMANCE_PLAN,
      );
      assert.equal(planA.podName, podA.name);
      for (const command of ["preflight", "run"]) {
        const triggersA = byName(first, `rerun-a-${command}`).inputs.triggers as string[];
        const triggersB = byName(second, `rerun-b-${command}`).inputs.triggers as string[];
        assert.equal(triggersA[0], "1");
        assert.equal(triggersB[0], "2");
      }
    });
  });

  describe("kubernetesVersion auto", function () {
    it("asks the cluster with kubectl at preview and drops the build suffix", async function () {
      const bin = path.join(work, "bin");
      mkdirSync(bin, { recursive: true });
      const kubectl = path.join(bin, "kubectl");
      writeFileSync(
        kubectl,
        `#!/bin/sh\necho "$@" > "${bin}/args"\necho '{"clientVersion":{"gitVersion":"v1.32.4"},"serverVersion":{"gitVersion":"v1.31.7-eks-1a2b3c"}}'\n`,
      );
      chmodSync(kubectl, 0o755);
      const run = new ConformanceRun("auto", baseArgs({ kubernetesVersion: "auto", kubectl }));
      assert.equal(await valueOf(run.kubernetesVersion), "v1.31.7");
      assert.equal(
        readFileSync(path.join(bin, "args"), "utf8").trim(),
        `--kubeconfig ${kubeconfig} --context lab-admin version -o json --request-timeout=20s`,
      );
      assert.equal(await valueOf(run.conformanceImage), "10.0.0.5:5000/conformance:v1.31.7");
      await settle();
      const pod = byName(resourcesOf("auto"), "auto-pod");
      const spec = pod.inputs.spec as { containers: Array<{ image: string }> };
      assert.equal(spec.containers[0].image, "10.0.0.5:5000/conformance:v1.31.7");
    });
  });

  describe("bad input fails before anything is declared", function () {
    const cases: Array<[string, () => Partial<ConformanceRunArgs>, RegExp]> = [
      [
        "kubeconfig missing",
        () => ({ kubeconfig: path.join(work, "nope") }),
        /kubeconfig: cannot read '.*nope'/,
      ],
      [
        "context absent",
        () => ({ context: "prod" }),
        /context: context "prod" is not in .*; it has: lab-admin/,
      ],
      [
        // A path below a regular file can be created by no one, root included.
        "results directory not writable",
        () => {
          const file = path.join(work, "a-file");
          writeFileSync(file, "");
          return { resultsDirectory: path.join(file, "results") };
        },
        /resultsDirectory: .*a-file\/results cannot be created: .*a-file is not a directory/,
      ],
      [
        "password without user",
        () => ({ mirror: { endpoint: "m:5000", password: "x" } }),
        /mirror\.username: a password was given without a username/,
      ],
      [
        "parallelism 0",
        () => ({ parallelism: 0 }),
        /ConformanceRun: parallelism: 0 is not allowed/,
      ],
      ["focus RE2 rejects", () => ({ focus: "(?=x)" }), /ConformanceRun: focus: .*lookahead/],
      [
        "unknown version",
        () => ({ kubernetesVersion: "1.28.3" }),
        /ConformanceRun: kubernetesVersion: the image catalog has no list/,
      ],
      [
        "image list file missing",
        () => ({ imageListFiles: [path.join(work, "none.txt")] }),
        /imageListFiles\[0\]: cannot read/,
      ],
    ];
    for (const [title, args, message] of cases) {
      it(title, function () {
        assert.throws(() => new ConformanceRun("bad", baseArgs(args())), message);
      });
    }
  });
});
