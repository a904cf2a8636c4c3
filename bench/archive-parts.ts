/**
 * Archive parts benchmark (not a test): an OCI layout of N images of 8 MB random layers sharing
 * a base layer, written to parts of 64 MB and joined back with every part and image checked,
 * against the floor of copying the same directory (`cp -r`) and of hashing every blob once.
 * Printed as times and ratios. Run: npm run bench:archive [-- N]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { joinArchive, splitArchive } from "../components/mirror/actions/archive-parts";
import { measureArchive } from "../components/mirror/actions/archive-size";
import { hashEveryBlob, timed, writeBenchLayout } from "./archive-fixture";

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 20);
  const root = mkdtempSync(path.join(os.tmpdir(), "bench-archive-"));
  try {
    const archive = path.join(root, "archive");
    writeBenchLayout(archive, count);
    const [measureSeconds, report] = await timed(() => measureArchive(archive));
    const [copySeconds] = await timed(() =>
      execFileSync("cp", ["-r", archive, path.join(root, "copy")]),
    );
    const [hashSeconds] = await timed(() => hashEveryBlob(archive));
    const [splitSeconds, manifest] = await timed(() =>
      splitArchive(archive, path.join(root, "parts"), 64 * 1024 * 1024),
    );
    const [joinSeconds] = await timed(() =>
      joinArchive(path.join(root, "parts"), path.join(root, "joined")),
    );
    const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
    console.log(
      `${count} images, ${mib(report.totalBytes)} MiB in the layout (${mib(report.naiveBytes)} MiB image by image), ${manifest.parts.length} parts of 64 MiB`,
    );
    console.log(`size report (manifests only): ${measureSeconds.toFixed(3)} s`);
    console.log(`cp -r of the layout:          ${copySeconds.toFixed(2)} s`);
    console.log(`sha256 of every blob:         ${hashSeconds.toFixed(2)} s`);
    console.log(
      `split into parts:             ${splitSeconds.toFixed(2)} s  (${(splitSeconds / copySeconds).toFixed(1)}x cp -r)`,
    );
    console.log(
      `join, all parts and images checked: ${joinSeconds.toFixed(2)} s  (${(joinSeconds / (copySeconds + 2 * hashSeconds)).toFixed(1)}x cp -r + hashing twice)`,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

void main();
