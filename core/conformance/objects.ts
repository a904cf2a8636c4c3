import { createHash } from "node:crypto";
/**
 * The Kubernetes objects of a run, as plain manifests. The component declares exactly these with
 * @pulumi/kubernetes; the tests validate them against the Kubernetes OpenAPI schema.
 *
 * Values that may be secret or not yet known (the repo list, the docker config) are a type
 * parameter, so the component can pass Pulumi Outputs through unchanged. Pure.
 */

import type { ConformanceRunPlan, Toleration } from "./plan";

/** Where the go-runner writes e2e.log and junit_01.xml (the image's RESULTS_DIR). */
export const RESULTS_MOUNT = "/tmp/results";
export const REPO_LIST_MOUNT = "/tmp/repo-list";
export const REPO_LIST_KEY = "repo-list.yaml";
export const DOCKER_CONFIG_MOUNT = "/tmp/docker-config";
export const DOCKER_CONFIG_FILE = "config.json";
export const CONFORMANCE_CONTAINER = "conformance-container";
export const OUTPUT_CONTAINER = "output-container";
/** The user PSA "restricted" runs as: nobody, as hydrophone does (hydrophone#217). */
export const RUN_AS_USER = 65534;

/** Labels of every object. The run id is on the pod only, so a new run touches nothing else. */
const managedLabels = () => ({
  "app.kubernetes.io/name": "conformance",
  "app.kubernetes.io/managed-by": "pulumi",
});

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface EnvVar {
  name: string;
  value: string;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}

export interface ContainerSecurityContext {
  runAsNonRoot: true;
  runAsUser: number;
  runAsGroup: number;
  allowPrivilegeEscalation: false;
  capabilities: { drop: ["ALL"] };
  seccompProfile: { type: "RuntimeDefault" };
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy: "IfNotPresent";
  command?: string[];
  env?: EnvVar[];
  volumeMounts: VolumeMount[];
  securityContext: ContainerSecurityContext;
}

export type Volume =
  | { name: string; emptyDir: Record<string, never> }
  | { name: string; configMap: { name: string } }
  | {
      name: string;
      secret: { secretName: string; items: Array<{ key: string; path: string }> };
    };

export interface PodManifest {
  apiVersion: "v1";
  kind: "Pod";
  metadata: ObjectMeta;
  spec: {
    serviceAccountName: string;
    restartPolicy: "Never";
    tolerations: Toleration[];
    securityContext: {
      runAsNonRoot: true;
      runAsUser: number;
      runAsGroup: number;
      seccompProfile: { type: "RuntimeDefault" };
    };
    imagePullSecrets?: Array<{ name: string }>;
    containers: Container[];
    volumes: Volume[];
  };
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}

export interface ConformanceObjects<T> {
  namespace: { apiVersion: "v1"; kind: "Namespace"; metadata: ObjectMeta };
  serviceAccount: { apiVersion: "v1"; kind: "ServiceAccount"; metadata: ObjectMeta };
  clusterRole: {
    apiVersion: "rbac.authorization.k8s.io/v1";
    kind: "ClusterRole";
    metadata: ObjectMeta;
    rules: PolicyRule[];
  };
  clusterRoleBinding: {
    apiVersion: "rbac.authorization.k8s.io/v1";
    kind: "ClusterRoleBinding";
    metadata: ObjectMeta;
    roleRef: { apiGroup: "rbac.authorization.k8s.io"; kind: "ClusterRole"; name: string };
    subjects: Array<{ kind: "ServiceAccount"; name: string; namespace: string }>;
  };
  repoListConfigMap: {
    apiVersion: "v1";
    kind: "ConfigMap";
    metadata: ObjectMeta;
    data: Record<string, T>;
  };
  /** Present when the mirror needs credentials. */
  pullSecret?: {
    apiVersion: "v1";
    kind: "Secret";
    metadata: ObjectMeta;
    type: "kubernetes.io/dockerconfigjson";
    stringData: Record<string, T>;
  };
  pod: PodManifest;
}

/** The docker config (`.dockerconfigjson`) that lets kubelet and e2e.test pull from the mirror. */
export function dockerConfigJson(registry: string, username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`).toString("base64");
  return JSON.stringify({ auths: { [registry]: { username, password, auth } } });
}

const restricted: ContainerSecurityContext = {
  runAsNonRoot: true,
  runAsUser: RUN_AS_USER,
  runAsGroup: RUN_AS_USER,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

/**
 * The go-runner splits E2E_EXTRA_ARGS and E2E_EXTRA_GINKGO_ARGS on E2E_EXTRA_ARGS_SEP (default
 * a space): pick a separator no argument contains, so an argument with spaces stays one.
 */
export function argumentSeparator(args: readonly string[]): string {
  for (const candidate of [" ", "|", ";", ",", "\u001f"]) {
    if (!args.some((arg) => arg.includes(candidate))) return candidate;
  }
  return "\u001e";
}

/** The conformance container's environment, in the go-runner's terms. */
export function conformanceEnvironment(plan: ConformanceRunPlan): EnvVar[] {
  const extraArgs = [
    ...(plan.verbosity === undefined ? [] : [`--v=${plan.verbosity}`]),
    ...(plan.passDockerConfigToSuite
      ? [`--e2e-docker-config-file=${DOCKER_CONFIG_MOUNT}/${DOCKER_CONFIG_FILE}`]
      : []),
    ...plan.extraArgs,
  ];
  const ginkgoArgs = [
    ...(plan.parallelism > 1 ? [`--procs=${plan.parallelism}`] : []),
    // After the image's own --timeout (24h), so this one wins: the suite ends itself in time.
    `--timeout=${plan.timeouts.suiteSeconds}s`,
    ...plan.ginkgoArgs,
  ];
  const separator = argumentSeparator([...extraArgs, ...ginkgoArgs]);
  const env: EnvVar[] = [
    { name: "E2E_FOCUS", value: plan.focus },
    { name: "E2E_SKIP", value: plan.skip },
    { name: "E2E_PROVIDER", value: "skeleton" },
    { name: "E2E_USE_GO_RUNNER", value: "true" },
    { name: "RESULTS_DIR", value: RESULTS_MOUNT },
    { name: "KUBE_TEST_REPO_LIST", value: `${REPO_LIST_MOUNT}/${REPO_LIST_KEY}` },
  ];
  if (extraArgs.length > 0) env.push({ name: "E2E_EXTRA_ARGS", value: extraArgs.join(separator) });
  if (ginkgoArgs.length > 0) {
    env.push({ name: "E2E_EXTRA_GINKGO_ARGS", value: ginkgoArgs.join(separator) });
  }
  if (separator !== " ") env.push({ name: "E2E_EXTRA_ARGS_SEP", value: separator });
  // The go-runner dry-runs when E2E_DRYRUN is set to anything, "false" included.
  if (plan.dryRun) env.push({ name: "E2E_DRYRUN", value: "true" });
  return env;
}

/** The run Pod: the suite and a container that keeps the results readable after it ends. */
export function conformancePod(plan: ConformanceRunPlan): PodManifest {
  const resultsMount: VolumeMount = { name: "output-volume", mountPath: RESULTS_MOUNT };
  const conformanceMounts: VolumeMount[] = [
    resultsMount,
    { name: "repo-list", mountPath: REPO_LIST_MOUNT, readOnly: true },
  ];
  const volumes: Volume[] = [
    { name: "output-volume", emptyDir: {} },
    { name: "repo-list", configMap: { name: plan.repoListConfigMapName } },
  ];
  if (plan.pullSecretName !== undefined && plan.passDockerConfigToSuite) {
    conformanceMounts.push({
      name: "docker-config",
      mountPath: DOCKER_CONFIG_MOUNT,
      readOnly: true,
    });
    volumes.push({
      name: "docker-config",
      secret: {
        secretName: plan.pullSecretName,
        items: [{ key: ".dockerconfigjson", path: DOCKER_CONFIG_FILE }],
      },
    });
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: plan.podName,
      namespace: plan.namespace,
      labels: { ...managedLabels(), "airgap-conformance/run-id": plan.runId },
      // Our action waits for the run (hours), not the provider's 10-minute Ready wait.
      annotations: { "pulumi.com/skipAwait": "true" },
    },
    spec: {
      serviceAccountName: plan.serviceAccountName,
      restartPolicy: "Never",
      tolerations: plan.tolerations.map((toleration) => ({ ...toleration })),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: RUN_AS_USER,
        runAsGroup: RUN_AS_USER,
        seccompProfile: { type: "RuntimeDefault" },
      },
      ...(plan.pullSecretName === undefined
        ? {}
        : { imagePullSecrets: [{ name: plan.pullSecretName }] }),
      containers: [
        {
          name: CONFORMANCE_CONTAINER,
          image: plan.conformanceImage.mirrorReference,
          imagePullPolicy: "IfNotPresent",
          env: conformanceEnvironment(plan),
          volumeMounts: conformanceMounts,
          securityContext: { ...restricted },
        },
        {
          name: OUTPUT_CONTAINER,
          image: plan.resultsImage.mirrorReference,
          imagePullPolicy: "IfNotPresent",
          command: ["sh", "-c", "sleep infinity"],
          volumeMounts: [resultsMount],
          securityContext: { ...restricted },
        },
      ],
      volumes,
    },
  };
}

/** Every object of a run. */
export function conformanceObjects<T>(
  plan: ConformanceRunPlan,
  values: { repoList: T; dockerConfigJson?: T },
): ConformanceObjects<T> {
  const labels = managedLabels();
  const { namespace } = plan;
  const objects: ConformanceObjects<T> = {
    namespace: {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: namespace,
        labels: {
          ...labels,
          // The runner pod meets "restricted"; enforcing it proves that on every run.
          "pod-security.kubernetes.io/enforce": "restricted",
          "pod-security.kubernetes.io/enforce-version": "latest",
          "pod-security.kubernetes.io/warn": "restricted",
          "pod-security.kubernetes.io/audit": "restricted",
        },
      },
    },
    serviceAccount: {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: plan.serviceAccountName, namespace, labels },
    },
    clusterRole: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: plan.clusterRoleName, labels },
      // The suite creates and inspects objects of every kind across the cluster.
      rules: [
        { apiGroups: ["*"], resources: ["*"], verbs: ["*"] },
        { nonResourceURLs: ["/metrics", "/logs", "/logs/*"], verbs: ["get"] },
      ],
    },
    clusterRoleBinding: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: plan.clusterRoleBindingName, labels },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: plan.clusterRoleName,
      },
      subjects: [{ kind: "ServiceAccount", name: plan.serviceAccountName, namespace }],
    },
    repoListConfigMap: {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: plan.repoListConfigMapName, namespace, labels },
      data: { [REPO_LIST_KEY]: values.repoList },
    },
    pod: conformancePod(plan),
  };
  if (plan.pullSecretName !== undefined) {
    if (values.dockerConfigJson === undefined) {
      throw new Error(
        "conformanceObjects: the plan has a pull secret but no docker config was given",
      );
    }
    objects.pullSecret = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: plan.pullSecretName, namespace, labels },
      type: "kubernetes.io/dockerconfigjson",
      stringData: { ".dockerconfigjson": values.dockerConfigJson },
    };
  }
  return objects;
}

/** Hex digits of the pod spec's hash in the pod name. */
export const POD_SPEC_HASH_LENGTH = 8;

/**
 * The plan with its pod named after the pod's spec (`e2e-conformance-<runId>-<hash>`). A Pod's
 * spec cannot be changed in place, so a new focus, skip or image replaces the pod; with
 * `pulumi.com/skipAwait` the delete returns at once, and a replacement under the same name would
 * meet the terminating pod (AlreadyExists). A name that changes with the spec never collides.
 */
export function withSpecPodName(plan: ConformanceRunPlan): ConformanceRunPlan {
  const { pod } = conformanceObjects(plan, { repoList: "", dockerConfigJson: "" });
  const hash = createHash("sha256")
    .update(JSON.stringify(pod.spec))
    .digest("hex")
    .slice(0, POD_SPEC_HASH_LENGTH);
  return { ...plan, podName: `${plan.podName}-${hash}` };
}
