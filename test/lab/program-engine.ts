import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import type { RegistryContainerSpec } from "../../components/registry/spec";
import { callProvider } from "./dynamic-provider";
import { docker } from "./engine";
import { inBatches } from "./image-source";
import { run, type RunResult } from "./exec";
import { labLabel, labLabelValue, runContainerSpec } from "./run-spec";

/**
 * A stand-in for the Pulumi engine and its providers, small enough to read: Pulumi mocks whose
 * `newResource` performs each resource's real create in the lab, in the order the SDK
 * registers them (the SDK awaits `newResource`, so a dependent is registered only once what it
 * depends on exists), and a destroy that runs each delete in reverse order.
 *
 * What each create does, by resource type:
 * - docker Container: its registered inputs through the Docker Engine API (create, upload
 *   files, start, wait until healthy), as the Docker provider does with `wait: true`;
 * - docker Volume: a named volume;
 * - dynamic resources: the serialized provider (`__provider`) loaded in a fresh Node process;
 * - local Command: `create` with `/bin/sh -c` (or its interpreter), its `environment` and
 *   `stdin`; remote Command: over SSH with its `connection`; delete gets
 *   PULUMI_COMMAND_STDOUT/STDERR from the create, as the command provider sets them;
 * - remote CopyToRemote of a file asset: over SFTP with its `connection`, creating the parent
 *   directories and writing `remotePath`, as the provider does; its delete does nothing, as
 *   the provider's;
 * - Kubernetes objects: server-side apply to the API server the resource's provider names
 *   (its kubeconfig and context), then DELETE on destroy;
 * - providers and components: nothing to do.
 * Any other type fails the create, so nothing the program declares is silently skipped.
 */

export interface LabResource {
  type: string;
  name: string;
  id: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  /** Inputs of the explicit provider it was created with (Kubernetes objects). */
  providerInputs?: Record<string, unknown>;
}

export interface RegisteredResource {
  type: string;
  name: string;
  custom: boolean;
  inputs: Record<string, unknown>;
}

export interface FailedCreate {
  type: string;
  name: string;
  error: string;
}

/** Pulumi's marker for a secret value in serialized properties. */
const secretSignature = "1b47061264138c4ac30d75fd1eb44270";
const signatureKey = "4dabf18193072939515e22adb298388d";

/** Replaces serialized secret wrappers with their values (a provider sees plain values). */
export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === "object") {
    const object = value as Record<string, unknown>;
    if (object[signatureKey] === secretSignature) return unwrapSecrets(object.value);
    // Assets and archives keep their shape (a FileAsset's path is a promise).
    if (object.__pulumiAsset === true || object.__pulumiArchive === true) return value;
    return Object.fromEntries(
      Object.entries(object).map(([key, item]) => [key, unwrapSecrets(item)]),
    );
  }
  return value;
}

function durationString(value: unknown): string {
  return typeof value === "string" && value !== "" ? value : "0s";
}

/** The Docker provider's Container inputs as the spec the lab runs (one-to-one). */
export function containerSpecFromInputs(
  inputs: Record<string, unknown>,
): RegistryContainerSpec<string> {
  const healthcheck = inputs.healthcheck as Record<string, unknown>;
  const ports = (inputs.ports ?? []) as Array<Record<string, unknown>>;
  for (const port of ports) {
    if ((port.protocol ?? "tcp") !== "tcp")
      throw new Error(`unsupported port ${JSON.stringify(port)}`);
  }
  return {
    name: String(inputs.name),
    image: String(inputs.image),
    env: (inputs.envs ?? []) as string[],
    ports: ports.map((port) => ({
      internal: Number(port.internal),
      external: Number(port.external),
      ip: String(port.ip ?? "0.0.0.0"),
    })),
    mounts: ((inputs.mounts ?? []) as Array<Record<string, unknown>>).map((mount) => ({
      type: mount.type as "volume" | "bind",
      source: String(mount.source),
      target: String(mount.target),
    })),
    healthcheck: {
      tests: (healthcheck?.tests ?? []) as string[],
      interval: durationString(healthcheck?.interval),
      timeout: durationString(healthcheck?.timeout),
      startPeriod: durationString(healthcheck?.startPeriod),
      retries: Number(healthcheck?.retries ?? 0),
    },
    uploads: ((inputs.uploads ?? []) as Array<Record<string, unknown>>).map((upload) => ({
      file: String(upload.file),
      content: String(upload.content),
      permissions: String(upload.permissions ?? "0644"),
    })),
    restart: (inputs.restart ?? "no") as RegistryContainerSpec<string>["restart"],
    networks: ((inputs.networksAdvanced ?? []) as Array<{ name: string }>).map((n) => n.name),
  };
}

/** The command provider keeps stdout/stderr without the trailing newline. */
function trimmed(output: string): string {
  return output.endsWith("\n") ? output.slice(0, -1) : output;
}

interface KubeTarget {
  server: string;
  token?: string;
}

/** Where a Kubernetes provider's kubeconfig (path or contents) and context point. */
function kubeTarget(providerInputs: Record<string, unknown>): KubeTarget {
  const kubeconfig = String(providerInputs.kubeconfig ?? "");
  const text = existsSync(kubeconfig) ? readFileSync(kubeconfig, "utf8") : kubeconfig;
  const document = parseYaml(text) as {
    "current-context"?: string;
    contexts?: Array<{ name: string; context: { cluster: string; user?: string } }>;
    clusters?: Array<{ name: string; cluster: { server: string } }>;
    users?: Array<{ name: string; user: { token?: string } }>;
  };
  const contextName = (providerInputs.context as string | undefined) ?? document["current-context"];
  const context = document.contexts?.find((entry) => entry.name === contextName)?.context;
  const cluster = document.clusters?.find((entry) => entry.name === context?.cluster)?.cluster;
  if (!context || !cluster) {
    throw new Error(`kubeconfig ${kubeconfig}: no context ${String(contextName)} with a cluster`);
  }
  const user = document.users?.find((entry) => entry.name === context.user)?.user;
  return { server: cluster.server, token: user?.token };
}

const pluralOf: Record<string, string> = {
  Namespace: "namespaces",
  ServiceAccount: "serviceaccounts",
  ConfigMap: "configmaps",
  Secret: "secrets",
  Pod: "pods",
  ClusterRole: "clusterroles",
  ClusterRoleBinding: "clusterrolebindings",
};

function kubePath(object: Record<string, unknown>): string {
  const apiVersion = String(object.apiVersion);
  const kind = String(object.kind);
  const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string };
  const plural = pluralOf[kind];
  if (!plural) throw new Error(`no API path known for kind ${kind}`);
  if (!metadata.name) throw new Error(`${kind} without metadata.name`);
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const scope =
    metadata.namespace && kind !== "Namespace" ? `/namespaces/${metadata.namespace}` : "";
  return `${base}${scope}/${plural}/${metadata.name}`;
}

async function kubeRequest(
  target: KubeTarget,
  method: "PATCH" | "DELETE",
  apiPath: string,
  body?: unknown,
  acceptedStatuses: number[] = [],
): Promise<Record<string, unknown>> {
  const query = method === "PATCH" ? "?fieldManager=pulumi-kubernetes&force=true" : "";
  const response = await fetch(`${target.server}${apiPath}${query}`, {
    method,
    headers: {
      ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/apply-patch+yaml" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (acceptedStatuses.includes(response.status)) return {};
  if (!response.ok) throw new Error(`${method} ${apiPath}: ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

export interface LabEngineOptions {
  /** Label (key=value) put on every Docker object the run creates, so leftovers can be found. */
  runLabel: { key: string; value: string };
  /** Directory for serialized providers and SSH keys of this run. */
  workDir: string;
  /** At most this many dynamic-provider processes at once. Default 4. */
  dynamicConcurrency?: number;
  /**
   * The directory the program was evaluated in: Pulumi starts the dynamic provider host and the
   * command provider there too, so relative paths in their inputs mean the same place. Default:
   * providers in the project's infra/ and local commands in this process's directory.
   */
  programDir?: string;
}

export class LabEngine {
  readonly registered: RegisteredResource[] = [];
  /** Created resources, in the order their creates finished. */
  readonly created: LabResource[] = [];
  readonly failures: FailedCreate[] = [];
  readonly deleteFailures: FailedCreate[] = [];
  private readonly providers = new Map<string, Record<string, unknown>>();
  private inFlight = 0;
  private calls = 0;
  private dynamicSlots: number;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly options: LabEngineOptions) {
    mkdirSync(options.workDir, { recursive: true, mode: 0o700 });
    this.dynamicSlots = options.dynamicConcurrency ?? 4;
  }

  /** The mocks to hand to `pulumi.runtime.setMocks`. */
  mocks(): pulumi.runtime.Mocks {
    return {
      newResource: (args) => this.newResource(args),
      call: (args) => {
        throw new Error(`the lab has no implementation of the function ${args.token}`);
      },
    };
  }

  private async newResource(
    args: pulumi.runtime.MockResourceArgs,
  ): Promise<{ id: string | undefined; state: Record<string, unknown> }> {
    this.calls++;
    this.inFlight++;
    const inputs = unwrapSecrets(args.inputs) as Record<string, unknown>;
    this.registered.push({
      type: args.type,
      name: args.name,
      custom: args.custom ?? false,
      inputs,
    });
    try {
      if (!args.custom) return { id: undefined, state: {} };
      if (args.type.startsWith("pulumi:providers:")) {
        const id = `${args.name}-provider-id`;
        this.providers.set(id, inputs);
        return { id, state: inputs };
      }
      const created = await this.create(args.type, args.name, inputs, args.provider);
      this.created.push(created);
      return { id: created.id, state: created.outputs };
    } catch (error) {
      const message = (error as Error).message;
      this.failures.push({ type: args.type, name: args.name, error: message });
      throw error;
    } finally {
      this.inFlight--;
    }
  }

  private async withDynamicSlot<T>(work: () => Promise<T>): Promise<T> {
    while (this.dynamicSlots === 0)
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.dynamicSlots--;
    try {
      return await work();
    } finally {
      this.dynamicSlots++;
      this.waiting.shift()?.();
    }
  }

  private dockerLabels(): Record<string, string> {
    return { [this.options.runLabel.key]: this.options.runLabel.value, [labLabel]: labLabelValue };
  }

  private providerInputs(reference: string | undefined, type: string): Record<string, unknown> {
    const id = reference?.slice(reference.lastIndexOf("::") + 2);
    const inputs = id === undefined ? undefined : this.providers.get(id);
    if (!inputs) throw new Error(`${type}: no explicit provider registered (${String(reference)})`);
    return inputs;
  }

  private async create(
    type: string,
    name: string,
    inputs: Record<string, unknown>,
    provider: string | undefined,
  ): Promise<LabResource> {
    if (type === "docker:index/volume:Volume") {
      const volumeName = String(inputs.name ?? name);
      await docker.createVolume({ Name: volumeName, Labels: this.dockerLabels() });
      return { type, name, id: volumeName, inputs, outputs: { ...inputs, name: volumeName } };
    }
    if (type === "docker:index/container:Container") {
      const container = await runContainerSpec(containerSpecFromInputs(inputs), {
        labels: this.dockerLabels(),
      });
      return { type, name, id: container.id, inputs, outputs: { ...inputs, name: container.name } };
    }
    if (type.startsWith("pulumi-nodejs:dynamic")) {
      const { __provider: serialized, ...props } = inputs;
      const providerFile = this.providerFile(name, String(serialized));
      const result = await this.withDynamicSlot(() =>
        callProvider<{ id: string; outs: Record<string, unknown> }>(
          providerFile,
          "create",
          [props],
          undefined,
          undefined,
          this.options.programDir,
        ),
      );
      return {
        type,
        name,
        id: result.id,
        inputs,
        outputs: { ...result.outs, __provider: serialized },
      };
    }
    if (type === "command:local:Command" || type === "command:remote:Command") {
      const commandLine = inputs.create as string | undefined;
      const result = commandLine
        ? await this.runCommand(type, name, inputs, commandLine, {})
        : { stdout: "", stderr: "", code: 0 };
      return {
        type,
        name,
        id: name,
        inputs,
        outputs: { ...inputs, stdout: trimmed(result.stdout), stderr: trimmed(result.stderr) },
      };
    }
    if (type === "command:remote:CopyToRemote") {
      await this.copyToRemote(name, inputs);
      return { type, name, id: name, inputs, outputs: { ...inputs } };
    }
    if (type.startsWith("kubernetes:")) {
      const providerInputs = this.providerInputs(provider, type);
      const applied = await kubeRequest(
        kubeTarget(providerInputs),
        "PATCH",
        kubePath(inputs),
        inputs,
      );
      return {
        type,
        name,
        id: kubePath(inputs),
        inputs,
        outputs: { ...inputs, ...applied },
        providerInputs,
      };
    }
    throw new Error(`the lab cannot create ${type} (${name}): no real create is known for it`);
  }

  private providerFile(name: string, text: string): string {
    const dir = path.join(this.options.workDir, "providers");
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name.replace(/[^A-Za-z0-9._-]/g, "_")}.js`);
    writeFileSync(file, text);
    return file;
  }

  /** Runs a command resource's command line the way the command provider does. */
  private async runCommand(
    type: string,
    name: string,
    inputs: Record<string, unknown>,
    commandLine: string,
    extraEnv: Record<string, string>,
  ): Promise<RunResult> {
    const environment = {
      ...((inputs.environment ?? {}) as Record<string, string>),
      ...extraEnv,
    };
    const stdin = (inputs.stdin as string | undefined) ?? "";
    let result: RunResult;
    if (type === "command:local:Command") {
      const interpreter = (inputs.interpreter as string[] | undefined) ?? ["/bin/sh", "-c"];
      result = await run(interpreter[0], [...interpreter.slice(1), commandLine], {
        input: stdin,
        env: environment,
        cwd: (inputs.dir as string | undefined) ?? this.options.programDir,
        allowFailure: true,
      });
    } else {
      const { target, options } = this.sshOptions(type, name, inputs);
      // The provider asks the server to set each variable (ssh "env" requests, as SendEnv);
      // sshd accepts only what its AcceptEnv allows, exactly as for the provider.
      result = await run(
        "ssh",
        [
          ...options("-p"),
          ...Object.keys(environment).flatMap((key) => ["-o", `SendEnv=${key}`]),
          target,
          commandLine,
        ],
        { input: stdin, env: environment, allowFailure: true },
      );
    }
    if (result.code !== 0) {
      throw new Error(
        `${type} ${name}: running ${JSON.stringify(commandLine)} exited ${result.code}:\n${result.stderr.trim()}${result.stdout.trim() ? `\n${result.stdout.trim()}` : ""}`,
      );
    }
    return result;
  }

  /** OpenSSH options for a resource's `connection` (key, port, host key check). */
  private sshOptions(
    type: string,
    name: string,
    inputs: Record<string, unknown>,
  ): { target: string; options: (portFlag: "-p" | "-P") => string[] } {
    const connection = inputs.connection as {
      host: string;
      port?: number;
      user?: string;
      privateKey?: string;
      hostKey?: string;
    };
    if (!connection.privateKey) throw new Error(`${type} ${name}: the lab connects with a key`);
    const keyFile = path.join(
      this.options.workDir,
      `ssh-key-${name.replace(/[^A-Za-z0-9._-]/g, "_")}`,
    );
    writeFileSync(
      keyFile,
      connection.privateKey.endsWith("\n") ? connection.privateKey : `${connection.privateKey}\n`,
      { mode: 0o600 },
    );
    chmodSync(keyFile, 0o600);
    // With a host key the provider checks the server's key against it; without one it does not.
    const knownHosts = path.join(
      this.options.workDir,
      `known-hosts-${name.replace(/[^A-Za-z0-9._-]/g, "_")}`,
    );
    writeFileSync(
      knownHosts,
      connection.hostKey ? `${connection.host} ${connection.hostKey}\n` : "",
    );
    const hostKeyOptions = connection.hostKey
      ? ["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`]
      : ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"];
    return {
      target: `${connection.user ?? "root"}@${connection.host}`,
      options: (portFlag) => [
        "-i",
        keyFile,
        portFlag,
        String(connection.port ?? 22),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        ...hostKeyOptions,
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
      ],
    };
  }

  /**
   * CopyToRemote of a file asset, as the provider does it: an SFTP session that creates the
   * parent directories of `remotePath` (MkdirAll) and writes the file there.
   */
  private async copyToRemote(name: string, inputs: Record<string, unknown>): Promise<void> {
    const type = "command:remote:CopyToRemote";
    // The SDK hands the mocks a FileAsset, whose path is a promise.
    const source = inputs.source as { path?: unknown } | undefined;
    const assetPath: unknown = await source?.path;
    const localPath = typeof assetPath === "string" ? assetPath : undefined;
    if (!localPath) {
      throw new Error(
        `${type} ${name}: the lab copies file assets only (source: ${JSON.stringify(inputs.source)})`,
      );
    }
    const remotePath = String(inputs.remotePath);
    if (!remotePath.startsWith("/"))
      throw new Error(`${type} ${name}: remotePath must be absolute`);
    const parents: string[] = [];
    for (let dir = path.posix.dirname(remotePath); dir !== "/"; dir = path.posix.dirname(dir)) {
      parents.unshift(dir);
    }
    // "-" before a command: an existing directory is not an error (MkdirAll).
    const batch = [
      ...parents.map((dir) => `-mkdir "${dir}"`),
      `put "${localPath}" "${remotePath}"`,
    ];
    const { target, options } = this.sshOptions(type, name, inputs);
    const result = await run("sftp", [...options("-P"), "-b", "-", target], {
      input: `${batch.join("\n")}\n`,
      allowFailure: true,
    });
    if (result.code !== 0) {
      throw new Error(
        `${type} ${name}: copying ${localPath} to ${remotePath} failed:\n${result.stderr.trim()}`,
      );
    }
  }

  /**
   * Waits until every registration the program started has been answered and no new one has
   * come for a while (registrations follow from resolved outputs, a few turns later).
   */
  async settle(quietMs = 1500): Promise<void> {
    let seen = -1;
    let quietSince = Date.now();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (this.inFlight > 0 || this.calls !== seen) {
        seen = this.calls;
        quietSince = Date.now();
        continue;
      }
      if (Date.now() - quietSince >= quietMs) return;
    }
  }

  /** Deletes every created resource in reverse order of creation; independent copies at once. */
  async destroy(): Promise<void> {
    const order = [...this.created].reverse();
    let index = 0;
    while (index < order.length) {
      // A run of consecutive dynamic resources are siblings: the engine deletes them in parallel.
      let end = index + 1;
      if (order[index].type.startsWith("pulumi-nodejs:dynamic")) {
        while (end < order.length && order[end].type.startsWith("pulumi-nodejs:dynamic")) end++;
      }
      const batch = order.slice(index, end);
      await inBatches(
        this.options.dynamicConcurrency ?? 4,
        batch.map((resource) => async () => {
          try {
            await this.delete(resource);
          } catch (error) {
            this.deleteFailures.push({
              type: resource.type,
              name: resource.name,
              error: (error as Error).message,
            });
          }
        }),
      );
      index = end;
    }
    this.created.length = 0;
  }

  private async delete(resource: LabResource): Promise<void> {
    const { type, inputs, outputs } = resource;
    if (type === "docker:index/container:Container") {
      await docker.getContainer(resource.id).remove({ force: true, v: false });
    } else if (type === "docker:index/volume:Volume") {
      await docker.getVolume(resource.id).remove();
    } else if (type.startsWith("pulumi-nodejs:dynamic")) {
      const { __provider: serialized, ...props } = outputs;
      const providerFile = this.providerFile(`${resource.name}-delete`, String(serialized));
      await callProvider(
        providerFile,
        "delete",
        [resource.id, props],
        undefined,
        undefined,
        this.options.programDir,
      );
    } else if (type === "command:local:Command" || type === "command:remote:Command") {
      const commandLine = inputs.delete as string | undefined;
      if (commandLine) {
        await this.runCommand(type, resource.name, inputs, commandLine, {
          PULUMI_COMMAND_STDOUT: String(outputs.stdout ?? ""),
          PULUMI_COMMAND_STDERR: String(outputs.stderr ?? ""),
        });
      }
    } else if (type === "command:remote:CopyToRemote") {
      // The provider's CopyToRemote has no delete: the copied file stays.
    } else if (type.startsWith("kubernetes:")) {
      // Gone already (its namespace was deleted first) counts as deleted, as for the provider.
      await kubeRequest(
        kubeTarget(resource.providerInputs!),
        "DELETE",
        resource.id,
        undefined,
        [404],
      );
    } else {
      throw new Error(`the lab cannot delete ${type}`);
    }
  }
}
