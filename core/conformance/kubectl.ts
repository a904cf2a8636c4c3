/**
 * kubectl command lines of the actions, built here so they are tested as data; the actions only
 * spawn them (no shell, so nothing is ever interpolated). Pure.
 */

import { ConformanceArgsError } from "./errors";
import { OUTPUT_CONTAINER, RESULTS_MOUNT } from "./objects";

export interface KubectlTarget {
  readonly kubeconfig: string;
  readonly context?: string;
}

function connection(target: KubectlTarget): string[] {
  return [
    "--kubeconfig",
    target.kubeconfig,
    ...(target.context === undefined ? [] : ["--context", target.context]),
  ];
}

/** `kubectl version -o json`: the server version for `kubernetesVersion: auto`. */
export function kubectlVersionArgs(target: KubectlTarget): string[] {
  return [...connection(target), "version", "-o", "json", "--request-timeout=20s"];
}

/** The pod as JSON, or nothing at all when it does not exist. */
export function getPodArgs(target: KubectlTarget, namespace: string, pod: string): string[] {
  return [
    ...connection(target),
    "get",
    "pod",
    pod,
    "--namespace",
    namespace,
    "--output",
    "json",
    "--ignore-not-found",
    "--request-timeout=30s",
  ];
}

/** `cat` of one results file in the output container (the suite's container may be gone). */
export function readResultArgs(
  target: KubectlTarget,
  namespace: string,
  pod: string,
  file: string,
): string[] {
  if (!/^[A-Za-z0-9_.-]+$/.test(file)) throw new Error(`not a results file name: ${file}`);
  return [
    ...connection(target),
    "exec",
    pod,
    "--namespace",
    namespace,
    "--container",
    OUTPUT_CONTAINER,
    "--",
    "cat",
    `${RESULTS_MOUNT}/${file}`,
  ];
}

/**
 * Deletes the namespaces the suite created, across all its Ginkgo processes: the framework
 * labels each namespace `e2e-run=<id>` with the id of the process that made it.
 */
export function deleteSuiteNamespacesArgs(
  target: KubectlTarget,
  e2eRunIds: readonly string[],
): string[] {
  if (e2eRunIds.length === 0) throw new Error("no e2e run id to delete namespaces for");
  for (const id of e2eRunIds) {
    if (!/^[0-9a-f-]+$/.test(id)) throw new Error(`not an e2e run id: ${id}`);
  }
  return [
    ...connection(target),
    "delete",
    "namespaces",
    "--selector",
    e2eRunIds.length === 1 ? `e2e-run=${e2eRunIds[0]}` : `e2e-run in (${e2eRunIds.join(",")})`,
    "--ignore-not-found",
    "--wait=false",
  ];
}

/** Deletes the run pod without waiting (the run's own timeout has passed). */
export function deletePodArgs(target: KubectlTarget, namespace: string, pod: string): string[] {
  return [
    ...connection(target),
    "delete",
    "pod",
    pod,
    "--namespace",
    namespace,
    "--ignore-not-found",
    "--wait=false",
    "--request-timeout=30s",
  ];
}

/**
 * The server's version from `kubectl version -o json`, e.g. "v1.31.4+k3s1".
 *
 * @throws ConformanceArgsError naming kubernetesVersion when the output has no server version.
 */
export function serverVersionFrom(output: string, detail = ""): string {
  let parsed: { serverVersion?: { gitVersion?: string } } | undefined;
  try {
    parsed = JSON.parse(output) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  const gitVersion = parsed?.serverVersion?.gitVersion;
  if (typeof gitVersion !== "string" || gitVersion === "") {
    throw new ConformanceArgsError(
      "kubernetesVersion",
      `"auto" could not detect the cluster's version (kubectl version reached no API server` +
        `${detail ? `: ${detail}` : ""}); check kubeconfig/context or set kubernetesVersion, e.g. "1.31.4"`,
    );
  }
  return gitVersion;
}
