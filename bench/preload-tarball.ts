/**
 * Preload tarball benchmark (not a test): an OCI layout of N images of 8 MB random layers
 * sharing a base layer, written as the preload tarball (every blob checked and hashed once,
 * the tarball hashed as it is written), against the floors of `tar -cf` of the same blobs (no
 * hashing) and of hashing every blob once. Printed as times and ratios.
 * Run: npm run bench:preload [-- N]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writePreloadTarball } from "../components/nodes/actions/preload-tarball";
import { hashEveryBlob, timed, writeBenchLayout } from "./archive-fixture";

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 20);
  const root = mkdtempSync(path.join(os.tmpdir(), "bench-preload-"));
  try {
    const archive = path.join(root, "archive");
    const digests = writeBenchLayout(archive, count);
    const images = Object.entries(digests).map(([source, digest]) => ({ source, digest }));
    const [tarSeconds] = await timed(() =>
      execFileSync("tar", ["-cf", path.join(root, "floor.tar"), "-C", archive, "blobs"]),
    );
    const [hashSeconds] = await timed(() => hashEveryBlob(archive));
    const request = { archiveDirectory: archive, images, platform: "linux/amd64" };
    const [writeSeconds, tarball] = await timed(() =>
      writePreloadTarball({ ...request, outputDirectory: path.join(root, "first") }),
    );
    const [againSeconds, again] = await timed(() =>
      writePreloadTarball({ ...request, outputDirectory: path.join(root, "again") }),
    );
    const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
    console.log(`${count} images, tarball ${mib(tarball.size)} MiB`);
    console.log(`tar -cf of the blobs (floor):   ${tarSeconds.toFixed(2)} s`);
    console.log(`sha256 of every blob (floor):   ${hashSeconds.toFixed(2)} s`);
    console.log(`preload tarball (checked):      ${writeSeconds.toFixed(2)} s`);
    console.log(`ratio to tar -cf:               ${(writeSeconds / tarSeconds).toFixed(2)}`);
    console.log(
      `ratio to tar -cf + sha256:      ${(writeSeconds / (tarSeconds + hashSeconds)).toFixed(2)}`,
    );
    console.log(
      `written again: ${againSeconds.toFixed(2)} s, same sha256: ${again.sha256 === tarball.sha256}`,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
