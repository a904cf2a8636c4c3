import { parseImageReference } from "../../core/images/reference";
import { scratchDir } from "../scratch";
import { run } from "./exec";
import { labDir } from "./paths";
import { startLabRegistry, type LabRegistry } from "./registries";
import {
  makeLayer,
  makeManifest,
  makeRandomLayer,
  singlePlatformImage,
  writeOciLayout,
  type SyntheticImage,
} from "./synthetic-images";

/** A lab registry playing one upstream registry, seeded with a synthetic image per name. */
export interface LabImageSource {
  registry: LabRegistry;
  /** The upstream registry it plays, e.g. registry.k8s.io. */
  upstream: string;
  /** Canonical upstream reference -> digest of what its tag points to, for every seeded name. */
  digests: Record<string, string>;
  /** Seeds the names not seeded yet. */
  seed(images: string[]): Promise<void>;
}

/** Runs `tasks` with at most `limit` at a time; rejects with the first failure after all ran. */
export async function inBatches<T>(limit: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      try {
        results[index] = await tasks[index]();
      } catch (error) {
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (errors.length > 0) throw errors[0];
  return results;
}

/**
 * Starts a plain-http registry playing `upstream`; `seed` puts a small synthetic image under
 * every given name of that upstream (its repository and tag, as the real registry serves
 * them). All images share one base layer; each has a tiny layer and a config of its own, so
 * every name has its own digest and the copies are real copies.
 */
export async function startLabImageSource(name: string, upstream: string): Promise<LabImageSource> {
  const registry = await startLabRegistry({ name });
  const base = await makeLayer({ "etc/os-release": "ID=airgap-lab\n" });
  const amd64 = { os: "linux" as const, architecture: "amd64" };
  const digests: Record<string, string> = {};
  let batch = 0;
  const seed = async (names: string[]) => {
    const images = [...new Set(names)].filter((image) => digests[image] === undefined);
    const references = images.map((image) => parseImageReference(image));
    for (const [index, reference] of references.entries()) {
      if (reference.registry !== upstream) {
        throw new Error(`lab source ${name} plays ${upstream} only, not ${images[index]}`);
      }
      if (!reference.tag) throw new Error(`lab source ${name}: ${images[index]} has no tag`);
    }
    const layout: Record<string, SyntheticImage> = {};
    for (const [index, image] of images.entries()) {
      const own = await makeRandomLayer(`opt/image-${batch}-${index}`, 1024);
      layout[image] = singlePlatformImage(
        makeManifest([base, own], amd64, { "org.opencontainers.image.ref.name": image }),
      );
    }
    batch++;
    const layoutDir = scratchDir(`${name}-layout-`, labDir);
    writeOciLayout(layoutDir, layout);
    const copy = (index: number) =>
      run("skopeo", [
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${layoutDir}:${images[index]}`,
        `docker://${registry.endpoint}/${references[index].repository}:${references[index].tag}`,
      ]);
    // The first copy stores the shared base layer; distribution answers 500 when several
    // uploads of one new blob race, so the rest start only once it is there.
    if (images.length > 0) await copy(0);
    await inBatches(
      4,
      images.slice(1).map((_, index) => () => copy(index + 1)),
    );
    for (const image of images) digests[image] = layout[image].top.digest;
  };
  return { registry, upstream, digests, seed };
}
