import { parseImageReference } from "../../core/images/reference";
import type { FakeApiServer, KubeObject } from "../fixtures/conformance/fake-apiserver";
import { criPullImage, type CriAuth } from "./cri";
import type { LabNode } from "./nodes";

/**
 * The kubelet's part for pods applied to the fake API server: each container image is pulled
 * on a lab node with a CRI PullImage, passing the credentials of the pod's imagePullSecrets for
 * the image's registry as the kubelet does; then the pod gets the status a kubelet would
 * report: its first container finished (exit 0) and the others running, or ErrImagePull with
 * containerd's own message.
 */
export interface LabKubelet {
  /** Called by the fake API server for each applied object. */
  onApply(object: KubeObject): void;
  /** Resolves once every pod seen so far has its status. */
  idle(): Promise<void>;
  /** Pod image pulls made, with their outcome. */
  readonly pulls: Array<{ pod: string; image: string; error?: string }>;
}

interface PodSpec {
  containers: Array<{ name: string; image: string }>;
  initContainers?: Array<{ name: string; image: string }>;
  imagePullSecrets?: Array<{ name: string }>;
}

/** Credentials for `image` from a dockerconfigjson document, as the kubelet's keyring finds them. */
export function credentialsFor(image: string, dockerConfigJson: string): CriAuth | undefined {
  const registry = parseImageReference(image).registry;
  const auths = (JSON.parse(dockerConfigJson) as { auths?: Record<string, Record<string, string>> })
    .auths;
  for (const [server, entry] of Object.entries(auths ?? {})) {
    if (server.replace(/^https?:\/\//, "").replace(/\/.*$/, "") !== registry) continue;
    const [username, password] = entry.auth
      ? Buffer.from(entry.auth, "base64").toString("utf8").split(/:(.*)/s)
      : [entry.username, entry.password];
    return { username, password, serverAddress: server };
  }
  return undefined;
}

function pullSecretText(secret: KubeObject | undefined): string | undefined {
  if (!secret) return undefined;
  const stringData = secret.stringData as Record<string, string> | undefined;
  const data = secret.data as Record<string, string> | undefined;
  if (stringData?.[".dockerconfigjson"]) return stringData[".dockerconfigjson"];
  if (data?.[".dockerconfigjson"])
    return Buffer.from(data[".dockerconfigjson"], "base64").toString();
  return undefined;
}

export function startLabKubelet(node: LabNode, server: () => FakeApiServer): LabKubelet {
  const running = new Set<Promise<void>>();
  const pulls: LabKubelet["pulls"] = [];

  async function startPod(pod: KubeObject): Promise<void> {
    const namespace = String(pod.metadata.namespace);
    const name = pod.metadata.name;
    const spec = pod.spec as PodSpec;
    const secrets = (spec.imagePullSecrets ?? []).map((reference) =>
      pullSecretText(
        server().objects.get(`/api/v1/namespaces/${namespace}/secrets/${reference.name}`),
      ),
    );
    const containers = [...(spec.initContainers ?? []), ...spec.containers];
    const outcome = new Map<string, { imageID?: string; error?: string }>();
    for (const container of containers) {
      const auth = secrets
        .map((text) => (text ? credentialsFor(container.image, text) : undefined))
        .find((found) => found !== undefined);
      try {
        const imageID = await criPullImage(node.criSocket, container.image, auth);
        outcome.set(container.name, { imageID });
        pulls.push({ pod: `${namespace}/${name}`, image: container.image });
      } catch (error) {
        const message = (error as Error).message;
        outcome.set(container.name, { error: message });
        pulls.push({ pod: `${namespace}/${name}`, image: container.image, error: message });
        break;
      }
    }
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const failed = [...outcome.values()].some((entry) => entry.error !== undefined);
    const containerStatuses = spec.containers.map((container, index) => {
      const result = outcome.get(container.name);
      const base = {
        name: container.name,
        image: container.image,
        imageID: result?.imageID ?? "",
        restartCount: 0,
        lastState: {},
      };
      if (result?.error !== undefined) {
        return {
          ...base,
          ready: false,
          started: false,
          state: {
            waiting: {
              reason: "ErrImagePull",
              message: `failed to pull and unpack image "${container.image}": ${result.error}`,
            },
          },
        };
      }
      if (failed) {
        return {
          ...base,
          ready: false,
          started: false,
          state: { waiting: { reason: "ContainerCreating" } },
        };
      }
      return index === 0
        ? {
            ...base,
            ready: false,
            started: false,
            state: {
              terminated: { exitCode: 0, reason: "Completed", startedAt: now, finishedAt: now },
            },
          }
        : { ...base, ready: true, started: true, state: { running: { startedAt: now } } };
    });
    server().setPodStatus(namespace, name, {
      phase: failed ? "Pending" : "Running",
      hostIP: node.ip,
      startTime: now,
      conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: now }],
      containerStatuses,
    });
  }

  return {
    pulls,
    onApply(object) {
      if (object.kind !== "Pod") return;
      const started = startPod(object).catch((error: Error) => {
        pulls.push({ pod: object.metadata.name, image: "-", error: error.message });
      });
      running.add(started);
      void started.finally(() => running.delete(started));
    },
    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
  };
}
