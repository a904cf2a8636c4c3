import assert from "node:assert/strict";
import { ConfigMap, Namespace, Pod, Secret, ServiceAccount } from "kubernetes-models/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { parse } from "yaml";
import {
  withSpecPodName,
  argumentSeparator,
  conformanceEnvironment,
  conformanceObjects,
  dockerConfigJson,
  planConformanceRun,
  type ConformanceObjects,
} from "../../../core/conformance";
import { renderRepoList } from "../../../core/images";
import { baseInput } from "./helpers";

const repoList = renderRepoList({ mirrorHost: "10.0.0.5:5000" });
const dockerConfig = dockerConfigJson("10.0.0.5:5000", "mirror", "s3cret");

function validateAll(objects: ConformanceObjects<string>): void {
  // Each constructor's validate() checks against the Kubernetes 1.27 OpenAPI schema.
  new Namespace(objects.namespace).validate();
  new ServiceAccount(objects.serviceAccount).validate();
  new ClusterRole(objects.clusterRole).validate();
  new ClusterRoleBinding(objects.clusterRoleBinding).validate();
  new ConfigMap(objects.repoListConfigMap).validate();
  if (objects.pullSecret) new Secret(objects.pullSecret).validate();
  new Pod(objects.pod).validate();
}

describe("conformance objects", function () {
  const plain = conformanceObjects(planConformanceRun(baseInput()), { repoList });
  const authenticated = conformanceObjects(
    planConformanceRun(
      baseInput({
        mirror: { endpoint: "10.0.0.5:5000", authenticated: true },
        parallelism: 4,
        dryRun: true,
        verbosity: 4,
        extraArgs: ["--allowed-not-ready-nodes=1"],
        ginkgoArgs: ["--flake-attempts=2"],
        tolerations: [{ key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" }],
        runId: "7",
      }),
    ),
    { repoList, dockerConfigJson: dockerConfig },
  );

  it("validates against the Kubernetes OpenAPI schema, with and without a pull secret", function () {
    validateAll(plain);
    validateAll(authenticated);
    assert.equal(plain.pullSecret, undefined);
    assert.ok(authenticated.pullSecret);
  });

  it("the schema validation really rejects a broken pod (the check can fail)", function () {
    const broken = structuredClone(plain.pod) as unknown as {
      spec: { containers: Array<{ securityContext: { runAsUser: unknown } }> };
    };
    broken.spec.containers[0].securityContext.runAsUser = "nobody";
    assert.throws(() => new Pod(broken as never).validate(), /runAsUser must be integer/);
  });

  it("meets Pod Security 'restricted' in every container and labels the namespace for it", function () {
    const spec = plain.pod.spec;
    assert.deepEqual(spec.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65534,
      runAsGroup: 65534,
      seccompProfile: { type: "RuntimeDefault" },
    });
    for (const container of spec.containers) {
      assert.deepEqual(container.securityContext, {
        runAsNonRoot: true,
        runAsUser: 65534,
        runAsGroup: 65534,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
    }
    // restricted allows only these volume types
    for (const volume of spec.volumes) {
      assert.ok(
        ["emptyDir", "configMap", "secret"].some((type) => type in volume),
        volume.name,
      );
    }
    assert.equal(
      plain.namespace.metadata.labels?.["pod-security.kubernetes.io/enforce"],
      "restricted",
    );
    assert.equal(plain.namespace.metadata.name, "conformance");
  });

  it("pulls both containers from the mirror and keeps the pod alive for the results", function () {
    const [suite, output] = plain.pod.spec.containers;
    assert.equal(suite.name, "conformance-container");
    assert.equal(suite.image, "10.0.0.5:5000/conformance:v1.31.4");
    assert.equal(output.name, "output-container");
    assert.equal(output.image, "10.0.0.5:5000/e2e-test-images/busybox:1.36.1-1");
    assert.deepEqual(output.command, ["sh", "-c", "sleep infinity"]);
    assert.deepEqual(output.volumeMounts, [{ name: "output-volume", mountPath: "/tmp/results" }]);
    assert.equal(plain.pod.spec.restartPolicy, "Never");
    assert.equal(plain.pod.metadata.annotations?.["pulumi.com/skipAwait"], "true");
    assert.deepEqual(plain.pod.spec.tolerations, [{ operator: "Exists" }]);
    assert.equal(plain.pod.spec.imagePullSecrets, undefined);
  });

  it("gives the suite the go-runner's environment and mounts the repo list", function () {
    const [suite] = plain.pod.spec.containers;
    assert.deepEqual(suite.env, [
      { name: "E2E_FOCUS", value: "\\[Conformance\\]" },
      { name: "E2E_SKIP", value: "" },
      { name: "E2E_PROVIDER", value: "skeleton" },
      { name: "E2E_USE_GO_RUNNER", value: "true" },
      { name: "RESULTS_DIR", value: "/tmp/results" },
      { name: "KUBE_TEST_REPO_LIST", value: "/tmp/repo-list/repo-list.yaml" },
      { name: "E2E_EXTRA_GINKGO_ARGS", value: "--timeout=20700s" },
    ]);
    assert.deepEqual(suite.volumeMounts, [
      { name: "output-volume", mountPath: "/tmp/results" },
      { name: "repo-list", mountPath: "/tmp/repo-list", readOnly: true },
    ]);
    assert.deepEqual(plain.pod.spec.volumes, [
      { name: "output-volume", emptyDir: {} },
      { name: "repo-list", configMap: { name: "repo-list-config" } },
    ]);
    assert.equal(plain.repoListConfigMap.data["repo-list.yaml"], repoList);
    assert.equal(
      parse(plain.repoListConfigMap.data["repo-list.yaml"]).promoterE2eRegistry,
      "10.0.0.5:5000/e2e-test-images",
    );
  });

  it("passes parallelism, dry run, verbosity, extra flags and the docker config", function () {
    const [suite] = authenticated.pod.spec.containers;
    const env = Object.fromEntries((suite.env ?? []).map((entry) => [entry.name, entry.value]));
    assert.equal(
      env.E2E_EXTRA_ARGS,
      "--v=4 --e2e-docker-config-file=/tmp/docker-config/config.json --allowed-not-ready-nodes=1",
    );
    // The suite's own timeout comes from timeoutMinutes (default 360: 345 minutes).
    assert.equal(env.E2E_EXTRA_GINKGO_ARGS, "--procs=4 --timeout=20700s --flake-attempts=2");
    assert.equal(env.E2E_DRYRUN, "true");
    assert.equal(env.E2E_EXTRA_ARGS_SEP, undefined);
    assert.ok(
      suite.volumeMounts.some(
        (mount) => mount.name === "docker-config" && mount.mountPath === "/tmp/docker-config",
      ),
    );
    assert.deepEqual(
      authenticated.pod.spec.volumes.find((volume) => volume.name === "docker-config"),
      {
        name: "docker-config",
        secret: {
          secretName: "conformance-mirror-pull",
          items: [{ key: ".dockerconfigjson", path: "config.json" }],
        },
      },
    );
    assert.deepEqual(authenticated.pod.spec.imagePullSecrets, [
      { name: "conformance-mirror-pull" },
    ]);
    assert.deepEqual(authenticated.pod.spec.tolerations, [
      { key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" },
    ]);
    assert.equal(authenticated.pod.metadata.name, "e2e-conformance-7");
    assert.equal(authenticated.pullSecret?.type, "kubernetes.io/dockerconfigjson");
    assert.equal(authenticated.pullSecret?.stringData[".dockerconfigjson"], dockerConfig);
  });

  it("names the pod after its spec: a new focus, skip or image is a new name, the same spec the same", function () {
    const named = (overrides: Parameters<typeof baseInput>[0]) =>
      withSpecPodName(planConformanceRun(baseInput(overrides))).podName;
    const first = named({});
    assert.match(first, /^e2e-conformance-1-[0-9a-f]{8}$/);
    assert.equal(named({}), first, "deterministic");
    const changed = [
      named({ focus: "\\[sig-network\\].*\\[Conformance\\]" }),
      named({ skip: "Serial" }),
      named({ conformanceImage: "registry.k8s.io/conformance:v1.31.5" }),
      named({ parallelism: 4 }),
    ];
    assert.equal(new Set([first, ...changed]).size, 5, changed.join(", "));
    // The plan's other names are untouched, and the longest run id still gives a valid name.
    const longest = withSpecPodName(planConformanceRun(baseInput({ runId: "a".repeat(38) })));
    assert.ok(longest.podName.length <= 63, longest.podName);
    new Pod(conformanceObjects(longest, { repoList: "" }).pod).validate();
    assert.throws(
      () => planConformanceRun(baseInput({ runId: "a".repeat(39) })),
      /runId: .*at most 38 characters/,
    );
  });

  it("does not set E2E_DRYRUN at all unless dry-running (the go-runner treats any value as true)", function () {
    const env = conformanceEnvironment(planConformanceRun(baseInput({ dryRun: false })));
    assert.ok(!env.some((entry) => entry.name === "E2E_DRYRUN"));
  });

  it("switches the argument separator when an argument holds a space", function () {
    const env = conformanceEnvironment(
      planConformanceRun(baseInput({ extraArgs: ["--node-os-distro=debian 12"] })),
    );
    const byName = Object.fromEntries(env.map((entry) => [entry.name, entry.value]));
    assert.equal(byName.E2E_EXTRA_ARGS_SEP, "|");
    assert.equal(byName.E2E_EXTRA_ARGS, "--node-os-distro=debian 12");
    assert.equal(argumentSeparator(["a b", "c|d", "e;f", "g,h"]), "\u001f");
  });

  it("grants the suite's service account everything, as the suite needs", function () {
    assert.deepEqual(plain.clusterRole.rules, [
      { apiGroups: ["*"], resources: ["*"], verbs: ["*"] },
      { nonResourceURLs: ["/metrics", "/logs", "/logs/*"], verbs: ["get"] },
    ]);
    assert.deepEqual(plain.clusterRoleBinding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "conformance-serviceaccount:conformance",
    });
    assert.deepEqual(plain.clusterRoleBinding.subjects, [
      { kind: "ServiceAccount", name: "conformance-serviceaccount", namespace: "conformance" },
    ]);
    assert.equal(plain.pod.spec.serviceAccountName, "conformance-serviceaccount");
  });

  it("writes a docker config kubelet and e2e.test understand", function () {
    const parsed = JSON.parse(dockerConfig);
    assert.deepEqual(parsed, {
      auths: {
        "10.0.0.5:5000": {
          username: "mirror",
          password: "s3cret",
          auth: Buffer.from("mirror:s3cret").toString("base64"),
        },
      },
    });
  });
});
