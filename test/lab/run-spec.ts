import { pack } from "tar-stream";
import type { RegistryContainerSpec } from "../../components/registry/spec";
import { docker } from "./engine";

/**
 * Label on every container, network and volume the lab creates; its value is the test process
 * id, so a run removes its own objects and those of runs that died, never another live run's.
 */
export const labLabel = "airgap-conformance.lab";
export const labLabelValue = String(process.pid);

function ownerAlive(owner: string | undefined): boolean {
  const pid = Number(owner);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function durationNanoseconds(duration: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(duration);
  if (!match) throw new Error(`unsupported duration '${duration}'`);
  const unit = { ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[match[2] as "ms" | "s" | "m" | "h"];
  return Number(match[1]) * unit;
}

async function uploadsArchive(uploads: RegistryContainerSpec<string>["uploads"]): Promise<Buffer> {
  const archive = pack();
  for (const upload of uploads) {
    archive.entry(
      { name: upload.file.replace(/^\//, ""), mode: parseInt(upload.permissions, 8) },
      upload.content,
    );
  }
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface RunningContainer {
  id: string;
  name: string;
  remove(): Promise<void>;
}

/**
 * Runs a RegistryContainer spec through the Docker Engine API the way the Docker provider does:
 * create (env, ports, mounts, healthcheck, restart policy), upload files, start, then wait until
 * the healthcheck reports healthy (the provider's `wait: true`).
 */
export async function runContainerSpec(
  spec: RegistryContainerSpec<string>,
  options: { healthyTimeoutMs?: number; labels?: Record<string, string> } = {},
): Promise<RunningContainer> {
  for (const mount of spec.mounts) {
    if (mount.type === "volume") {
      await docker.createVolume({ Name: mount.source, Labels: { [labLabel]: labLabelValue } });
    }
  }
  const exposed = Object.fromEntries(spec.ports.map((port) => [`${port.internal}/tcp`, {}]));
  const bindings = Object.fromEntries(
    spec.ports.map((port) => [
      `${port.internal}/tcp`,
      [{ HostIp: port.ip, HostPort: String(port.external) }],
    ]),
  );
  const container = await docker.createContainer({
    name: spec.name,
    Image: spec.image,
    Env: spec.env,
    ExposedPorts: exposed,
    Labels: { ...options.labels, [labLabel]: labLabelValue },
    Healthcheck: {
      Test: spec.healthcheck.tests,
      Interval: durationNanoseconds(spec.healthcheck.interval),
      Timeout: durationNanoseconds(spec.healthcheck.timeout),
      StartPeriod: durationNanoseconds(spec.healthcheck.startPeriod),
      Retries: spec.healthcheck.retries,
    },
    HostConfig: {
      PortBindings: bindings,
      Mounts: spec.mounts.map((mount) => ({
        Type: mount.type,
        Source: mount.source,
        Target: mount.target,
      })),
      RestartPolicy: { Name: spec.restart },
      NetworkMode: spec.networks[0],
    },
  });
  const remove = async () => {
    await container.remove({ force: true, v: false }).catch(() => undefined);
  };
  try {
    if (spec.uploads.length > 0) {
      await container.putArchive(await uploadsArchive(spec.uploads), { path: "/" });
    }
    for (const network of spec.networks.slice(1)) {
      await docker.getNetwork(network).connect({ Container: container.id });
    }
    await container.start();
    const deadline = Date.now() + (options.healthyTimeoutMs ?? 60000);
    for (;;) {
      const state = (await container.inspect()).State;
      if (state.Health?.Status === "healthy") break;
      if (!state.Running || Date.now() > deadline) {
        const logs = (await container.logs({ stdout: true, stderr: true, tail: 20 })).toString();
        throw new Error(
          `registry container ${spec.name} did not become healthy (state ${state.Status}, health ${state.Health?.Status}):\n${logs}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { id: container.id, name: spec.name, remove };
}

/** Removes the containers, volumes and networks of this run and of runs that are gone. */
export async function removeLabLeftovers(): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [labLabel] } });
  for (const info of containers) {
    if (ownerAlive(info.Labels?.[labLabel])) continue;
    await docker
      .getContainer(info.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
  const { Volumes } = await docker.listVolumes({ filters: { label: [labLabel] } });
  for (const volume of Volumes ?? []) {
    if (ownerAlive(volume.Labels?.[labLabel])) continue;
    await docker
      .getVolume(volume.Name)
      .remove()
      .catch(() => undefined);
  }
  const networks = await docker.listNetworks({ filters: { label: [labLabel] } });
  for (const network of networks) {
    if (ownerAlive(network.Labels?.[labLabel])) continue;
    await docker
      .getNetwork(network.Id)
      .remove()
      .catch(() => undefined);
  }
}
