import * as pulumi from "@pulumi/pulumi";
import type { RestartPolicy } from "../components/registry";
import { loadProjectSchema, type ConfigKeySchema, type ProjectSchema } from "./schema";

/** A stack config value that is missing, of the wrong type, or not allowed. Names the key. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly value: string | undefined,
    readonly allowed: string,
  ) {
    super(
      value === undefined
        ? `config ${key}: ${allowed}`
        : `config ${key}: got ${JSON.stringify(value)}; allowed: ${allowed}`,
    );
    this.name = "ConfigError";
  }
}

/** Stack config as the program uses it: typed, defaulted, validated. */
export interface StackConfig {
  /** Docker engine for the registry (undefined: the local engine). */
  dockerHost?: string;
  registry: {
    enabled: boolean;
    image: string;
    imageTar?: string;
    containerName: string;
    checkHostPort: boolean;
    hostPort: number;
    bindAddress: string;
    advertisedEndpoint?: string;
    networks: string[];
    volumeName?: string;
    hostPath?: string;
    retainStorage: boolean;
    deleteEnabled: boolean;
    tls?: { certificateFile?: string; keyFile?: string };
    auth?: { username?: string; password?: pulumi.Output<string> };
    restartPolicy: RestartPolicy;
    extraSettings: Record<string, string>;
  };
}

type Scalar = string | number | boolean | string[];

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

function closestKey(key: string, known: string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(key.length / 4)) ? best.key : undefined;
}

function typedValue(fullKey: string, schema: ConfigKeySchema, raw: string): Scalar {
  switch (schema.type) {
    case "string":
      return raw;
    case "integer": {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(fullKey, raw, "an integer");
      return Number(raw);
    }
    case "boolean": {
      if (raw !== "true" && raw !== "false") throw new ConfigError(fullKey, raw, "true or false");
      return raw === "true";
    }
    case "array": {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new ConfigError(fullKey, raw, `a list of ${schema.items?.type ?? "string"} values`);
      }
      if (!Array.isArray(parsed) || parsed.some((item) => typeof item !== "string")) {
        throw new ConfigError(fullKey, raw, `a list of ${schema.items?.type ?? "string"} values`);
      }
      return parsed as string[];
    }
  }
}

/**
 * Reads the raw stack config (`project:key` -> string, as Pulumi hands it to the program) into
 * typed values with defaults. Unknown keys of this project are errors with a suggestion, since a
 * typo would otherwise silently fall back to a default.
 */
export function readTypedConfig(
  raw: Record<string, string>,
  schema: ProjectSchema,
): Record<string, Scalar> {
  const prefix = `${schema.project}:`;
  const known = Object.keys(schema.keys);
  const values: Record<string, Scalar> = {};
  for (const [fullKey, value] of Object.entries(raw)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    const keySchema = schema.keys[key];
    if (!keySchema) {
      const suggestion = closestKey(key, known);
      throw new ConfigError(
        fullKey,
        undefined,
        `unknown key${suggestion ? `; did you mean ${prefix}${suggestion}?` : ""} (known keys: ${known.join(", ")})`,
      );
    }
    values[key] = typedValue(fullKey, keySchema, value);
  }
  for (const [key, keySchema] of Object.entries(schema.keys)) {
    if (!(key in values) && keySchema.default !== undefined) {
      values[key] = keySchema.default as Scalar;
    }
  }
  return values;
}

function optionalString(value: Scalar | undefined): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Turns `REGISTRY_KEY=value` strings into a map; the error names the config key and entry. */
export function parseExtraSettings(key: string, entries: string[]): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const [index, entry] of entries.entries()) {
    const separator = entry.indexOf("=");
    if (separator <= 0) {
      throw new ConfigError(`${key}[${index}]`, entry, "REGISTRY_KEY=value");
    }
    settings[entry.slice(0, separator)] = entry.slice(separator + 1);
  }
  return settings;
}

/** Builds the program's config from typed values. `password` arrives already wrapped as a secret. */
export function buildStackConfig(
  values: Record<string, Scalar>,
  project: string,
  password?: pulumi.Output<string>,
): StackConfig {
  const certificateFile = optionalString(values.registryTlsCertificateFile);
  const keyFile = optionalString(values.registryTlsKeyFile);
  const username = optionalString(values.registryUsername);
  return {
    dockerHost: optionalString(values.dockerHost),
    registry: {
      enabled: values.registryEnabled as boolean,
      image: values.registryImage as string,
      imageTar: optionalString(values.registryImageTar),
      containerName: values.registryContainerName as string,
      checkHostPort: values.registryCheckHostPort as boolean,
      hostPort: values.registryHostPort as number,
      bindAddress: values.registryBindAddress as string,
      advertisedEndpoint: optionalString(values.registryAdvertisedEndpoint),
      networks: values.registryNetworks as string[],
      volumeName: optionalString(values.registryVolumeName),
      hostPath: optionalString(values.registryHostPath),
      retainStorage: values.registryRetainStorage as boolean,
      deleteEnabled: values.registryDeleteEnabled as boolean,
      tls: certificateFile || keyFile ? { certificateFile, keyFile } : undefined,
      auth: username || password ? { username, password } : undefined,
      // Checked against the allowed policies by RegistryContainer.
      restartPolicy: values.registryRestartPolicy as RestartPolicy,
      extraSettings: parseExtraSettings(
        `${project}:registryExtraSettings`,
        values.registryExtraSettings as string[],
      ),
    },
  };
}

/** Which config key sets each RegistryContainer argument (for errors raised by the component). */
export const registryArgConfigKeys: Record<string, string> = {
  containerName: "registryContainerName",
  image: "registryImage",
  imageTar: "registryImageTar",
  hostPort: "registryHostPort",
  bindAddress: "registryBindAddress",
  advertisedEndpoint: "registryAdvertisedEndpoint",
  networks: "registryNetworks",
  volumeName: "registryVolumeName",
  hostPath: "registryHostPath",
  "tls.certificateFile": "registryTlsCertificateFile",
  "tls.keyFile": "registryTlsKeyFile",
  "auth.username": "registryUsername",
  "auth.password": "registryPassword",
  restartPolicy: "registryRestartPolicy",
  extraSettings: "registryExtraSettings",
};

/** The config key behind a component argument path such as `networks[1]` or `extraSettings.X`. */
export function configKeyForRegistryArg(project: string, arg: string): string | undefined {
  const base = arg.replace(/\[\d+\]$/, "").replace(/^extraSettings\..*$/, "extraSettings");
  const key = registryArgConfigKeys[base];
  return key && `${project}:${key}`;
}

/** Reads and validates this stack's config (call once from the program). */
export function loadStackConfig(): StackConfig {
  const schema = loadProjectSchema();
  const values = readTypedConfig(pulumi.runtime.allConfig(), schema);
  const password = new pulumi.Config(schema.project).getSecret("registryPassword");
  return buildStackConfig(values, schema.project, password === undefined ? undefined : password);
}
