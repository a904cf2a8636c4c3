import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { imageExists } from "./engine";
import { run } from "./exec";

/**
 * The lab's stand-in for `registry:2`: CNCF distribution 2.8 from Debian's docker-registry
 * package, imported as an image because nothing can be pulled here. Busybox provides the `sh`
 * and `wget` that the upstream (Alpine-based) image has, which our healthcheck relies on.
 * Bump the revision suffix when the recipe changes so cached images are rebuilt.
 */
export const labRegistryImage = "airgap-lab/registry:2.8.2-r1";

// Same settings as the upstream image's /etc/docker/registry/config.yml.
const upstreamConfig = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`;

/** Builds the registry image once; later runs reuse the cached image. */
export async function ensureLabRegistryImage(): Promise<string> {
  if (await imageExists(labRegistryImage)) return labRegistryImage;
  const rootfs = mkdtempSync(path.join(os.tmpdir(), "lab-registry-rootfs-"));
  try {
    for (const dir of ["bin", "etc/docker/registry", "lib/x86_64-linux-gnu", "lib64", "tmp"]) {
      mkdirSync(path.join(rootfs, dir), { recursive: true });
    }
    mkdirSync(path.join(rootfs, "var/lib/registry"), { recursive: true });
    copyFileSync("/usr/bin/docker-registry", path.join(rootfs, "bin/registry"));
    copyFileSync("/bin/busybox", path.join(rootfs, "bin/busybox"));
    for (const applet of ["sh", "wget", "cat", "ls"]) {
      symlinkSync("busybox", path.join(rootfs, "bin", applet));
    }
    copyFileSync(
      "/lib/x86_64-linux-gnu/libc.so.6",
      path.join(rootfs, "lib/x86_64-linux-gnu/libc.so.6"),
    );
    copyFileSync("/lib64/ld-linux-x86-64.so.2", path.join(rootfs, "lib64/ld-linux-x86-64.so.2"));
    writeFileSync(path.join(rootfs, "etc/docker/registry/config.yml"), upstreamConfig);
    writeFileSync(path.join(rootfs, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\n");
    const tarball = path.join(rootfs, "..", `${path.basename(rootfs)}.tar`);
    await run("tar", ["-C", rootfs, "-cf", tarball, "."]);
    try {
      await run("docker", [
        "import",
        "-c",
        'ENTRYPOINT ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]',
        "-c",
        "EXPOSE 5000",
        "-c",
        'VOLUME ["/var/lib/registry"]',
        tarball,
        labRegistryImage,
      ]);
    } finally {
      rmSync(tarball, { force: true });
    }
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  return labRegistryImage;
}
