/**
 * Mirroring benchmark (not a test): N images of 8 MB random data sharing a base layer, copied
 * from a lab upstream into a fresh mirror by
 *   (a) the docker pull / tag / push loop of the hydrophone air-gap guide,
 *   (b) skopeo copy, one image after the other,
 *   (c) our copy as the component runs it (the dynamic provider's copy, engine-parallel),
 *   (d) our up-to-date check of all images, once present,
 *   (e) the raw floor: GET + PUT of the same blobs and manifests from one Node process;
 * measured in one run, printed as times and ratios. Run: npm run bench:mirror [-- N]
 */
import { randomBytes } from "node:crypto";
import * as http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import * as path from "node:path";
import {
  checkImages,
  mapWithConcurrency,
  type RegistryAccess,
} from "../components/mirror/actions/registry-client";
import { planImageCopies } from "../components/mirror/plan";
import { performCopy } from "../components/mirror/provider-runtime";
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

/** The floor: each blob read once and written once, manifests PUT, in one process. */
async function rawCopy(
  from: LabRegistry,
  to: LabRegistry,
  images: { repository: string; tag: string; image: SyntheticImage }[],
) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: engineParallelism });
  const copied = new Set<string>();
  await mapWithConcurrency(images, engineParallelism, async ({ repository, tag, image }) => {
    const manifest = image.manifests[0];
    for (const blob of [manifest.config, ...manifest.layers]) {
      const key = `${repository}@${blob.digest}`;
      if (copied.has(key)) continue;
      copied.add(key);
      const got = await request(
        "GET",
        `http://${from.endpoint}/v2/${repository}/blobs/${blob.digest}`,
        undefined,
        {},
        agent,
      );
      const started = await request(
        "POST",
        `http://${to.endpoint}/v2/${repository}/blobs/uploads/`,
        undefined,
        {},
        agent,
      );
      const location = new URL(String(started.headers.location), `http://${to.endpoint}`);
      location.searchParams.set("digest", blob.digest);
      const put = await request(
        "PUT",
        location.toString(),
        got.body,
        { "Content-Type": "application/octet-stream" },
        agent,
      );
      if (put.status !== 201) throw new Error(`blob PUT answered ${put.status}`);
    }
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
    const [mirrorA, mirrorB, mirrorC, mirrorE] = await Promise.all(
      ["bench-mirror-a", "bench-mirror-b", "bench-mirror-c", "bench-mirror-e"].map(start),
    );

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
    const b = await timed("(b) skopeo copy, one by one", async () => {
      for (const entry of images) {
        await run("skopeo", [
          "copy",
          "--all",
          "--preserve-digests",
          "--src-tls-verify=false",
          "--dest-tls-verify=false",
          `docker://${upstream.endpoint}/${entry.repository}:${entry.tag}`,
          `docker://${mirrorB.endpoint}/${entry.repository}:${entry.tag}`,
        ]);
      }
    });
    const plan = planImageCopies({
      images: sources,
      source: { kind: "upstream", registries: { "registry.k8s.io": access(upstream) } },
      destination: { kind: "registry", access: access(mirrorC), nodeEndpoint: "mirror.lab:5000" },
    });
    const c = await timed(
      `(c) our copy, as the component runs it (${engineParallelism} in parallel)`,
      () =>
        mapWithConcurrency(plan.copies, engineParallelism, (copy) =>
          performCopy({
            source: copy.source,
            request: copy.request,
            mirrorReference: copy.mirrorReference,
            retries: 3,
            deleteOnDestroy: false,
            credentials: {},
          }),
        ),
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
    const e = await timed("(e) raw floor: GET + PUT of the same blobs, one process", () =>
      rawCopy(upstream, mirrorE, images),
    );

    console.log("ratios (target):");
    console.log(`  (c)/(b) = ${(c / b).toFixed(2)}  (<= 0.70)`);
    console.log(`  (c)/(a) = ${(c / a).toFixed(2)}  (<= 0.30)`);
    console.log(`  (d)/(b) = ${(d / b).toFixed(3)} (<= 0.10)`);
    console.log(`  (c)/(e) = ${(c / e).toFixed(2)}  (distance from the floor)`);
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
