import assert from "node:assert/strict";
import {
  ConformanceArgsError,
  actionEnvironment,
  actionScript,
  deletePodArgs,
  deleteSuiteNamespacesArgs,
  getPodArgs,
  kubectlVersionArgs,
  planConformanceRun,
  planJson,
  preflightChecks,
  preflightFailure,
  readResultArgs,
  resolveKubeContext,
  serverVersionFrom,
} from "../../../core/conformance";
import { baseInput } from "./helpers";

const kubeconfig = `apiVersion: v1
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
- name: broken
  context: {cluster: elsewhere, user: admin}
current-context: lab-admin
`;

function argError(arg: string, message: RegExp) {
  return (error: unknown) =>
    error instanceof ConformanceArgsError && error.arg === arg && message.test(error.message);
}

describe("kubeconfig check", function () {
  it("picks the current context or the one asked for", function () {
    assert.equal(resolveKubeContext(kubeconfig, "/k"), "lab-admin");
    assert.equal(resolveKubeContext(kubeconfig, "/k", "lab-admin"), "lab-admin");
  });

  it("names the argument for a missing context, a dangling cluster, or a file that is not one", function () {
    assert.throws(
      () => resolveKubeContext(kubeconfig, "/k", "prod"),
      argError("context", /"prod" is not in \/k; it has: lab-admin, broken/),
    );
    assert.throws(
      () => resolveKubeContext(kubeconfig, "/k", "broken"),
      argError("context", /names cluster "elsewhere", which the file does not define/),
    );
    assert.throws(
      () => resolveKubeContext("a: [unclosed", "/k"),
      argError("kubeconfig", /\/k is not YAML/),
    );
    assert.throws(
      () => resolveKubeContext("just: a map\n", "/k"),
      argError("kubeconfig", /not a kubeconfig: it has no contexts list/),
    );
    assert.throws(
      () => resolveKubeContext(kubeconfig.replace("current-context: lab-admin", ""), "/k"),
      argError("context", /no current-context; set context to one of: lab-admin, broken/),
    );
  });
});

describe("kubectl command lines", function () {
  const target = { kubeconfig: "/home/u/.kube/config", context: "lab-admin" };

  it("reads the pod, results and version without a shell", function () {
    assert.deepEqual(getPodArgs(target, "conformance", "e2e-conformance-1"), [
      "--kubeconfig",
      "/home/u/.kube/config",
      "--context",
      "lab-admin",
      "get",
      "pod",
      "e2e-conformance-1",
      "--namespace",
      "conformance",
      "--output",
      "json",
      "--ignore-not-found",
      "--request-timeout=30s",
    ]);
    assert.deepEqual(readResultArgs({ kubeconfig: "/k" }, "conformance", "p", "junit_01.xml"), [
      "--kubeconfig",
      "/k",
      "exec",
      "p",
      "--namespace",
      "conformance",
      "--container",
      "output-container",
      "--",
      "cat",
      "/tmp/results/junit_01.xml",
    ]);
    assert.throws(() => readResultArgs(target, "n", "p", "../etc/passwd"), /not a results file/);
    assert.deepEqual(kubectlVersionArgs({ kubeconfig: "/k" }), [
      "--kubeconfig",
      "/k",
      "version",
      "-o",
      "json",
      "--request-timeout=20s",
    ]);
    assert.deepEqual(deleteSuiteNamespacesArgs({ kubeconfig: "/k" }, ["0a1b-2c"]), [
      "--kubeconfig",
      "/k",
      "delete",
      "namespaces",
      "--selector",
      "e2e-run=0a1b-2c",
      "--ignore-not-found",
      "--wait=false",
    ]);
    // Every Ginkgo process labels its namespaces with its own id: one selector for all.
    assert.deepEqual(deleteSuiteNamespacesArgs({ kubeconfig: "/k" }, ["0a1b-2c", "3d4e-5f"]), [
      "--kubeconfig",
      "/k",
      "delete",
      "namespaces",
      "--selector",
      "e2e-run in (0a1b-2c,3d4e-5f)",
      "--ignore-not-found",
      "--wait=false",
    ]);
    assert.throws(
      () => deleteSuiteNamespacesArgs(target, ["0a1b", "x; rm -rf /"]),
      /not an e2e run id/,
    );
    assert.throws(() => deleteSuiteNamespacesArgs(target, []), /no e2e run id/);
    assert.deepEqual(deletePodArgs({ kubeconfig: "/k" }, "conformance", "e2e-conformance-1"), [
      "--kubeconfig",
      "/k",
      "delete",
      "pod",
      "e2e-conformance-1",
      "--namespace",
      "conformance",
      "--ignore-not-found",
      "--wait=false",
      "--request-timeout=30s",
    ]);
  });

  it("reads the server version, or says auto could not detect it", function () {
    assert.equal(
      serverVersionFrom(
        JSON.stringify({ clientVersion: {}, serverVersion: { gitVersion: "v1.31.4+k3s1" } }),
      ),
      "v1.31.4+k3s1",
    );
    assert.throws(
      () =>
        serverVersionFrom(
          JSON.stringify({ clientVersion: { gitVersion: "v1.32.4" } }),
          "connection refused",
        ),
      argError("kubernetesVersion", /"auto" could not detect.*connection refused/),
    );
  });
});

describe("preflight decisions", function () {
  const plan = planConformanceRun(baseInput());
  const busybox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
  const digest = `sha256:${"a".repeat(64)}`;

  it("looks every image up by its mirror path and expects the recorded digest", function () {
    const checks = preflightChecks(plan.images, { [busybox]: digest });
    assert.equal(checks.length, plan.images.length);
    assert.deepEqual(
      checks.find((check) => check.source === busybox),
      {
        source: busybox,
        repository: "e2e-test-images/busybox",
        reference: "1.36.1-1",
        expectedDigest: digest,
      },
    );
    const conformance = checks.find((check) => check.repository === "conformance");
    assert.equal(conformance?.expectedDigest, undefined);
    const pinned = preflightChecks(
      [
        {
          source: `x.io/a@${digest}`,
          mirrorReference: `m:5000/a@${digest}`,
          mirrorPath: "a",
          reference: digest,
        },
      ],
      {},
    );
    assert.equal(pinned[0].expectedDigest, digest);
  });

  it("lists what is missing and what differs, and passes when all is present", function () {
    const base = { repository: "pause", reference: "3.10", source: "registry.k8s.io/pause:3.10" };
    const message = preflightFailure("10.0.0.5:5000", [
      { ...base, state: "missing" },
      {
        ...base,
        repository: "conformance",
        reference: "v1.31.4",
        source: "registry.k8s.io/conformance:v1.31.4",
        state: "present",
        digest,
      },
      {
        ...base,
        source: busybox,
        state: "wrong-digest",
        digest: `sha256:${"b".repeat(64)}`,
        expectedDigest: digest,
      },
    ]);
    assert.match(
      message ?? "",
      /^preflight: 2 of 3 images the run needs are not in the mirror 10\.0\.0\.5:5000 as expected; the pod was not created\./,
    );
    assert.match(
      message ?? "",
      /missing: registry\.k8s\.io\/pause:3\.10 \(looked for pause:3\.10\)/,
    );
    assert.match(
      message ?? "",
      new RegExp(
        `wrong digest: ${busybox.replace(/[./]/g, "\\$&")} is sha256:b+, expected ${digest}`,
      ),
    );
    assert.equal(preflightFailure("m", [{ ...base, state: "present", digest }]), undefined);
  });
});

describe("action command", function () {
  it("is fixed text per mode: every value, and the password, travels in the environment", function () {
    assert.equal(
      actionScript("run"),
      'set -eu\nexec "$CONFORMANCE_NODE" "$CONFORMANCE_ACTION" run',
    );
    const plan = planConformanceRun(baseInput());
    const environment = actionEnvironment({
      planJson: planJson(plan),
      mirror: { host: "127.0.0.1:5001", scheme: "http", username: "mirror" },
      nodeBinary: "/usr/bin/node",
      actionEntry: "/app/components/conformance/actions/main.ts",
      loader: "/app/node_modules/ts-node/register/transpile-only.js",
    });
    assert.deepEqual(Object.keys(environment).sort(), [
      "CONFORMANCE_ACTION",
      "CONFORMANCE_MIRROR",
      "CONFORMANCE_NODE",
      "CONFORMANCE_PLAN",
      "NODE_OPTIONS",
    ]);
    assert.deepEqual(JSON.parse(environment.CONFORMANCE_PLAN), plan);
    assert.equal(
      environment.NODE_OPTIONS,
      "--require=/app/node_modules/ts-node/register/transpile-only.js",
    );
  });
});
