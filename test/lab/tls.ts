import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { run } from "./exec";

export interface LabCertificateAuthority {
  dir: string;
  caFile: string;
  caKeyFile: string;
}

export interface LabServerCertificate {
  certificateFile: string;
  keyFile: string;
}

/** A CA made for this test run (EC P-256: fast to generate). */
export async function createCertificateAuthority(dir: string): Promise<LabCertificateAuthority> {
  mkdirSync(dir, { recursive: true });
  const caFile = path.join(dir, "ca.crt");
  const caKeyFile = path.join(dir, "ca.key");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    caKeyFile,
    "-out",
    caFile,
    "-days",
    "2",
    "-subj",
    "/CN=airgap-conformance lab CA",
  ]);
  return { dir, caFile, caKeyFile };
}

/** A server certificate signed by the lab CA, valid for the given DNS names and IPs. */
export async function issueServerCertificate(
  ca: LabCertificateAuthority,
  name: string,
  subjectAltNames: { dns?: string[]; ips?: string[] },
): Promise<LabServerCertificate> {
  const keyFile = path.join(ca.dir, `${name}.key`);
  const csrFile = path.join(ca.dir, `${name}.csr`);
  const certificateFile = path.join(ca.dir, `${name}.crt`);
  const extFile = path.join(ca.dir, `${name}.ext`);
  const sans = [
    ...(subjectAltNames.dns ?? []).map((dns) => `DNS:${dns}`),
    ...(subjectAltNames.ips ?? []).map((ip) => `IP:${ip}`),
  ];
  writeFileSync(extFile, `subjectAltName=${sans.join(",")}\nextendedKeyUsage=serverAuth\n`);
  await run("openssl", [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    csrFile,
    "-subj",
    `/CN=${name}`,
  ]);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csrFile,
    "-CA",
    ca.caFile,
    "-CAkey",
    ca.caKeyFile,
    "-CAcreateserial",
    "-out",
    certificateFile,
    "-days",
    "2",
    "-extfile",
    extFile,
  ]);
  return { certificateFile, keyFile };
}
