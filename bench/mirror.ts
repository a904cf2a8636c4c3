/**
 * Mirroring benchmark (not a test): N images of 8 MB random data sharing a base layer, copied
 * from a lab upstream into a fresh mirror by
 *   (a) the docker pull / tag / push loop of the hydrophone air-gap guide,
 *   (b) skopeo copy, one image after the other,
 *   (s) skopeo sync, one process for the whole batch,
 *   (c) our copy as the component runs it (the dynamic provider's copy, engine-parallel, in one
 *       provider process),
 *   (d) our up-to-date check of all images, once present, against
 *   (r) skopeo copy of every image again, one by one, into the mirror that holds them,
 *   (f) the true floor: every unique blob read and written once, cross-repository mounts for
 *       the other repositories, manifests pushed; raw HTTP, same parallelism as (c);
 * measured in one run, printed as times and ratios. Run: npm run bench:mirror [-- N]
 */
import { randomBytes } from "node:crypto";
import * as http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  checkImages,
  mapWithConcurrency,
  type RegistryAccess,
} from "../components/mirror/actions/registry-client";
import { emptyCopyStats } from "../components/mirror/actions/registry-copy";
import { planImageCopies } from "../components/mirror/plan";
import { copyWithEngine } from "../components/mirror/provider-runtime";
import { ensureDockerEngine, stopDockerEngineIfStarted } from "../test/lab/engine";
import { run } from "../test/lab/exec";
import { labDir } from "../test/lab/paths";
import { ensureLabRegistryImage } from "../test/lab/registry-image";
import { startLabRegistry, type LabRegistry } from "../test/lab/registries";
import { removeLabLeftovers } from "../test/lab/run-spec";
import {
  makeLayer,
  makeManifest,
  singlePlatformImage,
  writeOciLayout,
  type SyntheticImage,
} from "../test/lab/synthetic-images";

const imageCount = Number(process.argv[2] ?? 20);
const layerBytes = 8 * 1024 * 1024;
/** Pulumi's engine runs independent resource operations in parallel; cap like `--parallel 8`. */
const engineParallelism = 8;

function access(registry: LabRegistry): RegistryAccess {
  return { host: registry.endpoint, scheme: "http" };
}

async function timed(label: string, task: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await task();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`  ${label.padEnd(58)} ${seconds.toFixed(2)} s`);
  return seconds;
}

function request(
  method: string,
  url: string,
  body?: Buffer,
  headers: Record<string, string> = {},
  agent?: http.Agent,
) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>(
    (resolve, reject) => {
      const req = http.request(url, { method, headers, agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
      });
      req.on("error", reject);
      req.end(body);
    },
  );
}

/**
 * The true floor: each unique blob is read from the upstream once and written into the first
 * repository that needs it; every other repository gets it by a cross-repository mount (no
 * bytes); each manifest is read and pushed once. Raw HTTP over pooled connections, nothing
 * checked, `engineParallelism` images at a time.
 */
async function floorCopy(
  from: LabRegistry,
  to: LabRegistry,
  images: { repository: string; tag: string; image: SyntheticImage }[],
): Promise<{ uploads: number; mounts: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: engineParallelism * 2 });
  const placed = new Map<string, Promise<string>>();
  let uploads = 0;
  let mounts = 0;
  const upload = async (repository: string, digest: string, location?: string) => {
    if (location === undefined) {
      const started = await request(
        "POST",
        `http://${to.endpoint}/v2/${repository}/blobs/uploads/`,
        undefined,
        {},
        agent,
      );
      location = String(started.headers.location);
    }
    const url = new URL(location, `http://${to.endpoint}`);
    url.searchParams.set("digest", digest);
    // Streamed straight from the GET into the PUT, as a copier at the floor would.
    const status = await new Promise<number>((resolve, reject) => {
      http
        .get(`http://${from.endpoint}/v2/${repository}/blobs/${digest}`, { agent }, (got) => {
          const put = http.request(
            url,
            {
              method: "PUT",
              agent,
              headers: {
                "Content-Type": "application/octet-stream",
                "Content-Length": String(got.headers["content-length"]),
              },
            },
            (answer) => {
              answer.resume();
              answer.on("end", () => resolve(answer.statusCode ?? 0));
            },
          );
          put.on("error", reject);
          got.pipe(put);
        })
        .on("error", reject);
    });
    if (status !== 201) throw new Error(`blob PUT answered ${status}`);
    uploads++;
  };
  await mapWithConcurrency(images, engineParallelism, async ({ repository, tag, image }) => {
    const manifest = image.manifests[0];
    await Promise.all(
      [manifest.config, ...manifest.layers].map(async (blob) => {
        const holder = placed.get(blob.digest);
        if (holder === undefined) {
          const placing = upload(repository, blob.digest).then(() => repository);
          placed.set(blob.digest, placing);
          await placing;
          return;
        }
        const mounted = await request(
          "POST",
          `http://${to.endpoint}/v2/${repository}/blobs/uploads/?mount=${blob.digest}&from=${await holder}`,
          undefined,
          {},
          agent,
        );
        if (mounted.status === 201) mounts++;
        else await upload(repository, blob.digest, String(mounted.headers.location));
      }),
    );
    const got = await request(
      "GET",
      `http://${from.endpoint}/v2/${repository}/manifests/${tag}`,
      undefined,
      { Accept: "application/vnd.oci.image.manifest.v1+json" },
      agent,
    );
    const put = await request(
      "PUT",
      `http://${to.endpoint}/v2/${repository}/manifests/${tag}`,
      got.body,
      { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
      agent,
    );
    if (put.status !== 201) throw new Error(`manifest PUT answered ${put.status}`);
  });
  agent.destroy();
  return { uploads, mounts };
}

async function main() {
  await ensureDockerEngine();
  await removeLabLeftovers();
  await ensureLabRegistryImage();
  const scratch = mkdtempSync(path.join(labDir, "bench-"));
  const registries: LabRegistry[] = [];
  const start = async (name: string) => {
    const registry = await startLabRegistry({ name });
    registries.push(registry);
    return registry;
  };
  try {
    console.log(
      `mirroring benchmark: ${imageCount} images, each an ${layerBytes / 2 ** 20} MB random layer on a shared base layer`,
    );
    const base = await makeLayer({
      "etc/os-release": "ID=bench\n",
      "lib/base.bin": randomBytes(2 * 1024 * 1024),
    });
    const images: { repository: string; tag: string; image: SyntheticImage }[] = [];
    for (let index = 0; index < imageCount; index++) {
      const layer = await makeLayer({ [`app/${index}.bin`]: randomBytes(layerBytes) });
      images.push({
        repository: `bench/app-${index}`,
        tag: "1.0",
        image: singlePlatformImage(
          makeManifest([base, layer], { os: "linux", architecture: "amd64" }),
        ),
      });
    }
    const layout = path.join(scratch, "layout");
    writeOciLayout(
      layout,
      Object.fromEntries(images.map((entry) => [`${entry.repository}:${entry.tag}`, entry.image])),
    );
    const upstream = await start("bench-upstream");
    await mapWithConcurrency(images, 4, (entry) =>
      run("skopeo", [
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${layout}:${entry.repository}:${entry.tag}`,
        `docker://${upstream.endpoint}/${entry.repository}:${entry.tag}`,
      ]),
    );
    const sources = images.map((entry) => `registry.k8s.io/${entry.repository}:${entry.tag}`);
    const [mirrorA, mirrorB, mirrorS, mirrorC, mirrorF] = await Promise.all(
      [
        "bench-mirror-a",
        "bench-mirror-b",
        "bench-mirror-s",
        "bench-mirror-c",
        "bench-mirror-f",
      ].map(start),
    );
    const skopeoOneByOne = async (to: LabRegistry) => {
      for (const entry of images) {
        await run("skopeo", [
          "copy",
          "--all",
          "--preserve-digests",
          "--src-tls-verify=false",
          "--dest-tls-verify=false",
          `docker://${upstream.endpoint}/${entry.repository}:${entry.tag}`,
          `docker://${to.endpoint}/${entry.repository}:${entry.tag}`,
        ]);
      }
    };
    const expected = images.map((entry) => ({
      repository: entry.repository,
      reference: entry.tag,
      expectedDigest: entry.image.top.digest,
    }));
    const verify = async (label: string, registry: LabRegistry) => {
      const results = await checkImages(access(registry), expected);
      const good = results.filter((result) => result.state === "present").length;
      if (good !== imageCount)
        throw new Error(`${label}: ${good} of ${imageCount} images present with their digest`);
    };

    console.log("results:");
    const a = await timed("(a) docker pull / tag / push loop (hydrophone guide)", async () => {
      for (const entry of images) {
        const from = `${upstream.endpoint}/${entry.repository}:${entry.tag}`;
        const to = `${mirrorA.endpoint}/${entry.repository}:${entry.tag}`;
        await run("docker", ["pull", "-q", from]);
        await run("docker", ["tag", from, to]);
        await run("docker", ["push", "-q", to]);
      }
    });
    const b = await timed("(b) skopeo copy, one by one", () => skopeoOneByOne(mirrorB));
    await verify("(b)", mirrorB);
    const syncFile = path.join(scratch, "sync.yaml");
    writeFileSync(
      syncFile,
      JSON.stringify({
        [upstream.endpoint]: {
          "tls-verify": false,
          images: Object.fromEntries(images.map((entry) => [entry.repository, [entry.tag]])),
        },
      }),
    );
    const s = await timed("(s) skopeo sync, one process for the batch", () =>
      run("skopeo", [
        "sync",
        "--all",
        "--preserve-digests",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        syncFile,
        // Without --scoped, sync keeps only the last path component: one sync per directory.
        `${mirrorS.endpoint}/bench`,
      ]),
    );
    await verify("(s)", mirrorS);
    const plan = planImageCopies({
      images: sources,
      source: { kind: "upstream", registries: { "registry.k8s.io": access(upstream) } },
      destination: { kind: "registry", access: access(mirrorC), nodeEndpoint: "mirror.lab:5000" },
    });
    const stats = emptyCopyStats();
    const c = await timed(
      `(c) our copy, as the component runs it (${engineParallelism} in parallel)`,
      () =>
        mapWithConcurrency(plan.copies, engineParallelism, (copy) =>
          copyWithEngine(copy.request, { retries: 3, stats }),
        ),
    );
    await verify("(c)", mirrorC);
    console.log(
      `      ${stats.blobsUploaded} blobs uploaded, ${stats.blobsMounted} mounted, ${stats.blobsPresent} present, ${stats.manifestsPushed} manifests pushed`,
    );
    const checks = plan.copies.map((copy) => ({
      repository: copy.request.to.transport === "docker" ? copy.request.to.repository : "",
      reference: "1.0",
    }));
    let present = 0;
    const d = await timed("(d) our up-to-date check of every image (manifest HEADs)", async () => {
      present = (await checkImages(access(mirrorC), checks)).filter(
        (result) => result.state === "present",
      ).length;
    });
    if (present !== imageCount)
      throw new Error(`up-to-date check found ${present} of ${imageCount} images`);
    const r = await timed("(r) skopeo copy again into the mirror holding every image", () =>
      skopeoOneByOne(mirrorB),
    );
    let floor = { uploads: 0, mounts: 0 };
    const f = await timed("(f) true floor: unique blobs once, mounts, manifests", async () => {
      floor = await floorCopy(upstream, mirrorF, images);
    });
    await verify("(f)", mirrorF);
    console.log(`      ${floor.uploads} blobs uploaded, ${floor.mounts} mounted`);

    console.log("ratios (goal):");
    console.log(`  ours / skopeo one by one      (c)/(b) = ${(c / b).toFixed(2)}  (<= 0.50)`);
    console.log(`  ours / docker loop            (c)/(a) = ${(c / a).toFixed(2)}  (<= 0.20)`);
    console.log(`  ours / true floor             (c)/(f) = ${(c / f).toFixed(2)}  (<= 1.50)`);
    console.log(`  up-to-date / skopeo re-copy   (d)/(r) = ${(d / r).toFixed(3)} (<= 0.050)`);
    console.log(
      `  skopeo sync / one by one      (s)/(b) = ${(s / b).toFixed(2)}  (for comparison)`,
    );
    console.log(`  ours / skopeo sync            (c)/(s) = ${(c / s).toFixed(2)}  (engine choice)`);
    for (const entry of images) {
      await run(
        "docker",
        [
          "rmi",
          "-f",
          `${upstream.endpoint}/${entry.repository}:${entry.tag}`,
          `${mirrorA.endpoint}/${entry.repository}:${entry.tag}`,
        ],
        { allowFailure: true },
      );
    }
  } finally {
    await Promise.all(registries.map((registry) => registry.stop()));
    await removeLabLeftovers();
    rmSync(scratch, { recursive: true, force: true });
    await stopDockerEngineIfStarted();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
