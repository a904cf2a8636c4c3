/**
 * k3s/rke2 node options beyond the upstream mirrors, in the formats of the k3s documentation
 * (installation/private-registry, installation/registry-mirror, installation/airgap):
 * `system-default-registry` points the distribution's system images at the mirror, and the
 * embedded registry mirror lets nodes serve images to each other.
 *
 * Pure: no I/O.
 */

import * as YAML from "yaml";
import { DOCKER_HUB_REGISTRY } from "../images/reference";
import {
  NodeConfigError,
  type NodeMirror,
  type NodeRenderOptions,
  type NodeUpstream,
} from "./settings";

const generatedBy = "Written by airgap-conformance (NodeRegistryConfig); removed on destroy.";

/** Whether a k3s/rke2 node needs the config-file drop-in at all. */
export function needsRancherConfigDropIn(options: NodeRenderOptions): boolean {
  return Boolean(
    options.forbidFallback || options.systemDefaultRegistry || options.embeddedRegistry,
  );
}

/**
 * Checks the k3s/rke2 options against the mirror layout. k3s takes a registry host only for
 * `system-default-registry` and asks it for `rancher/...` (its system images are Docker Hub's),
 * so Docker Hub's images must sit at the mirror's root.
 */
export function validateRancherOptions(
  upstreams: readonly NodeUpstream[],
  options: NodeRenderOptions,
): void {
  if (!options.systemDefaultRegistry) return;
  const hub = upstreams.find((upstream) => upstream.registry === DOCKER_HUB_REGISTRY);
  if (hub?.pathPrefix !== undefined) {
    throw new NodeConfigError(
      "k3s.systemDefaultRegistry",
      `system-default-registry takes a registry host only, but the mirror keeps docker.io images under '${hub.pathPrefix}/'; remove the docker.io prefix or leave system-default-registry off`,
    );
  }
}

/**
 * Mirrors registries.yaml gets besides the upstreams: `"*"` (no endpoints) turns on the
 * embedded registry for every registry; with `system-default-registry` the mirror's own name
 * must resolve to the mirror with its scheme (an http mirror would otherwise be tried as https).
 */
export function rancherExtraMirrors(
  mirror: NodeMirror,
  existing: Readonly<Record<string, unknown>>,
  options: NodeRenderOptions,
): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  if (options.systemDefaultRegistry && !(mirror.endpoint in existing)) {
    extra[mirror.endpoint] = { endpoint: [`${mirror.scheme}://${mirror.endpoint}`] };
  }
  if (options.embeddedRegistry && !("*" in existing)) extra["*"] = null;
  return extra;
}

/**
 * The config-file drop-in (`/etc/rancher/<k3s|rke2>/config.yaml.d/50-airgap-mirror.yaml`), keys
 * as the k3s CLI flags name them. `embedded-registry` is read by server nodes; agents skip it.
 */
export function renderRancherConfigDropIn(mirror: NodeMirror, options: NodeRenderOptions): string {
  const settings: Record<string, unknown> = {};
  if (options.forbidFallback) settings["disable-default-registry-endpoint"] = true;
  if (options.systemDefaultRegistry) settings["system-default-registry"] = mirror.endpoint;
  if (options.embeddedRegistry) settings["embedded-registry"] = true;
  const text = YAML.stringify(settings, {
    version: "1.1",
    lineWidth: 0,
    defaultStringType: "QUOTE_DOUBLE",
    defaultKeyType: "PLAIN",
  });
  return `# ${generatedBy}\n${text}`;
}
