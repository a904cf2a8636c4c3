import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { RegistryClient } from "../../components/mirror/actions/registry-client";
import { ImageCopyError, type CopyRequest } from "../../components/mirror/actions/skopeo";
import { planImageCopies } from "../../components/mirror/plan";
import { scratchDir } from "../scratch";
import { docker } from "./engine";
import { run } from "./exec";
import { labDir } from "./paths";
import { registryAccessOf, startLabRegistry, type LabRegistry } from "./registries";
import {
  makeManifest,
  makeRandomLayer,
  singlePlatformImage,
  writeOciLayout,
} from "./synthetic-images";

/** One copy engine: copies a planned image, resolving to the digest it wrote. */
export type CopyEngine = (
  request: CopyRequest,
  options: { retries: number; backoffMs?: number },
) => Promise<string>;

/**
 * The upstream dies while a big layer is on its way: whatever the copy engine, the mirror must
 * hold no tag for the half-copied image, and a re-run must complete it with the upstream digest.
 * `names` keeps each engine's lab containers apart.
 */
export function describeUpstreamKilledMidCopy(
  title: string,
  names: { upstream: string; mirror: string },
  copy: CopyEngine,
): void {
  describe(title, function () {
    let upstream: LabRegistry;
    let mirror: LabRegistry;
    let layout: string;

    before(async function () {
      [upstream, mirror] = await Promise.all([
        startLabRegistry({ name: names.upstream }),
        startLabRegistry({ name: names.mirror }),
      ]);
      layout = scratchDir(`${names.upstream}-`, labDir);
      const image = singlePlatformImage(
        makeManifest([await makeRandomLayer("big.bin", 192 * 1024 * 1024)], {
          os: "linux",
          architecture: "amd64",
        }),
      );
      writeOciLayout(layout, { "big:1": image });
      await run("skopeo", [
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${layout}:big:1`,
        `docker://${upstream.endpoint}/e2e-test-images/big:1`,
      ]);
    });
    after(async () => {
      await Promise.all([upstream.stop(), mirror.stop()]);
    });

    it("leaves nothing tagged, and a re-run completes the image with its digest", async function () {
      const [planned] = planImageCopies({
        images: ["registry.k8s.io/e2e-test-images/big:1"],
        source: {
          kind: "upstream",
          registries: { "registry.k8s.io": { host: upstream.endpoint, scheme: "http" } },
        },
        destination: {
          kind: "registry",
          access: registryAccessOf(mirror),
          nodeEndpoint: "mirror.lab:5000",
        },
      }).copies;
      const upstreamContainer = docker.getContainer(upstream.container.id);
      const copying = copy(planned.request, { retries: 0 }).then(
        () => "finished",
        (error: Error) => error,
      );
      // Kill the upstream as soon as the mirror has started receiving the big layer.
      const deadline = Date.now() + 30000;
      for (;;) {
        const uploads = await run("docker", [
          "exec",
          mirror.name,
          "sh",
          "-c",
          "ls /var/lib/registry/docker/registry/v2/repositories/e2e-test-images/big/_uploads 2>/dev/null | wc -l",
        ]);
        if (Number(uploads.stdout.trim()) > 0) break;
        if (Date.now() > deadline) throw new Error("the copy never started uploading");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await upstreamContainer.kill();
      const outcome = await copying;
      assert.ok(outcome instanceof ImageCopyError, `the copy failed (got ${String(outcome)})`);
      assert.match(outcome.message, /registry\.k8s\.io\/e2e-test-images\/big:1/);

      const client = new RegistryClient(registryAccessOf(mirror));
      assert.equal(
        await client.manifestDigest("e2e-test-images/big", "1"),
        undefined,
        "no partial image is tagged",
      );

      await upstreamContainer.start();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const digest = await copy(planned.request, { retries: 3, backoffMs: 500 });
      const expected = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"))
        .manifests[0].digest;
      assert.equal(digest, expected);
      assert.equal(await client.manifestDigest("e2e-test-images/big", "1"), expected);
      client.close();
    });
  });
}
