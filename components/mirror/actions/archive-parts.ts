import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import * as path from "node:path";
import { ArchiveError, lockFileName, parseLock, verifyArchivedImage } from "./archive";

/**
 * The archive cut into parts of at most N bytes for media and links with a size limit (FAT32's
 * 4 GiB, upload limits): the OCI layout as one tar stream, cut into `images.tar.part-NNNN`
 * files, and a `parts.json` manifest with each part's size and sha256 and the whole stream's.
 * Joining checks every part before anything is unpacked, so a corrupt or missing part is named
 * and nothing is half-written.
 */

export const partsManifestName = "parts.json";
const partPrefix = "images.tar.part-";

export interface ArchivePart {
  /** File name in the parts directory. */
  name: string;
  bytes: number;
  sha256: string;
}

export interface PartsManifest {
  partsVersion: 1;
  /** Largest part allowed when it was written. */
  maxPartBytes: number;
  /** The whole tar stream. */
  totalBytes: number;
  sha256: string;
  parts: ArchivePart[];
}

/** `4G`, `700M`, `512K`, `1000` (bytes); powers of 1024. The error names the argument. Pure. */
export function parseByteSize(text: string, arg = "maxPartSize"): number {
  const match = /^(\d+)([KMGT]i?B?|B)?$/i.exec(text.trim());
  if (!match) {
    throw new ArchiveError(
      `${arg}: '${text}' is not a size; use bytes or a number with K, M, G or T (e.g. 4G, 700M)`,
    );
  }
  const exponent = { "": 0, B: 0, K: 1, M: 2, G: 3, T: 4 }[
    (match[2] ?? "").charAt(0).toUpperCase() as "" | "B" | "K" | "M" | "G" | "T"
  ];
  const bytes = Number(match[1]) * 1024 ** exponent;
  if (bytes < 1024) throw new ArchiveError(`${arg}: '${text}' is below the smallest part of 1 KiB`);
  return bytes;
}

function partName(index: number): string {
  return `${partPrefix}${String(index + 1).padStart(4, "0")}`;
}

/** Parses and checks parts.json; errors name the file. Pure. */
export function parsePartsManifest(text: string, file: string): PartsManifest {
  let manifest: PartsManifest;
  try {
    manifest = JSON.parse(text) as PartsManifest;
  } catch (error) {
    throw new ArchiveError(`${file}: not JSON (${(error as Error).message})`);
  }
  const hex = /^[0-9a-f]{64}$/;
  if (
    manifest?.partsVersion !== 1 ||
    !Array.isArray(manifest.parts) ||
    !hex.test(String(manifest.sha256)) ||
    manifest.parts.some(
      (part, index) =>
        part?.name !== partName(index) ||
        !Number.isInteger(part.bytes) ||
        !hex.test(String(part.sha256)),
    )
  ) {
    throw new ArchiveError(
      `${file}: not a parts manifest of this tool (partsVersion 1, parts ${partPrefix}0001... with bytes and sha256)`,
    );
  }
  return manifest;
}

/**
 * Writes the archive at `directory` as parts of at most `maxPartBytes` into the empty or new
 * directory `partsDirectory`, with the lock file beside them. The manifest is written last, so a
 * cut-short run leaves no parts.json (and joining refuses it).
 */
export async function splitArchive(
  directory: string,
  partsDirectory: string,
  maxPartBytes: number,
): Promise<PartsManifest> {
  if (!existsSync(path.join(directory, "index.json"))) {
    throw new ArchiveError(`${directory} is not an OCI image layout (no index.json)`);
  }
  mkdirSync(partsDirectory, { recursive: true });
  if (readdirSync(partsDirectory).length > 0) {
    throw new ArchiveError(
      `${partsDirectory} is not empty; give a new or empty directory for the parts`,
    );
  }
  const parts: ArchivePart[] = [];
  const whole = createHash("sha256");
  let totalBytes = 0;
  let current: { fd: number; hash: ReturnType<typeof createHash>; bytes: number } | undefined;
  const finishPart = () => {
    if (!current) return;
    closeSync(current.fd);
    parts.push({
      name: partName(parts.length),
      bytes: current.bytes,
      sha256: current.hash.digest("hex"),
    });
    current = undefined;
  };
  const write = (chunk: Buffer) => {
    let offset = 0;
    while (offset < chunk.length) {
      if (!current) {
        current = {
          fd: openSync(path.join(partsDirectory, partName(parts.length)), "wx"),
          hash: createHash("sha256"),
          bytes: 0,
        };
      }
      const take = Math.min(chunk.length - offset, maxPartBytes - current.bytes);
      const piece = chunk.subarray(offset, offset + take);
      writeSync(current.fd, piece);
      current.hash.update(piece);
      current.bytes += take;
      offset += take;
      if (current.bytes === maxPartBytes) finishPart();
    }
  };
  // Sorted names and fixed owners: the same archive gives the same stream.
  const tar = spawn(
    "tar",
    ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-C", directory, "-cf", "-", "."],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  tar.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
  try {
    for await (const chunk of tar.stdout as AsyncIterable<Buffer>) {
      whole.update(chunk);
      totalBytes += chunk.length;
      write(chunk);
    }
    const code = await new Promise<number | null>((resolve) => tar.on("close", resolve));
    if (code !== 0) throw new ArchiveError(`tar could not read ${directory}: ${stderr.trim()}`);
  } finally {
    finishPart();
  }
  const manifest: PartsManifest = {
    partsVersion: 1,
    maxPartBytes,
    totalBytes,
    sha256: whole.digest("hex"),
    parts,
  };
  const lockFile = path.join(directory, lockFileName);
  if (existsSync(lockFile))
    writeFileSync(path.join(partsDirectory, lockFileName), readFileSync(lockFile));
  const manifestFile = path.join(partsDirectory, partsManifestName);
  writeFileSync(`${manifestFile}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(`${manifestFile}.tmp`, manifestFile);
  return manifest;
}

function sha256OfFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}

/**
 * Checks every part against parts.json (present, size, sha256) and names the first that is
 * not right. Reads each part once.
 */
export async function verifyParts(partsDirectory: string): Promise<PartsManifest> {
  const manifestFile = path.join(partsDirectory, partsManifestName);
  if (!existsSync(manifestFile)) {
    throw new ArchiveError(
      `${partsDirectory} has no ${partsManifestName}; it is not a complete set of parts`,
    );
  }
  const manifest = parsePartsManifest(readFileSync(manifestFile, "utf8"), manifestFile);
  for (const part of manifest.parts) {
    const file = path.join(partsDirectory, part.name);
    if (!existsSync(file))
      throw new ArchiveError(`part ${part.name} is missing from ${partsDirectory}`);
    const bytes = statSync(file).size;
    if (bytes !== part.bytes) {
      throw new ArchiveError(
        `part ${part.name} has ${bytes} bytes, parts.json says ${part.bytes}; copy it again`,
      );
    }
    const sha256 = await sha256OfFile(file);
    if (sha256 !== part.sha256) {
      throw new ArchiveError(
        `part ${part.name} is corrupt (sha256 ${sha256}, parts.json says ${part.sha256}); copy it again`,
      );
    }
  }
  return manifest;
}

/**
 * Reassembles the archive into `directory` (which must not exist yet): checks every part, unpacks
 * the joined stream into a temporary directory beside it, checks the stream's sha256 and every
 * image against the lock file, then renames it into place.
 */
export async function joinArchive(
  partsDirectory: string,
  directory: string,
): Promise<PartsManifest> {
  if (existsSync(directory)) {
    throw new ArchiveError(`${directory} already exists; join into a new directory`);
  }
  const manifest = await verifyParts(partsDirectory);
  const staging = `${directory}.joining-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    const tar = spawn("tar", ["-C", staging, "-xf", "-"], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    tar.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
    const closed = new Promise<number | null>((resolve) => tar.on("close", resolve));
    const whole = createHash("sha256");
    for (const part of manifest.parts) {
      for await (const chunk of createReadStream(
        path.join(partsDirectory, part.name),
      ) as AsyncIterable<Buffer>) {
        whole.update(chunk);
        if (!tar.stdin.write(chunk))
          await new Promise((resolve) => tar.stdin.once("drain", resolve));
      }
    }
    tar.stdin.end();
    const code = await closed;
    if (code !== 0)
      throw new ArchiveError(`tar could not unpack the joined parts: ${stderr.trim()}`);
    if (whole.digest("hex") !== manifest.sha256) {
      throw new ArchiveError(
        `the joined parts do not hash to parts.json's sha256; copy the parts again`,
      );
    }
    const lockFile = path.join(staging, lockFileName);
    if (existsSync(lockFile)) {
      const lock = parseLock(readFileSync(lockFile, "utf8"), lockFile);
      const verified = new Set<string>();
      for (const image of lock.images) {
        await verifyArchivedImage(staging, image.source, image.digest, verified);
      }
    }
    renameSync(staging, directory);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
  return manifest;
}
