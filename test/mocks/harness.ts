import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
// The mock monitor is an SDK internal; wrapping it lets the tests see the serialized request,
// which is the only place a secret is still marked as secret.
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { htpasswdLine } from "../../components/registry/htpasswd";

/** Pulumi's marker for a secret value in serialized properties. */
const secretSignature = "1b47061264138c4ac30d75fd1eb44270";
const signatureKey = "4dabf18193072939515e22adb298388d";

export interface RecordedResource {
  type: string;
  name: string;
  /** Parent URN ("" for the stack). */
  parent: string;
  provider: string;
  custom: boolean;
  inputs: Record<string, unknown>;
  /** Property paths whose values were sent as secrets. */
  secretPaths: string[];
  /** Explicit dependencies (URNs). */
  dependencies: string[];
  deleteBeforeReplace: boolean;
  additionalSecretOutputs: string[];
}

export const recorded: RecordedResource[] = [];

function findSecretPaths(value: unknown, at: string, found: string[]): void {
  if (Array.isArray(value)) {
    value.forEach((item, index) => findSecretPaths(item, `${at}[${index}]`, found));
  } else if (value && typeof value === "object") {
    const object = value as Record<string, unknown>;
    if (object[signatureKey] === secretSignature) {
      found.push(at);
      return;
    }
    for (const [key, item] of Object.entries(object)) {
      findSecretPaths(item, at ? `${at}.${key}` : key, found);
    }
  }
}

const pendingSecrets = new Map<
  string,
  {
    secretPaths: string[];
    parent: string;
    dependencies: string[];
    deleteBeforeReplace: boolean;
    additionalSecretOutputs: string[];
  }
>();

type RegisterRequest = {
  getDeletebeforereplace(): boolean;
  getAdditionalsecretoutputsList(): string[];
  getType(): string;
  getName(): string;
  getParent(): string;
  getObject(): { toJavaScript(): unknown };
  getDependenciesList(): string[];
};
const originalRegister = MockMonitor.prototype.registerResource;
MockMonitor.prototype.registerResource = function (
  this: unknown,
  req: RegisterRequest,
  callback: (err: unknown, response: unknown) => void,
) {
  const secretPaths: string[] = [];
  findSecretPaths(req.getObject().toJavaScript(), "", secretPaths);
  pendingSecrets.set(`${req.getType()}::${req.getName()}`, {
    secretPaths,
    parent: req.getParent(),
    dependencies: req.getDependenciesList(),
    deleteBeforeReplace: req.getDeletebeforereplace(),
    additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
  });
  return originalRegister.call(this, req, callback);
} as typeof originalRegister;

/** The digest the mocks report for a mirrored image. */
export function fakeDigest(source: string): string {
  return `sha256:${createHash("sha256").update(source).digest("hex")}`;
}

/** What a command resource's stdout is under the mocks, by resource name (default empty). */
export const commandStdout = new Map<string, string>();

const htpasswdLines = new Map<string, string>();

/** Outputs a provider would compute, so `.apply` fires under mocks (pulumi/pulumi#2785). */
function computedState(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  if (args.type === "docker:index/container:Container") {
    return { name: args.inputs.name, exitCode: 0 };
  }
  if (args.type === "pulumi-nodejs:dynamic/registry:HtpasswdEntry") {
    // Drawn once per resource and credentials, as the provider keeps it in state.
    const inputs = unwrapSecrets(args.inputs) as { username: string; password: string };
    const key = JSON.stringify([args.name, inputs.username, inputs.password]);
    if (!htpasswdLines.has(key))
      htpasswdLines.set(key, htpasswdLine(inputs.username, inputs.password));
    return { line: htpasswdLines.get(key) };
  }
  if (args.type === "pulumi-nodejs:dynamic/mirror:MirroredImage") {
    // A stable fake digest per image, as the copy would report it; with platforms chosen, the
    // sizes the provider's check reads at preview (3 platforms of 100 bytes each).
    const request = args.inputs.request as { platform?: string; platforms?: string[] };
    const chosen = request.platforms?.length ?? (request.platform ? 1 : 0);
    return {
      digest: fakeDigest(String(args.inputs.source)),
      ...(chosen > 0
        ? { platformBytes: { all: 300, chosen: chosen * 100, saved: 300 - chosen * 100 } }
        : {}),
    };
  }
  if (args.type === "pulumi-nodejs:dynamic/nodes:PreloadTarball") {
    // What the provider reports: a file named by the sha256 of its content (here: of its inputs).
    const images = args.inputs.images as { source: string; digest: string }[];
    const sha256 = createHash("sha256").update(JSON.stringify(args.inputs)).digest("hex");
    return {
      file: `${String(args.inputs.outputDirectory)}/preload-${sha256.slice(0, 16)}.tar`,
      sha256,
      size: 1024,
      repoTags: images.map((image) => image.source).sort(),
      skipped: [],
    };
  }
  if (args.type === "command:local:Command" || args.type === "command:remote:Command") {
    return { stdout: commandStdout.get(args.name) ?? "", stderr: "" };
  }
  return {};
}

pulumi.runtime.setMocks(
  {
    newResource(args) {
      const extra = pendingSecrets.get(`${args.type}::${args.name}`);
      recorded.push({
        type: args.type,
        name: args.name,
        parent: extra?.parent ?? "",
        provider: args.provider ?? "",
        custom: args.custom ?? false,
        inputs: unwrapSecrets(args.inputs) as Record<string, unknown>,
        secretPaths: extra?.secretPaths ?? [],
        dependencies: extra?.dependencies ?? [],
        deleteBeforeReplace: extra?.deleteBeforeReplace ?? false,
        additionalSecretOutputs: extra?.additionalSecretOutputs ?? [],
      });
      return { id: `${args.name}-id`, state: { ...args.inputs, ...computedState(args) } };
    },
    call(args) {
      return args.inputs;
    },
  },
  "airgap-conformance",
  "test",
  false,
);

/** Replaces serialized secret wrappers with their values (the mock monitor leaves some in place). */
export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === "object") {
    const object = value as Record<string, unknown>;
    if (object[signatureKey] === secretSignature) return unwrapSecrets(object.value);
    return Object.fromEntries(
      Object.entries(object).map(([key, item]) => [key, unwrapSecrets(item)]),
    );
  }
  return value;
}

/** Resolves an Output's value (mocks only). */
export function valueOf<T>(output: pulumi.Output<T> | undefined): Promise<T> {
  if (!output) throw new Error("no output");
  return new Promise((resolve) => output.apply((value) => resolve(value)));
}

/** Waits until registrations triggered so far have reached the mock monitor. */
export async function settle(): Promise<void> {
  for (let round = 0; round < 20; round++) await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Resources whose name starts with the given component name. */
export function resourcesOf(componentName: string): RecordedResource[] {
  return recorded.filter(
    (resource) => resource.name === componentName || resource.name.startsWith(`${componentName}-`),
  );
}

export function only(resources: RecordedResource[], type: string): RecordedResource {
  const matches = resources.filter((resource) => resource.type === type);
  if (matches.length !== 1) {
    throw new Error(
      `expected one ${type}, found ${matches.length}: ${resources.map((r) => r.type).join(", ")}`,
    );
  }
  return matches[0];
}
