import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConformanceArgsError,
  DEFAULT_FOCUS,
  assertGoRegex,
  planConformanceRun,
  suiteTimeoutSeconds,
} from "../../../core/conformance";
import { catalogForKubernetesVersion } from "../../../core/images";
import { baseInput } from "./helpers";

function argError(arg: string, message: RegExp) {
  return (error: unknown) =>
    error instanceof ConformanceArgsError && error.arg === arg && message.test(error.message);
}

describe("planConformanceRun", function () {
  it("drops prerelease and build suffixes and names the conformance image in the mirror", function () {
    const plan = planConformanceRun(baseInput({ kubernetesVersion: "v1.31.4+k3s1" }));
    assert.equal(plan.kubernetesVersion, "v1.31.4");
    assert.deepEqual(plan.conformanceImage, {
      source: "registry.k8s.io/conformance:v1.31.4",
      mirrorReference: "10.0.0.5:5000/conformance:v1.31.4",
      mirrorPath: "conformance",
      reference: "v1.31.4",
    });
    assert.equal(
      plan.resultsImage.mirrorReference,
      "10.0.0.5:5000/e2e-test-images/busybox:1.36.1-1",
    );
    assert.equal(
      planConformanceRun(baseInput({ kubernetesVersion: "1.31.2-rc.1" })).conformanceImage
        .mirrorReference,
      "10.0.0.5:5000/conformance:v1.31.2",
    );
  });

  it("places images under the mirror's upstream prefixes", function () {
    const plan = planConformanceRun(
      baseInput({
        mirror: {
          endpoint: "mirror.lab:5443",
          upstreamPrefixes: { "registry.k8s.io": "k8s" },
          authenticated: false,
        },
      }),
    );
    assert.equal(plan.conformanceImage.mirrorReference, "mirror.lab:5443/k8s/conformance:v1.31.4");
    assert.equal(plan.conformanceImage.mirrorPath, "k8s/conformance");
  });

  it("checks every catalog image of the version plus the runner's own, and none unmirrorable", function () {
    const plan = planConformanceRun(
      baseInput({ extraImages: ["quay.io/metallb/speaker:v0.14.8"] }),
    );
    const sources = plan.images.map((image) => image.source);
    const catalog = catalogForKubernetesVersion("1.31");
    for (const reference of catalog.images) {
      const canonical = `${reference.registry}/${reference.repository}:${reference.tag}`;
      if (canonical.startsWith("invalid.") || canonical.startsWith("gcr.io/")) {
        assert.ok(!sources.includes(canonical), canonical);
        assert.ok(plan.unmirrorable.includes(canonical), canonical);
      } else {
        assert.ok(sources.includes(canonical), `${canonical} is checked`);
      }
    }
    assert.ok(sources.includes("registry.k8s.io/conformance:v1.31.4"));
    assert.ok(sources.includes("quay.io/metallb/speaker:v0.14.8"));
    assert.deepEqual(sources, [...sources].sort());
    for (const image of plan.images) assert.ok(image.mirrorReference.startsWith("10.0.0.5:5000/"));
  });

  it("has hydrophone's names and safe defaults", function () {
    const plan = planConformanceRun(baseInput());
    assert.equal(plan.namespace, "conformance");
    assert.equal(plan.podName, "e2e-conformance-1");
    assert.equal(plan.serviceAccountName, "conformance-serviceaccount");
    assert.equal(plan.clusterRoleName, "conformance-serviceaccount:conformance");
    assert.equal(plan.clusterRoleBindingName, "conformance-serviceaccount-role:conformance");
    assert.equal(plan.focus, DEFAULT_FOCUS);
    assert.equal(plan.skip, "");
    assert.equal(plan.parallelism, 1);
    assert.equal(plan.dryRun, false);
    assert.equal(plan.pullSecretName, undefined);
    assert.deepEqual(plan.tolerations, [{ operator: "Exists" }]);
    assert.equal(plan.resultsDirectory, "/var/lib/conformance/lab/1");
    assert.deepEqual(plan.timeouts, {
      runSeconds: 360 * 60,
      suiteSeconds: 345 * 60,
      startupSeconds: 600,
      progressSeconds: 30,
      pollSeconds: 10,
    });
    assert.equal(plan.failOnTestFailures, true);
    assert.equal(plan.failOnNoTests, true);
  });

  it("checks the images the conformance image's e2e.test listed, not the shipped list, with no provenance warnings", function () {
    const e2eImages = [
      "registry.k8s.io/etcd:3.5.21-0",
      "registry.k8s.io/e2e-test-images/agnhost:2.53",
    ];
    // 1.34 has no shipped list: the suite's own list is enough.
    const plan = planConformanceRun(baseInput({ kubernetesVersion: "1.34.1", e2eImages }));
    assert.deepEqual(plan.images.map((image) => image.source).sort(), [
      "registry.k8s.io/conformance:v1.34.1",
      "registry.k8s.io/e2e-test-images/agnhost:2.53",
      "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
      "registry.k8s.io/etcd:3.5.21-0",
    ]);
    assert.deepEqual(plan.warnings, []);
    // The shipped list, when it stands in, brings no caveat text to the preview either.
    assert.deepEqual(planConformanceRun(baseInput({ kubernetesVersion: "1.33.4" })).warnings, []);
  });

  it("gives the suite a ginkgo timeout that ends it before the run's own limit", function () {
    // 5% margin, at least 2 and at most 15 minutes, never below half the limit.
    assert.equal(suiteTimeoutSeconds(60 * 60), 57 * 60);
    assert.equal(suiteTimeoutSeconds(10 * 60), 8 * 60);
    assert.equal(suiteTimeoutSeconds(24 * 60 * 60), 24 * 60 * 60 - 15 * 60);
    assert.equal(suiteTimeoutSeconds(60), 30);
    const plan = planConformanceRun(baseInput({ timeoutMinutes: 120 }));
    assert.equal(plan.timeouts.suiteSeconds, 114 * 60);
    assert.ok(plan.timeouts.suiteSeconds < plan.timeouts.runSeconds);
  });

  it("puts the run id into the pod name and the results directory", function () {
    const plan = planConformanceRun(baseInput({ runId: "2024-08-20" }));
    assert.equal(plan.podName, "e2e-conformance-2024-08-20");
    assert.equal(plan.resultsDirectory, "/var/lib/conformance/lab/2024-08-20");
  });

  it("passes the docker config to the suite for an authenticated mirror on 1.27+, warns before", function () {
    const auth = { endpoint: "10.0.0.5:5000", authenticated: true };
    const recent = planConformanceRun(baseInput({ mirror: auth }));
    assert.equal(recent.pullSecretName, "conformance-mirror-pull");
    assert.equal(recent.passDockerConfigToSuite, true);
    assert.ok(!recent.warnings.some((warning) => warning.includes("docker-config")));
    const old = planConformanceRun(
      baseInput({
        mirror: auth,
        kubernetesVersion: "1.26.3",
        imageListFiles: [{ name: "k126.txt", text: "registry.k8s.io/pause:3.9\n" }],
      }),
    );
    assert.equal(old.pullSecretName, "conformance-mirror-pull");
    assert.equal(old.passDockerConfigToSuite, false);
    assert.ok(old.warnings.some((warning) => warning.includes("--e2e-docker-config-file")));
  });

  it("takes the suite's list from a file for a version the catalog does not have", function () {
    const plan = planConformanceRun(
      baseInput({
        kubernetesVersion: "1.30.5",
        imageListFiles: [
          { name: "e2e-1.30.txt", text: "registry.k8s.io/e2e-test-images/agnhost:2.47\n" },
        ],
      }),
    );
    assert.deepEqual(
      plan.images.map((image) => image.source),
      [
        "registry.k8s.io/conformance:v1.30.5",
        "registry.k8s.io/e2e-test-images/agnhost:2.47",
        "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
      ],
    );
  });

  describe("bad input names the argument", function () {
    const cases: Array<[string, Parameters<typeof baseInput>[0], string, RegExp]> = [
      [
        "unknown version",
        { kubernetesVersion: "1.29.1" },
        "kubernetesVersion",
        /no list for Kubernetes "1\.29\.1".*1\.31/,
      ],
      [
        "not a version",
        { kubernetesVersion: "latest" },
        "kubernetesVersion",
        /invalid Kubernetes version/,
      ],
      [
        "version without patch",
        { kubernetesVersion: "1.31" },
        "kubernetesVersion",
        /no patch number/,
      ],
      [
        "detected unknown version",
        { kubernetesVersion: "v1.29.0", kubernetesVersionSource: "kubernetesVersion (auto)" },
        "kubernetesVersion (auto)",
        /no list/,
      ],
      [
        "parallelism 0",
        { parallelism: 0 },
        "parallelism",
        /0 is not allowed; use an integer from 1/,
      ],
      ["parallelism fraction", { parallelism: 1.5 }, "parallelism", /1\.5 is not allowed/],
      [
        "focus with a lookahead",
        { focus: "\\[Conformance\\](?!.*Serial)" },
        "focus",
        /lookahead.*RE2/,
      ],
      ["skip with a backreference", { skip: "(a)\\1" }, "skip", /backreferences/],
      [
        "focus that does not compile",
        { focus: "[Conformance" },
        "focus",
        /not a valid regular expression/,
      ],
      ["run id with capitals", { runId: "Run_2" }, "runId", /lowercase letters/],
      ["namespace too long", { namespace: "n".repeat(64) }, "namespace", /not a namespace name/],
      ["verbosity 11", { verbosity: 11 }, "verbosity", /0 to 10/],
      [
        "a managed ginkgo flag",
        { ginkgoArgs: ["--focus=x"] },
        "ginkgoArgs[0]",
        /use focus instead/,
      ],
      [
        "ginkgo timeout given as a flag",
        { ginkgoArgs: ["--timeout=24h"] },
        "ginkgoArgs[0]",
        /--timeout is set by the run itself; use timeoutMinutes instead/,
      ],
      [
        "a managed e2e flag",
        { extraArgs: ["--provider=gce"] },
        "extraArgs[0]",
        /--provider is set by the run/,
      ],
      ["not a flag", { extraArgs: ["allowed-not-ready-nodes=1"] }, "extraArgs[0]", /is not a flag/],
      [
        "bad toleration",
        { tolerations: [{ operator: "Exists", value: "x" }] },
        "tolerations[0]",
        /takes no value/,
      ],
      [
        "mirror host with a scheme",
        { mirror: { endpoint: "http://10.0.0.5:5000", authenticated: false } },
        "mirror",
        /without a scheme/,
      ],
      [
        "conformance image not a reference",
        { conformanceImage: "Registry/UPPER:1" },
        "conformanceImage",
        /invalid image reference/,
      ],
      ["timeout 0", { timeoutMinutes: 0 }, "timeoutMinutes", /from 1 to/],
      [
        "bad list file",
        {
          kubernetesVersion: "1.30.5",
          imageListFiles: [{ name: "bad.txt", text: "not an image!\n" }],
        },
        "imageListFiles",
        /bad\.txt/,
      ],
    ];
    for (const [title, overrides, arg, message] of cases) {
      it(title, function () {
        assert.throws(() => planConformanceRun(baseInput(overrides)), argError(arg, message));
      });
    }
  });

  it("accepts every run id it documents and keeps the pod name a valid DNS label", function () {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,45}[a-z0-9])?$/), (runId) => {
        const plan = planConformanceRun(baseInput({ runId, kubernetesVersion: "1.31.0" }));
        assert.ok(plan.podName.length <= 63);
        assert.match(plan.podName, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      }),
      { numRuns: 25 },
    );
  });
});

describe("assertGoRegex", function () {
  it("accepts what Go and JavaScript both compile, including Go's leading flags and (?P<name>)", function () {
    for (const pattern of [
      "",
      DEFAULT_FOCUS,
      "\\[sig-(network|storage)\\].*\\[Conformance\\]",
      "(?i)conformance",
      "(?P<sig>\\[sig-[a-z-]+\\])",
      "\\(\\?=literal",
    ]) {
      assertGoRegex("focus", pattern);
    }
  });

  it("rejects lookbehind and named backreferences", function () {
    assert.throws(() => assertGoRegex("skip", "(?<=Serial)x"), /skip: .*lookahead\/lookbehind/);
    assert.throws(() => assertGoRegex("skip", "(?<a>x)\\k<a>"), /skip: .*named backreferences/);
  });

  it("never accepts a pattern JavaScript cannot compile", function () {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (pattern) => {
        let compiles = true;
        try {
          new RegExp(pattern);
        } catch {
          compiles = false;
        }
        if (!compiles && !/^\(\?[imsU]+\)|\(\?P</.test(pattern)) {
          assert.throws(() => assertGoRegex("focus", pattern), ConformanceArgsError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
