/** What the archive benchmarks share: timing, a layout of N images, the hashing floor. */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { bytesOf, writeLayout } from "../test/unit/mirror/oci-layout";

/** Seconds the work took, and its result. */
export async function timed<T>(work: () => Promise<T> | T): Promise<[number, T]> {
  const start = process.hrtime.bigint();
  const result = await work();
  return [Number(process.hrtime.bigint() - start) / 1e9, result];
}

/** An OCI layout of `count` images, each an 8 MB random layer on a shared 8 MB base; their digests. */
export function writeBenchLayout(archive: string, count: number): Record<string, string> {
  const base = bytesOf("base", 8 * 1024 * 1024);
  return writeLayout(
    archive,
    Array.from({ length: count }, (_, index) => ({
      name: `registry.k8s.io/bench/image-${index}:1`,
      platforms: [
        { platform: "linux/amd64", layers: [base, bytesOf(`layer ${index}`, 8 * 1024 * 1024)] },
      ],
    })),
  );
}

/** The floor of reading and hashing every blob of the layout once. */
export function hashEveryBlob(archive: string): void {
  const blobs = path.join(archive, "blobs", "sha256");
  for (const name of readdirSync(blobs)) {
    createHash("sha256")
      .update(readFileSync(path.join(blobs, name)))
      .digest();
  }
}
