import { X509Certificate, createPrivateKey } from "node:crypto";
import { isIP } from "node:net";
import * as path from "node:path";

/**
 * The pure core of RegistryContainer: arguments in, a complete container spec out. The component
 * turns the spec into a docker.Container; the lab runs the very same spec through the Docker
 * Engine API, so what the tests prove is what `pulumi up` creates.
 */

/** Docker restart policies the registry container may use. */
export const restartPolicies = ["no", "on-failure", "always", "unless-stopped"] as const;
export type RestartPolicy = (typeof restartPolicies)[number];

/** Port the registry listens on inside the container (the image's default). */
export const registryInternalPort = 5000;
/** Debug listener, loopback only inside the container: an unauthenticated, plain-http health URL. */
export const registryDebugAddress = "127.0.0.1:5001";
export const registryDataPath = "/var/lib/registry";
export const tlsCertificatePath = "/certs/registry.crt";
export const tlsKeyPath = "/certs/registry.key";
export const htpasswdPath = "/auth/htpasswd";

/** Environment keys the spec manages; extraSettings may not override them. */
export const managedSettings = [
  "REGISTRY_HTTP_ADDR",
  "REGISTRY_HTTP_DEBUG_ADDR",
  "REGISTRY_STORAGE_DELETE_ENABLED",
  "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
  "REGISTRY_HTTP_TLS_CERTIFICATE",
  "REGISTRY_HTTP_TLS_KEY",
  "REGISTRY_AUTH",
  "REGISTRY_AUTH_HTPASSWD_REALM",
  "REGISTRY_AUTH_HTPASSWD_PATH",
] as const;

/** Raised for any invalid RegistryContainer argument; `arg` names it. */
export class RegistryArgsError extends Error {
  constructor(
    readonly arg: string,
    message: string,
  ) {
    super(`RegistryContainer: ${arg}: ${message}`);
    this.name = "RegistryArgsError";
  }
}

/** Arguments as plain values (the component resolves files; secrets stay opaque). */
export interface RegistrySettingsInput {
  containerName: string;
  image?: string;
  hostPort?: number;
  bindAddress?: string;
  advertisedEndpoint?: string;
  volumeName?: string;
  hostPath?: string;
  deleteEnabled?: boolean;
  /** PEM text of the certificate and key, when TLS is wanted. */
  tls?: { certificatePem?: string; keyPem?: string };
  /** Whether a password was given (its value never enters this module). */
  auth?: { username?: string; hasPassword: boolean };
  restartPolicy?: string;
  extraSettings?: Record<string, string>;
  networks?: string[];
}

/** Validated, defaulted settings. */
export interface RegistrySettings {
  containerName: string;
  image: string;
  hostPort: number;
  bindAddress: string;
  endpoint: string;
  localEndpoint: string;
  storage: { kind: "volume"; volumeName: string } | { kind: "bind"; hostPath: string };
  deleteEnabled: boolean;
  tls?: { certificatePem: string };
  authUsername?: string;
  restartPolicy: RestartPolicy;
  extraSettings: Record<string, string>;
  networks: string[];
  warnings: string[];
}

const dockerObjectName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const settingKey = /^REGISTRY_[A-Z0-9_]+$/;

function isUnspecifiedAddress(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}

function hostPortString(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function splitEndpoint(endpoint: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(endpoint);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1].replace(/^\[|\]$/g, ""), port };
}

/**
 * Validates RegistryContainer arguments and fills in defaults. Every error names the argument
 * and says what is allowed; nothing is created before this has passed.
 */
export function resolveRegistrySettings(input: RegistrySettingsInput): RegistrySettings {
  const warnings: string[] = [];
  const containerName = input.containerName;
  if (!dockerObjectName.test(containerName)) {
    throw new RegistryArgsError(
      "containerName",
      `'${containerName}' is not a valid container name (letters, digits, '_', '.', '-'; at least two characters, starting with a letter or digit)`,
    );
  }

  const image = input.image ?? "registry:2";
  if (image.trim() === "" || /\s/.test(image)) {
    throw new RegistryArgsError("image", `'${image}' is not an image reference`);
  }

  const hostPort = input.hostPort ?? 5000;
  if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65535) {
    throw new RegistryArgsError(
      "hostPort",
      `${String(hostPort)} is out of range; use an integer from 1 to 65535`,
    );
  }

  const bindAddress = input.bindAddress ?? "0.0.0.0";
  if (isIP(bindAddress) === 0) {
    throw new RegistryArgsError(
      "bindAddress",
      `'${bindAddress}' is not an IP address; use one of the bastion's addresses, 127.0.0.1, or 0.0.0.0 for all`,
    );
  }

  const networks = input.networks ?? [];
  for (const [index, network] of networks.entries()) {
    if (!dockerObjectName.test(network)) {
      throw new RegistryArgsError(
        `networks[${index}]`,
        `'${network}' is not a Docker network name`,
      );
    }
  }

  // The endpoint is what nodes (and the image copies) use, so it must be an address they reach.
  let endpoint: string;
  if (input.advertisedEndpoint !== undefined) {
    if (!splitEndpoint(input.advertisedEndpoint)) {
      throw new RegistryArgsError(
        "advertisedEndpoint",
        `'${input.advertisedEndpoint}' must be host:port (e.g. 10.0.0.5:5000 or registry.lab:5000)`,
      );
    }
    endpoint = input.advertisedEndpoint;
  } else if (networks.length > 0) {
    endpoint = `${containerName}:${registryInternalPort}`;
  } else if (!isUnspecifiedAddress(bindAddress)) {
    endpoint = hostPortString(bindAddress, hostPort);
  } else {
    throw new RegistryArgsError(
      "advertisedEndpoint",
      `the registry binds ${bindAddress}, so nodes need to be told which address reaches it; set advertisedEndpoint (e.g. 10.0.0.5:${hostPort}) or bind a specific bindAddress`,
    );
  }
  const localEndpoint = hostPortString(
    isUnspecifiedAddress(bindAddress) ? (bindAddress === "::" ? "::1" : "127.0.0.1") : bindAddress,
    hostPort,
  );

  if (input.volumeName !== undefined && input.hostPath !== undefined) {
    throw new RegistryArgsError("hostPath", "give either volumeName or hostPath, not both");
  }
  let storage: RegistrySettings["storage"];
  if (input.hostPath !== undefined) {
    if (!path.isAbsolute(input.hostPath)) {
      throw new RegistryArgsError("hostPath", `'${input.hostPath}' must be an absolute path`);
    }
    storage = { kind: "bind", hostPath: path.normalize(input.hostPath) };
  } else {
    const volumeName = input.volumeName ?? `${containerName}-data`;
    if (!dockerObjectName.test(volumeName)) {
      throw new RegistryArgsError("volumeName", `'${volumeName}' is not a valid volume name`);
    }
    storage = { kind: "volume", volumeName };
  }

  let tls: RegistrySettings["tls"];
  if (input.tls) {
    const { certificatePem, keyPem } = input.tls;
    if (certificatePem === undefined) {
      throw new RegistryArgsError(
        "tls.certificateFile",
        "a TLS key was given without a certificate",
      );
    }
    if (keyPem === undefined) {
      throw new RegistryArgsError("tls.keyFile", "a TLS certificate was given without its key");
    }
    tls = { certificatePem };
    checkCertificate(certificatePem, keyPem, splitEndpoint(endpoint)!.host, warnings);
  }

  let authUsername: string | undefined;
  if (input.auth) {
    const username = input.auth.username;
    if (username === undefined || username === "") {
      throw new RegistryArgsError("auth.username", "a password was given without a user name");
    }
    if (!/^[^:\s]+$/.test(username)) {
      throw new RegistryArgsError(
        "auth.username",
        `'${username}' may not contain ':' or whitespace (htpasswd format)`,
      );
    }
    if (!input.auth.hasPassword) {
      throw new RegistryArgsError("auth.password", `user '${username}' needs a password`);
    }
    authUsername = username;
    if (!tls) {
      warnings.push(
        "auth is on without TLS: passwords cross the network in clear text, and Docker clients refuse basic auth to a plain-http registry unless it is marked insecure",
      );
    }
  }

  const restartPolicy = input.restartPolicy ?? "unless-stopped";
  if (!(restartPolicies as readonly string[]).includes(restartPolicy)) {
    throw new RegistryArgsError(
      "restartPolicy",
      `'${restartPolicy}' is not a restart policy; use one of ${restartPolicies.join(", ")}`,
    );
  }

  const extraSettings = input.extraSettings ?? {};
  for (const [key, value] of Object.entries(extraSettings)) {
    if (!settingKey.test(key)) {
      throw new RegistryArgsError(
        `extraSettings.${key}`,
        "keys must be REGISTRY_* environment names (upper case, digits, '_'), as distribution documents",
      );
    }
    if ((managedSettings as readonly string[]).includes(key)) {
      throw new RegistryArgsError(
        `extraSettings.${key}`,
        "is managed by RegistryContainer; use its own argument (hostPort, tls, auth, deleteEnabled, storage) instead",
      );
    }
    if (typeof value !== "string" || value.includes("\n")) {
      throw new RegistryArgsError(`extraSettings.${key}`, "the value must be a single-line string");
    }
  }

  return {
    containerName,
    image,
    hostPort,
    bindAddress,
    endpoint,
    localEndpoint,
    storage,
    deleteEnabled: input.deleteEnabled ?? true,
    tls,
    authUsername,
    restartPolicy: restartPolicy as RestartPolicy,
    extraSettings,
    networks,
    warnings,
  };
}

function checkCertificate(
  certificatePem: string,
  keyPem: string,
  host: string,
  warnings: string[],
) {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certificatePem);
  } catch (error) {
    throw new RegistryArgsError(
      "tls.certificateFile",
      `is not a PEM certificate (${(error as Error).message})`,
    );
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(keyPem));
  } catch (error) {
    throw new RegistryArgsError(
      "tls.keyFile",
      `is not a PEM private key (${(error as Error).message})`,
    );
  }
  if (!matches) {
    throw new RegistryArgsError(
      "tls.keyFile",
      "does not belong to the certificate in tls.certificateFile",
    );
  }
  const coversHost =
    isIP(host) !== 0
      ? certificate.checkIP(host) !== undefined
      : certificate.checkHost(host) !== undefined;
  if (!coversHost) {
    throw new RegistryArgsError(
      "tls.certificateFile",
      `the certificate does not name '${host}' (the registry endpoint nodes will verify); add it to the certificate's subjectAltName or set advertisedEndpoint to a name it covers`,
    );
  }
  if (new Date(certificate.validTo).getTime() < Date.now()) {
    warnings.push(`the TLS certificate expired on ${certificate.validTo}`);
  }
}

/** A file placed into the container before it starts. */
export interface ContainerUploadSpec<Secret> {
  file: string;
  content: string | Secret;
  permissions: string;
}

/** Everything Docker needs to run the registry, independent of how it is run. */
export interface RegistryContainerSpec<Secret> {
  name: string;
  image: string;
  env: string[];
  ports: { internal: number; external: number; ip: string }[];
  mounts: { type: "volume" | "bind"; source: string; target: string }[];
  healthcheck: {
    tests: string[];
    interval: string;
    timeout: string;
    startPeriod: string;
    retries: number;
  };
  uploads: ContainerUploadSpec<Secret>[];
  restart: RestartPolicy;
  networks: string[];
}

/**
 * The container spec for validated settings. Secret payloads (the TLS key and the htpasswd
 * file) are passed through untouched, so the component can hand in Pulumi secrets and the lab
 * plain strings.
 */
export function registryContainerSpec<Secret>(
  settings: RegistrySettings,
  secrets: { tlsKeyPem?: Secret; htpasswd?: Secret },
): RegistryContainerSpec<Secret> {
  const env: Record<string, string> = {
    ...settings.extraSettings,
    REGISTRY_HTTP_ADDR: `0.0.0.0:${registryInternalPort}`,
    REGISTRY_HTTP_DEBUG_ADDR: registryDebugAddress,
    REGISTRY_STORAGE_DELETE_ENABLED: String(settings.deleteEnabled),
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: registryDataPath,
  };
  const uploads: ContainerUploadSpec<Secret>[] = [];
  if (settings.tls) {
    if (secrets.tlsKeyPem === undefined) throw new Error("registryContainerSpec: TLS key missing");
    env.REGISTRY_HTTP_TLS_CERTIFICATE = tlsCertificatePath;
    env.REGISTRY_HTTP_TLS_KEY = tlsKeyPath;
    uploads.push({
      file: tlsCertificatePath,
      content: settings.tls.certificatePem,
      permissions: "0644",
    });
    uploads.push({ file: tlsKeyPath, content: secrets.tlsKeyPem, permissions: "0600" });
  }
  if (settings.authUsername !== undefined) {
    if (secrets.htpasswd === undefined) throw new Error("registryContainerSpec: htpasswd missing");
    env.REGISTRY_AUTH = "htpasswd";
    env.REGISTRY_AUTH_HTPASSWD_REALM = "airgap-registry";
    env.REGISTRY_AUTH_HTPASSWD_PATH = htpasswdPath;
    uploads.push({ file: htpasswdPath, content: secrets.htpasswd, permissions: "0600" });
  }
  return {
    name: settings.containerName,
    image: settings.image,
    env: Object.keys(env)
      .sort()
      .map((key) => `${key}=${env[key]}`),
    ports: [
      { internal: registryInternalPort, external: settings.hostPort, ip: settings.bindAddress },
    ],
    mounts: [
      settings.storage.kind === "volume"
        ? { type: "volume", source: settings.storage.volumeName, target: registryDataPath }
        : { type: "bind", source: settings.storage.hostPath, target: registryDataPath },
    ],
    healthcheck: {
      // The debug listener answers without auth or TLS, so one probe fits every configuration;
      // `wget` is busybox's, present in the upstream Alpine-based image.
      tests: [
        "CMD",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        `http://${registryDebugAddress}/debug/health`,
      ],
      interval: "3s",
      timeout: "2s",
      startPeriod: "2s",
      retries: 10,
    },
    uploads,
    restart: settings.restartPolicy,
    networks: settings.networks,
  };
}

/** The scheme clients use for the registry. */
export function registryScheme(settings: RegistrySettings): "http" | "https" {
  return settings.tls ? "https" : "http";
}
