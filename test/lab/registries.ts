import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import * as path from "node:path";
import { htpasswdLine } from "../../components/registry/htpasswd";
import {
  registryContainerSpec,
  resolveRegistrySettings,
  type RegistryContainerSpec,
  type RegistrySettings,
} from "../../components/registry/spec";
import type { RegistryAccess } from "../../components/mirror/actions/registry-client";
import { labDir } from "./paths";
import { labRegistryImage } from "./registry-image";
import { runContainerSpec, type RunningContainer } from "./run-spec";
import {
  createCertificateAuthority,
  issueServerCertificate,
  type LabCertificateAuthority,
} from "./tls";

/** A port nobody listens on right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

let runCa: Promise<LabCertificateAuthority> | undefined;

/** The CA of this test run, created on first use. */
export function labCertificateAuthority(): Promise<LabCertificateAuthority> {
  runCa ??= createCertificateAuthority(path.join(labDir, `run-${process.pid}`, "tls"));
  return runCa;
}

export interface LabRegistryOptions {
  name: string;
  tls?: boolean;
  auth?: { username: string; password: string };
  deleteEnabled?: boolean;
  /** Extra DNS names for the certificate (e.g. the container name on a lab network). */
  extraNames?: string[];
  networks?: string[];
  /** Container labels (as RegistryContainer adds them, e.g. the stack label). */
  labels?: Record<string, string>;
}

export interface LabRegistry {
  name: string;
  /** host:port on the test machine's loopback. */
  endpoint: string;
  scheme: "http" | "https";
  settings: RegistrySettings;
  spec: RegistryContainerSpec<string>;
  container: RunningContainer;
  /** Directory with ca.crt for skopeo's --*-cert-dir (TLS only). */
  certDir?: string;
  caFile?: string;
  auth?: { username: string; password: string };
  /** A containers-auth.json holding this registry's credentials (auth only). */
  authFile?: string;
  stop(): Promise<void>;
}

/**
 * Starts a registry exactly as RegistryContainer declares it: settings and spec come from the
 * component's own pure functions, then the spec runs on the Docker engine.
 */
export async function startLabRegistry(options: LabRegistryOptions): Promise<LabRegistry> {
  const hostPort = await freePort();
  let tls: { certificatePem: string; keyPem: string } | undefined;
  let certDir: string | undefined;
  let caFile: string | undefined;
  if (options.tls) {
    const ca = await labCertificateAuthority();
    const certificate = await issueServerCertificate(ca, options.name, {
      dns: ["localhost", options.name, ...(options.extraNames ?? [])],
      ips: ["127.0.0.1"],
    });
    tls = {
      certificatePem: readFileSync(certificate.certificateFile, "utf8"),
      keyPem: readFileSync(certificate.keyFile, "utf8"),
    };
    certDir = path.join(ca.dir, `${options.name}-client`);
    mkdirSync(certDir, { recursive: true });
    caFile = path.join(certDir, "ca.crt");
    writeFileSync(caFile, readFileSync(ca.caFile));
  }
  const settings = resolveRegistrySettings({
    containerName: options.name,
    image: labRegistryImage,
    hostPort,
    bindAddress: "127.0.0.1",
    deleteEnabled: options.deleteEnabled,
    tls: tls && { certificatePem: tls.certificatePem, keyPem: tls.keyPem },
    auth: options.auth && { username: options.auth.username, hasPassword: true },
    networks: options.networks,
    advertisedEndpoint: `127.0.0.1:${hostPort}`,
    restartPolicy: "no",
  });
  const spec = registryContainerSpec<string>(settings, {
    tlsKeyPem: tls?.keyPem,
    htpasswd: options.auth && htpasswdLine(options.auth.username, options.auth.password),
  });
  const container = await runContainerSpec(spec, { labels: options.labels });
  let authFile: string | undefined;
  if (options.auth) {
    authFile = path.join(labDir, `run-${process.pid}`, `${options.name}-auth.json`);
    mkdirSync(path.dirname(authFile), { recursive: true });
    const token = Buffer.from(`${options.auth.username}:${options.auth.password}`).toString(
      "base64",
    );
    writeFileSync(authFile, JSON.stringify({ auths: { [settings.endpoint]: { auth: token } } }), {
      mode: 0o600,
    });
  }
  return {
    name: options.name,
    endpoint: settings.endpoint,
    scheme: settings.tls ? "https" : "http",
    settings,
    spec,
    container,
    certDir,
    caFile,
    auth: options.auth,
    authFile,
    stop: () => container.remove(),
  };
}

/** How the mirror actions reach a lab registry; `withPassword: false` keeps only the user. */
export function registryAccessOf(registry: LabRegistry, withPassword = true): RegistryAccess {
  return {
    host: registry.endpoint,
    scheme: registry.scheme,
    caFile: registry.caFile,
    username: registry.auth?.username,
    password: withPassword ? registry.auth?.password : undefined,
  };
}
