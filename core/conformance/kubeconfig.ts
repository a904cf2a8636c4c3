/**
 * Checks a kubeconfig before anything is declared: the file is YAML, the context exists and
 * points at a cluster and a user the file defines. Pure: takes the file's text.
 */

import { parse } from "yaml";
import { ConformanceArgsError } from "./errors";

interface Named<T> {
  name?: string;
  context?: T;
}
interface KubeconfigDocument {
  contexts?: Array<Named<{ cluster?: string; user?: string }>>;
  clusters?: Array<{ name?: string }>;
  users?: Array<{ name?: string }>;
  "current-context"?: string;
}

/**
 * The context kubectl will use: `context` if given, else the file's current-context.
 *
 * @throws ConformanceArgsError naming `kubeconfig` or `context`.
 */
export function resolveKubeContext(text: string, file: string, context?: string): string {
  let document: KubeconfigDocument;
  try {
    document = parse(text) as KubeconfigDocument;
  } catch (error) {
    throw new ConformanceArgsError(
      "kubeconfig",
      `${file} is not YAML (${(error as Error).message.split("\n")[0]})`,
    );
  }
  if (document === null || typeof document !== "object" || !Array.isArray(document.contexts)) {
    throw new ConformanceArgsError(
      "kubeconfig",
      `${file} is not a kubeconfig: it has no contexts list`,
    );
  }
  const names = document.contexts.map((entry) => entry.name).filter((name) => name !== undefined);
  const chosen = context ?? document["current-context"];
  if (chosen === undefined || chosen === "") {
    throw new ConformanceArgsError(
      "context",
      `${file} has no current-context; set context to one of: ${names.join(", ") || "(none)"}`,
    );
  }
  const entry = document.contexts.find((candidate) => candidate.name === chosen);
  if (entry === undefined) {
    throw new ConformanceArgsError(
      context === undefined ? "kubeconfig" : "context",
      `context ${JSON.stringify(chosen)} is not in ${file}; it has: ${names.join(", ") || "(none)"}`,
    );
  }
  const cluster = entry.context?.cluster;
  if (!cluster || !(document.clusters ?? []).some((candidate) => candidate.name === cluster)) {
    throw new ConformanceArgsError(
      context === undefined ? "kubeconfig" : "context",
      `context ${JSON.stringify(chosen)} in ${file} names cluster ${JSON.stringify(cluster ?? "")}, which the file does not define`,
    );
  }
  return chosen;
}
