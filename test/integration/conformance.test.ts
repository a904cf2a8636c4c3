import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { detectKubernetesVersion } from "../../components/conformance/detect-version";
import {
  ACTION_ENV,
  actionEnvironment,
  actionScript,
  formatReportLine,
  parseReportOutput,
  planConformanceRun,
  planJson,
  type ActionMode,
  type ConformanceRunInput,
  type ConformanceRunPlan,
  type MirrorAccess,
} from "../../core/conformance";
import { startFakeApiServer, type FakeApiServer } from "../fixtures/conformance/fake-apiserver";
import { run, runShell } from "../lab/exec";
import { labDir } from "../lab/paths";
import { startLabRegistry, type LabRegistry } from "../lab/registries";
import { labUpstreams, type LabUpstreams } from "../lab/upstreams";

const fixtures = path.resolve(__dirname, "..", "fixtures", "conformance");
const fixture = (name: string) => readFileSync(path.join(fixtures, name), "utf8");
const repoRoot = path.resolve(__dirname, "..", "..");

/**
 * Runs an action exactly as the component's local.Command does: the generated command text
 * through /bin/sh, everything else in the environment.
 */
function runActionCommand(
  mode: ActionMode,
  plan: ConformanceRunPlan,
  mirror: MirrorAccess,
  extraEnv: Record<string, string> = {},
) {
  const environment = actionEnvironment({
    planJson: planJson(plan),
    mirror,
    nodeBinary: process.execPath,
    actionEntry: path.join(repoRoot, "components", "conformance", "actions", "main.ts"),
    loader: require.resolve("ts-node/register/transpile-only"),
  });
  return runShell(actionScript(mode), {
    env: { ...environment, ...extraEnv } as Record<string, string>,
    allowFailure: true,
  });
}

function input(overrides: Partial<ConformanceRunInput>): ConformanceRunInput {
  return {
    kubernetesVersion: "v1.31.4+k3s1",
    mirror: { endpoint: "10.0.0.5:5000", authenticated: false },
    kubeconfig: "/dev/null",
    resultsDirectory: mkdtempSync(path.join(labDir, "conformance-results-")),
    stack: "it",
    pollIntervalSeconds: 1,
    progressIntervalSeconds: 1,
    ...overrides,
  };
}

describe("ConformanceRun preflight against real registries", function () {
  let upstreams: LabUpstreams;
  const digestOf = (name: string) => upstreams.images.find((image) => image.name === name)!.digest;
  const busybox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
  const pause = "registry.k8s.io/pause:3.10";
  const nginx = "docker.io/library/nginx:1.27-alpine";

  /** A run whose images are the three the lab has: nginx stands in for the conformance image. */
  function preflightPlan(registry: LabRegistry): ConformanceRunPlan {
    return planConformanceRun(
      input({
        kubernetesVersion: "1.30.5",
        imageListFiles: [{ name: "e2e-list.txt", text: `${pause}\n` }],
        conformanceImage: nginx,
        mirror: { endpoint: registry.endpoint, authenticated: registry.auth !== undefined },
      }),
    );
  }

  async function mirrorImages(
    registry: LabRegistry,
    plan: ConformanceRunPlan,
    skip: string[] = [],
  ) {
    for (const image of plan.images) {
      if (skip.includes(image.source)) continue;
      await run("skopeo", [
        "copy",
        "--all",
        "--preserve-digests",
        ...(registry.certDir
          ? [`--dest-cert-dir=${registry.certDir}`]
          : ["--dest-tls-verify=false"]),
        ...(registry.authFile ? [`--dest-authfile=${registry.authFile}`] : []),
        `oci:${upstreams.layoutDir}:${image.source}`,
        `docker://${image.mirrorReference}`,
      ]);
    }
  }

  before(async function () {
    upstreams = await labUpstreams();
  });

  describe("plain http mirror", function () {
    let registry: LabRegistry;
    let plan: ConformanceRunPlan;
    let access: MirrorAccess;
    before(async function () {
      registry = await startLabRegistry({ name: "lab-conformance-plain" });
      plan = preflightPlan(registry);
      access = { host: registry.endpoint, scheme: "http" };
      assert.deepEqual(
        plan.images.map((image) => image.source),
        [nginx, busybox, pause],
      );
      await mirrorImages(registry, plan, [pause]);
    });
    after(() => registry.stop());

    it("fails before the pod, listing the image that is missing", async function () {
      const result = await runActionCommand("preflight", plan, access);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /preflight: 1 of 3 images the run needs are not in the mirror/);
      assert.match(
        result.stderr,
        /missing: registry\.k8s\.io\/pause:3\.10 \(looked for pause:3\.10\)/,
      );
      assert.doesNotMatch(result.stderr, /busybox|nginx/);
    });

    it("passes once every image is there with the recorded digests", async function () {
      await mirrorImages(registry, plan);
      const digests = {
        [busybox]: digestOf(busybox),
        [pause]: digestOf(pause),
        [nginx]: digestOf(nginx),
      };
      const result = await runActionCommand("preflight", plan, access, {
        [ACTION_ENV.digests]: JSON.stringify(digests),
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /preflight: all 3 images the run needs are in the mirror/);
    });

    it("fails on an image whose digest is not the recorded one (a multi-arch index included)", async function () {
      const result = await runActionCommand("preflight", plan, access, {
        [ACTION_ENV.digests]: JSON.stringify({
          [busybox]: digestOf(pause),
          [pause]: digestOf(pause),
        }),
      });
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        new RegExp(
          `wrong digest: registry\\.k8s\\.io/e2e-test-images/busybox:1\\.36\\.1-1 is ${digestOf(busybox)}, expected ${digestOf(pause)}`,
        ),
      );
      assert.doesNotMatch(result.stderr, /missing:/);
    });
  });

  describe("TLS mirror with authentication", function () {
    const auth = { username: "mirror", password: "lab-mirror-password-42" };
    let registry: LabRegistry;
    let plan: ConformanceRunPlan;
    let access: MirrorAccess;
    before(async function () {
      registry = await startLabRegistry({ name: "lab-conformance-secure", tls: true, auth });
      plan = preflightPlan(registry);
      access = {
        host: registry.endpoint,
        scheme: "https",
        caFile: registry.caFile,
        username: auth.username,
      };
      await mirrorImages(registry, plan);
    });
    after(() => registry.stop());

    it("passes with the password from its own environment variable, verifying the certificate", async function () {
      const result = await runActionCommand("preflight", plan, access, {
        [ACTION_ENV.password]: auth.password,
        [ACTION_ENV.digests]: JSON.stringify({ [busybox]: digestOf(busybox) }),
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /all 3 images/);
      assert.ok(!result.stderr.includes(auth.password) && !result.stdout.includes(auth.password));
    });

    it("says the credentials were refused, and never prints the password", async function () {
      const result = await runActionCommand("preflight", plan, access, {
        [ACTION_ENV.password]: "wrong-password-xyz",
      });
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /preflight: cannot check the mirror https:\/\/127\.0\.0\.1:\d+ \(mirror\.access\): .*refused the credentials/,
      );
      assert.ok(!result.stderr.includes("wrong-password-xyz"));
    });

    it("refuses a certificate it was not told to trust", async function () {
      const { caFile: _ca, ...untrusted } = access;
      const result = await runActionCommand("preflight", plan, untrusted, {
        [ACTION_ENV.password]: auth.password,
      });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /cannot check the mirror .*(self-signed|certificate)/i);
    });
  });
});

describe("ConformanceRun wait and collection through a real kubectl (fake API server)", function () {
  const e2eLog = "/tmp/results/e2e.log";
  const junit = "/tmp/results/junit_01.xml";
  const pod = (name: string) => JSON.parse(fixture(name)) as unknown;
  const mirror: MirrorAccess = { host: "127.0.0.1:1", scheme: "http" };
  let server: FakeApiServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  function planFor(fake: FakeApiServer, overrides: Partial<ConformanceRunInput> = {}) {
    return planConformanceRun(
      input({ kubeconfig: fake.kubeconfig, context: "fake", ...overrides }),
    );
  }

  it("detects the server version for kubernetesVersion auto", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      serverVersion: "v1.31.4+k3s1",
      pod: () => undefined,
      files: () => ({}),
    });
    assert.equal(
      await detectKubernetesVersion("kubectl", { kubeconfig: server.kubeconfig, context: "fake" }),
      "v1.31.4+k3s1",
    );
  });

  it("says auto cannot detect a version when no API server answers, naming the argument", async function () {
    const dir = mkdtempSync(path.join(labDir, "fake-api-"));
    server = await startFakeApiServer({ dir, pod: () => undefined, files: () => ({}) });
    const kubeconfig = server.kubeconfig;
    await server.close();
    server = undefined;
    await assert.rejects(
      detectKubernetesVersion("kubectl", { kubeconfig, context: "fake" }),
      /ConformanceRun: kubernetesVersion: "auto" could not detect the cluster's version .*refused/,
    );
  });

  it("waits, reports progress, downloads both files and reports the failures", async function () {
    let finished = false;
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: (n) => {
        if (n < 1) return pod("pod-creating.json");
        if (n < 3) return pod("pod-running.json");
        finished = true;
        return pod("pod-finished-exit-1.json");
      },
      files: (): Record<string, string> =>
        finished
          ? { [e2eLog]: fixture("e2e-failed.log"), [junit]: fixture("junit-failed.xml") }
          : { [e2eLog]: fixture("e2e-truncated.log") },
    });
    const plan = planFor(server);
    const result = await runActionCommand("run", plan, mirror);
    assert.equal(result.code, 1, "failed tests fail the up by default");
    assert.match(
      result.stderr,
      /conformance: pod e2e-conformance-1 scheduled, pulling images and starting containers after \d+s \(ContainerCreating\)/,
    );
    assert.match(result.stderr, /conformance: 3\/6 specs done \(50%\), 1 failed after \d+s/);
    assert.match(
      result.stderr,
      /conformance run failed; failed: \[sig-network\] Services should serve/,
    );
    // Each failure's message stands under its name.
    assert.match(
      result.stderr,
      /\[sig-network\] Services should serve a basic endpoint from pods {2}\[Conformance\]\n {4}pod "pod1" was not running: ErrImagePull/,
    );
    const report = parseReportOutput(result.stdout);
    const failures = [
      {
        name: "[sig-network] Services should serve a basic endpoint from pods  [Conformance]",
        state: "failed",
        message: 'pod "pod1" was not running: ErrImagePull',
      },
      {
        name: "[sig-apps] Deployment deployment should support rollover [Conformance]",
        state: "panicked",
        message: "Test Panicked\nruntime error: invalid memory address or nil pointer dereference",
      },
    ];
    assert.deepEqual(report, {
      verdict: "failed",
      passed: 4,
      failed: 2,
      skipped: 3,
      total: 9,
      durationSeconds: 335.804,
      failedTests: failures.map((failure) => failure.name),
      failures,
      suiteFailures: [],
      resultsDirectory: plan.resultsDirectory,
      conformanceImage: "10.0.0.5:5000/conformance:v1.31.4",
      exitCode: 1,
      e2eRunIds: ["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
    });
    // Every progress line, the startup one included, with its time.
    const progressLog = readFileSync(path.join(plan.resultsDirectory, "progress.log"), "utf8")
      .trimEnd()
      .split("\n");
    assert.ok(progressLog.length >= 2, progressLog.join("\n"));
    for (const line of progressLog) {
      assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z conformance: /);
    }
    assert.match(progressLog[0], /pulling images and starting containers/);
    assert.ok(progressLog.some((line) => / 3\/6 specs done \(50%\), 1 failed/.test(line)));
    assert.equal(
      readFileSync(path.join(plan.resultsDirectory, "e2e.log"), "utf8"),
      fixture("e2e-failed.log"),
    );
    assert.equal(
      readFileSync(path.join(plan.resultsDirectory, "junit_01.xml"), "utf8"),
      fixture("junit-failed.xml"),
    );
    assert.deepEqual(
      JSON.parse(readFileSync(path.join(plan.resultsDirectory, "report.json"), "utf8")),
      report,
    );
    assert.ok(
      server.requests.some((request) =>
        request.startsWith(
          "UPGRADE /api/v1/namespaces/conformance/pods/e2e-conformance-1/exec?command=cat&command=%2Ftmp%2Fresults%2Fjunit_01.xml&container=output-container",
        ),
      ),
    );
  });

  it("keeps the up green on failed tests when failOnTestFailures is false", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => pod("pod-finished-exit-1.json"),
      files: () => ({ [e2eLog]: fixture("e2e-failed.log"), [junit]: fixture("junit-failed.xml") }),
    });
    const result = await runActionCommand(
      "run",
      planFor(server, { failOnTestFailures: false }),
      mirror,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(parseReportOutput(result.stdout)?.verdict, "failed");
  });

  it("fails the up when no spec ran, unless failOnNoTests is false", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => pod("pod-finished.json"),
      files: () => ({ [e2eLog]: fixture("e2e-empty.log"), [junit]: fixture("junit-empty.xml") }),
    });
    const strict = await runActionCommand("run", planFor(server), mirror);
    assert.equal(strict.code, 1);
    assert.equal(parseReportOutput(strict.stdout)?.verdict, "no-tests");
    assert.match(strict.stderr, /conformance run no-tests .*no spec ran: check focus and skip/);
    const lenient = await runActionCommand(
      "run",
      planFor(server, { failOnNoTests: false }),
      mirror,
    );
    assert.equal(lenient.code, 0, lenient.stderr);
    assert.equal(parseReportOutput(lenient.stdout)?.verdict, "no-tests");
  });

  it("at the run's own timeout deletes the pod, keeps the partial log and junit, and every process's namespaces", async function () {
    const ids = ["1abf14f2-15f4-4804-9118-d08ee59b4c85", "5c2e7d0a-8b1f-4e3a-9c6d-0f1e2d3c4b5a"];
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => pod("pod-running.json"),
      files: () => ({
        [e2eLog]: fixture("e2e-v1.33-parallel-partial.log"),
        [junit]: fixture("junit-failed.xml"),
      }),
      namespaces: [
        { name: "services-5454", labels: { "e2e-run": ids[0] } },
        { name: "job-4136", labels: { "e2e-run": ids[1] } },
        { name: "pods-9999", labels: { "e2e-run": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" } },
      ],
    });
    const planned = planFor(server);
    // A limit of seconds (the config's unit is minutes) keeps the test short.
    const plan = { ...planned, timeouts: { ...planned.timeouts, runSeconds: 2 } };
    const result = await runActionCommand("run", plan, mirror);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(
        `the suite did not finish within 2s \\(timeoutMinutes\\); the run pod was deleted ` +
          `\\(e2e\\.log\\.partial and junit_01\\.xml\\.partial kept in ${plan.resultsDirectory}\\)`,
      ),
    );
    assert.deepEqual(server.deletedPods, ["conformance/e2e-conformance-1"]);
    assert.deepEqual(server.deletedNamespaces.sort(), ["job-4136", "services-5454"]);
    assert.equal(
      readFileSync(path.join(plan.resultsDirectory, "e2e.log.partial"), "utf8"),
      fixture("e2e-v1.33-parallel-partial.log"),
    );
    assert.equal(
      readFileSync(path.join(plan.resultsDirectory, "junit_01.xml.partial"), "utf8"),
      fixture("junit-failed.xml"),
    );
    assert.match(
      readFileSync(path.join(plan.resultsDirectory, "progress.log"), "utf8"),
      /conformance: 7\/8 specs done \(87%\), 1 failed, 1 flaky, 1 pending/,
    );
  });

  it("fails fast on ImagePullBackOff, naming the container and the image", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => pod("pod-image-pull-backoff.json"),
      files: () => ({}),
    });
    const started = Date.now();
    const result = await runActionCommand("run", planFor(server), mirror);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /conformance\/e2e-conformance-1: container conformance-container \(image 10\.0\.0\.5:5000\/conformance:v1\.31\.4\) is in ImagePullBackOff/,
    );
    assert.ok(Date.now() - started < 20000, "no waiting for a timeout");
    assert.equal(result.stdout, "");
  });

  it("reports a pod deleted mid-run, keeps the partial log and deletes the suite's namespaces", async function () {
    const e2eRunId = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: (n) => (n < 2 ? pod("pod-running.json") : undefined),
      files: () => ({ [e2eLog]: fixture("e2e-truncated.log") }),
      namespaces: [
        { name: "services-6520", labels: { "e2e-run": e2eRunId, "e2e-framework": "services" } },
        { name: "kube-system", labels: {} },
      ],
    });
    const plan = planFor(server);
    const result = await runActionCommand("run", plan, mirror);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(
        `the run pod was deleted mid-run \\(it no longer exists\\) \\(e2e\\.log\\.partial kept in ${plan.resultsDirectory}\\)`,
      ),
    );
    assert.equal(
      readFileSync(path.join(plan.resultsDirectory, "e2e.log.partial"), "utf8"),
      fixture("e2e-truncated.log"),
    );
    assert.ok(existsSync(path.join(plan.resultsDirectory, "pod.json")));
    assert.deepEqual(server.deletedNamespaces, ["services-6520"]);
  });

  it("reports an evicted pod with the kubelet's reason", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: (n) => (n < 1 ? pod("pod-running.json") : pod("pod-evicted.json")),
      files: () => ({ [e2eLog]: fixture("e2e-truncated.log") }),
    });
    const plan = planFor(server);
    const result = await runActionCommand("run", plan, mirror);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /the run pod was evicted: The node was low on resource: ephemeral-storage/,
    );
    assert.ok(existsSync(path.join(plan.resultsDirectory, "e2e.log.partial")));
  });

  it("rejects a junit file that is not XML, keeping it and the log", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => pod("pod-finished.json"),
      files: () => ({ [e2eLog]: fixture("e2e-passed.log"), [junit]: fixture("junit-cut.xml") }),
    });
    const plan = planFor(server);
    const result = await runActionCommand("run", plan, mirror);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${plan.resultsDirectory}/junit_01\\.xml: is not XML`));
    assert.ok(existsSync(path.join(plan.resultsDirectory, "e2e.log")));
    assert.ok(existsSync(path.join(plan.resultsDirectory, "junit_01.xml")));
  });

  it("fails clearly when the suite ended without writing junit_01.xml", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => pod("pod-finished-exit-1.json"),
      files: () => ({ [e2eLog]: fixture("e2e-truncated.log") }),
    });
    const result = await runActionCommand("run", planFor(server), mirror);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /the suite ended \(exit 1\) without a readable junit_01\.xml: .*exit code 1 \(e2e\.log kept in/,
    );
  });

  it("fails naming resultsDirectory when it cannot be written", async function () {
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => pod("pod-finished.json"),
      files: () => ({}),
    });
    // Below a regular file no one can create a directory, root included.
    const file = path.join(mkdtempSync(path.join(labDir, "results-")), "a-file");
    writeFileSync(file, "");
    const plan = { ...planFor(server), resultsDirectory: path.join(file, "lab", "1") };
    const result = await runActionCommand("run", plan, mirror);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^resultsDirectory: cannot write .*a-file\/lab\/1: ENOTDIR/m);
  });

  it("cleans up the namespaces of every Ginkgo process on destroy, from the previous report", async function () {
    const e2eRunIds = [
      "7d9e2f61-0c3b-4b8e-9a5d-2e6f1c0b9a87",
      "5c2e7d0a-8b1f-4e3a-9c6d-0f1e2d3c4b5a",
    ];
    server = await startFakeApiServer({
      dir: mkdtempSync(path.join(labDir, "fake-api-")),
      pod: () => undefined,
      files: () => ({}),
      namespaces: [
        { name: "pods-1234", labels: { "e2e-run": e2eRunIds[0] } },
        { name: "secrets-42", labels: { "e2e-run": e2eRunIds[1] } },
        { name: "pods-9999", labels: { "e2e-run": "another-run" } },
      ],
    });
    const plan = planFor(server);
    const previous = formatReportLine({
      verdict: "passed",
      passed: 3,
      failed: 0,
      skipped: 2,
      total: 5,
      durationSeconds: 21.9,
      failedTests: [],
      failures: [],
      suiteFailures: [],
      resultsDirectory: plan.resultsDirectory,
      conformanceImage: plan.conformanceImage.mirrorReference,
      exitCode: 0,
      e2eRunIds,
    });
    const result = await runActionCommand("cleanup", plan, mirror, {
      PULUMI_COMMAND_STDOUT: `${previous}\n`,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(server.deletedNamespaces.sort(), ["pods-1234", "secrets-42"]);
  });
});
