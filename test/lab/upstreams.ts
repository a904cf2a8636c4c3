import { run } from "./exec";
import { labDir } from "./paths";
import { startLabRegistry, type LabRegistry } from "./registries";
import {
  makeLayer,
  makeManifest,
  makeRandomLayer,
  multiPlatformImage,
  singlePlatformImage,
  writeOciLayout,
  type SyntheticImage,
} from "./synthetic-images";
import { scratchDir } from "../scratch";

/** An image seeded into a lab upstream under its real upstream name. */
export interface SeededImage {
  /** The real name, e.g. registry.k8s.io/pause:3.10. */
  name: string;
  upstreamRegistry: string;
  repository: string;
  tag: string;
  /** Digest of what the tag points to (an index for multi-arch images). */
  digest: string;
  multiArch: boolean;
}

export interface LabUpstreams {
  /** Real upstream host -> the lab registry playing it. */
  registries: Record<string, LabRegistry>;
  images: SeededImage[];
  /** A "ref name -> image" OCI layout with every seeded image (for archive tests). */
  layoutDir: string;
}

async function seed(
  registry: LabRegistry,
  layoutDir: string,
  refName: string,
  repository: string,
  tag: string,
) {
  await run("skopeo", [
    "copy",
    "--all",
    "--preserve-digests",
    "--dest-tls-verify=false",
    `oci:${layoutDir}:${refName}`,
    `docker://${registry.endpoint}/${repository}:${tag}`,
  ]);
}

let upstreams: Promise<LabUpstreams> | undefined;

/**
 * Two plain-http registries playing registry.k8s.io and docker.io, seeded with synthetic images
 * under real names: busybox is a linux/amd64 + linux/arm64 index; pause and nginx share a base
 * layer with busybox's amd64 image. Started once per test run.
 */
export function labUpstreams(): Promise<LabUpstreams> {
  upstreams ??= (async () => {
    const [k8s, dockerHub] = await Promise.all([
      startLabRegistry({ name: "lab-upstream-registry-k8s-io" }),
      startLabRegistry({ name: "lab-upstream-docker-io" }),
    ]);
    const base = await makeLayer({ "etc/os-release": "ID=airgap-lab\n" });
    const amd64 = { os: "linux" as const, architecture: "amd64" };
    const arm64 = { os: "linux" as const, architecture: "arm64" };
    const images: Array<{
      upstream: string;
      repository: string;
      tag: string;
      image: SyntheticImage;
    }> = [
      {
        upstream: "registry.k8s.io",
        repository: "e2e-test-images/busybox",
        tag: "1.36.1-1",
        image: multiPlatformImage([
          makeManifest([base, await makeRandomLayer("bin/busybox", 64 * 1024)], amd64),
          makeManifest(
            [
              await makeLayer({ "etc/os-release": "ID=airgap-lab-arm\n" }),
              await makeRandomLayer("bin/busybox", 64 * 1024),
            ],
            arm64,
          ),
        ]),
      },
      {
        upstream: "registry.k8s.io",
        repository: "pause",
        tag: "3.10",
        image: singlePlatformImage(
          makeManifest([base, await makeRandomLayer("pause", 16 * 1024)], amd64),
        ),
      },
      {
        upstream: "docker.io",
        repository: "library/nginx",
        tag: "1.27-alpine",
        image: singlePlatformImage(
          makeManifest([base, await makeRandomLayer("usr/sbin/nginx", 128 * 1024)], amd64),
        ),
      },
    ];
    const layoutDir = scratchDir("upstream-layout-", labDir);
    writeOciLayout(
      layoutDir,
      Object.fromEntries(
        images.map((entry) => [`${entry.upstream}/${entry.repository}:${entry.tag}`, entry.image]),
      ),
    );
    const registries: Record<string, LabRegistry> = {
      "registry.k8s.io": k8s,
      "docker.io": dockerHub,
    };
    await Promise.all(
      images.map((entry) =>
        seed(
          registries[entry.upstream],
          layoutDir,
          `${entry.upstream}/${entry.repository}:${entry.tag}`,
          entry.repository,
          entry.tag,
        ),
      ),
    );
    return {
      registries,
      layoutDir,
      images: images.map((entry) => ({
        name: `${entry.upstream}/${entry.repository}:${entry.tag}`,
        upstreamRegistry: entry.upstream,
        repository: entry.repository,
        tag: entry.tag,
        digest: entry.image.top.digest,
        multiArch: entry.image.manifests.length > 1,
      })),
    };
  })();
  return upstreams;
}
