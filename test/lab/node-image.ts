import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as path from "node:path";
import { imageExists } from "./engine";
import { run } from "./exec";
import { labDir } from "./paths";

/**
 * The lab's cluster node: a Debian bookworm rootfs made with debootstrap (containerd 1.6, runc,
 * openssh-server, podman) and `docker import`ed, because no image can be pulled here. It has no
 * systemd: a small init script manages containerd (the way sysvinit nodes do) and the entry
 * point starts sshd and containerd. Built once; bump the revision suffix when the recipe
 * changes so cached images are rebuilt.
 */
export const labNodeImage = "airgap-lab/node:bookworm-r2";

/**
 * podman needs a container network stack (virtual package: netavark provides it, debootstrap
 * does not resolve virtual packages) and gpgme pulls in gnupg's whole suite unless plain gpg
 * satisfies it. Measured: about 1.6 minutes and 300 MB after the caches are dropped.
 */
const packages = [
  "containerd",
  "runc",
  "openssh-server",
  "ca-certificates",
  "podman",
  "netavark",
  "gpg",
];
const excluded = ["gnupg"];

// No systemd in a container: a sysvinit-style script is what restarts containerd, as on
// nodes without systemd. The node script calls `/etc/init.d/containerd restart`.
const containerdInit = `#!/bin/sh
# Lab node: containerd under start-stop-daemon (no systemd in this container).
pidfile=/run/containerd.pid
case "$1" in
  start)
    mkdir -p /run/containerd
    start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$pidfile" \\
      --output /var/log/containerd.log --exec /usr/bin/containerd
    tries=0
    until ctr version >/dev/null 2>&1; do
      tries=$((tries + 1))
      [ "$tries" -lt 100 ] || { echo "containerd did not start" >&2; exit 1; }
      sleep 0.2
    done
    ;;
  stop)
    start-stop-daemon --stop --quiet --pidfile "$pidfile" --retry TERM/10/KILL/5 --remove-pidfile || true
    ;;
  restart)
    "$0" stop
    "$0" start
    ;;
  *)
    echo "usage: $0 start|stop|restart" >&2
    exit 2
    ;;
esac
`;

// PID 1 must reap orphans: a stopped containerd left as a zombie still looks alive to
// start-stop-daemon, which then waits out its whole TERM/KILL schedule (15 s per restart).
// dash's `wait` reaps any child, adopted ones included.
const entrypoint = `#!/bin/sh
# Lab node entry point: sshd and containerd, then reap children until stopped.
mkdir -p /run/sshd
/usr/sbin/sshd
/etc/init.d/containerd start
trap 'exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
`;

// podman on the container's overlay root cannot stack overlayfs: vfs needs no kernel support.
const storageConf = `[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
`;

/**
 * The Debian mirror this machine's apt uses (so the lab needs no address of its own), or
 * AIRGAP_LAB_DEBIAN_MIRROR.
 */
export function debianMirror(): string {
  const fromEnv = process.env.AIRGAP_LAB_DEBIAN_MIRROR;
  if (fromEnv) return fromEnv;
  const candidates: string[] = [];
  const sourcesDir = "/etc/apt/sources.list.d";
  if (existsSync(sourcesDir)) {
    for (const file of readdirSync(sourcesDir).filter((name) => name.endsWith(".sources"))) {
      for (const stanza of readFileSync(path.join(sourcesDir, file), "utf8").split(/\n\s*\n/)) {
        const field = (key: string) =>
          new RegExp(`^${key}:\\s*(.+)$`, "mi").exec(stanza)?.[1].trim().split(/\s+/) ?? [];
        if (!field("Types").includes("deb")) continue;
        if (!field("Suites").some((suite) => /^[a-z]+$/.test(suite))) continue;
        candidates.push(...field("URIs"));
      }
    }
  }
  if (existsSync("/etc/apt/sources.list")) {
    for (const line of readFileSync("/etc/apt/sources.list", "utf8").split("\n")) {
      const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+([a-z]+)\s/.exec(line);
      if (match) candidates.push(match[1]);
    }
  }
  const mirror = candidates.find((uri) => /^https?:\/\//.test(uri) && !/security/.test(uri));
  if (!mirror) {
    throw new Error(
      "the node image needs a Debian mirror: none found in /etc/apt/sources.list*; set AIRGAP_LAB_DEBIAN_MIRROR",
    );
  }
  return mirror;
}

/** Builds the node image once; later runs reuse it. Returns how long the build took (0 if cached). */
export async function ensureLabNodeImage(): Promise<{ image: string; buildSeconds: number }> {
  if (await imageExists(labNodeImage)) return { image: labNodeImage, buildSeconds: 0 };
  for (const tool of ["debootstrap", "tar"]) {
    const found = await run("sh", ["-c", `command -v ${tool}`], { allowFailure: true });
    if (found.code !== 0) {
      throw new Error(`the node image needs '${tool}'; run scripts/lab-prereqs.sh (as root)`);
    }
  }
  const started = Date.now();
  mkdirSync(labDir, { recursive: true });
  const workDir = mkdtempSync(path.join(labDir, "node-image-"));
  const rootfs = path.join(workDir, "rootfs");
  try {
    const built = await run(
      "debootstrap",
      [
        "--variant=minbase",
        `--include=${packages.join(",")}`,
        `--exclude=${excluded.join(",")}`,
        "bookworm",
        rootfs,
        debianMirror(),
      ],
      { allowFailure: true },
    );
    if (built.code !== 0) {
      const log = path.join(rootfs, "debootstrap", "debootstrap.log");
      throw new Error(
        `debootstrap failed (${built.code}): ${built.stderr.trim().split("\n").slice(-5).join("\n")}${existsSync(log) ? `\nsee ${log}` : ""}`,
      );
    }
    // Caches and docs are not needed at run time: about 150 MB less to import.
    for (const dir of [
      "var/cache/apt",
      "var/lib/apt/lists",
      "usr/share/doc",
      "usr/share/man",
      "usr/share/locale",
    ]) {
      rmSync(path.join(rootfs, dir), { recursive: true, force: true });
    }
    writeFileSync(path.join(rootfs, "etc/init.d/containerd"), containerdInit, { mode: 0o755 });
    mkdirSync(path.join(rootfs, "usr/local/sbin"), { recursive: true });
    writeFileSync(path.join(rootfs, "usr/local/sbin/lab-node-init"), entrypoint, { mode: 0o755 });
    writeFileSync(path.join(rootfs, "etc/containers/storage.conf"), storageConf);
    const tarball = path.join(workDir, "rootfs.tar");
    await run("tar", ["--numeric-owner", "-C", rootfs, "-cf", tarball, "."]);
    await run("docker", [
      "import",
      "-c",
      'CMD ["/usr/local/sbin/lab-node-init"]',
      tarball,
      labNodeImage,
    ]);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  return { image: labNodeImage, buildSeconds: Math.round((Date.now() - started) / 1000) };
}
