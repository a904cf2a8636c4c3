import type * as docker from "@pulumi/docker";
import type * as pulumi from "@pulumi/pulumi";
import type { RegistryContainerSpec } from "./spec";

/**
 * docker.Container arguments for a spec: a one-to-one translation, so the mock tests can pin the
 * declared container to the spec the lab runs for real.
 */
export function containerArgsFromSpec(
  spec: RegistryContainerSpec<pulumi.Input<string>>,
): docker.ContainerArgs {
  return {
    name: spec.name,
    image: spec.image,
    envs: spec.env,
    ports: spec.ports.map((port) => ({ ...port, protocol: "tcp" })),
    mounts: spec.mounts.map((mount) => ({ ...mount })),
    healthcheck: { ...spec.healthcheck, tests: [...spec.healthcheck.tests] },
    uploads: spec.uploads.map((upload) => ({
      file: upload.file,
      content: upload.content,
      permissions: upload.permissions,
    })),
    restart: spec.restart,
    networksAdvanced: spec.networks.map((name) => ({ name })),
    // `pulumi up` returns only once the registry answers its health probe.
    wait: true,
    mustRun: true,
  };
}
