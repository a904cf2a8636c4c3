import assert from "node:assert/strict";
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { readLock, verifyArchivedImage, writeLock } from "../../components/mirror/actions/archive";
import {
  checkImages,
  RegistryClient,
  type RegistryAccess,
} from "../../components/mirror/actions/registry-client";
import {
  copyImage,
  ImageCopyError,
  type CopyRequest,
} from "../../components/mirror/actions/skopeo";
import { planImageCopies } from "../../components/mirror/plan";
import { htpasswdLine } from "../../components/registry/htpasswd";
import { mirroredImageProviderModule } from "../../components/mirror/provider";
import type {
  MirroredImageInputs,
  MirroredImageOutputs,
} from "../../components/mirror/provider-runtime";
import { megabytes } from "../../components/mirror/progress";
import { callProvider, writeProviderModule } from "../lab/dynamic-provider";
import { docker } from "../lab/engine";
import { run } from "../lab/exec";
import { labDir } from "../lab/paths";
import { freePort, registryAccessOf, startLabRegistry, type LabRegistry } from "../lab/registries";
import { labUpstreams, type LabUpstreams } from "../lab/upstreams";
import { scratchDir } from "../scratch";
import { describeUpstreamKilledMidCopy } from "../lab/upstream-killed";

function upstreamAccess(upstreams: LabUpstreams): Record<string, RegistryAccess> {
  return Object.fromEntries(
    Object.entries(upstreams.registries).map(([name, registry]) => [
      name,
      registryAccessOf(registry),
    ]),
  );
}

describe("mirroring actions against real registries", function () {
  let upstreams: LabUpstreams;
  let mirror: LabRegistry;
  let secureMirror: LabRegistry;
  const busybox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";

  before(async function () {
    upstreams = await labUpstreams();
    [mirror, secureMirror] = await Promise.all([
      startLabRegistry({ name: "lab-mirror-plain" }),
      startLabRegistry({
        name: "lab-mirror-secure",
        tls: true,
        auth: { username: "mirror", password: "mirror-pw-123" },
      }),
    ]);
  });
  after(async () => {
    await Promise.all([mirror.stop(), secureMirror.stop()]);
  });

  function plan(destination: LabRegistry, images: string[], platform?: string) {
    return planImageCopies({
      images,
      source: { kind: "upstream", registries: upstreamAccess(upstreams) },
      destination: {
        kind: "registry",
        access: registryAccessOf(destination),
        nodeEndpoint: "mirror.lab:5000",
      },
      platform,
    });
  }

  it("copies a whole multi-arch index by digest, keeping the upstream digest", async function () {
    const [copy] = plan(mirror, [busybox]).copies;
    const digest = await copyImage(copy.request, { retries: 0 });
    const expected = upstreams.images.find((image) => image.name === busybox)!.digest;
    assert.equal(digest, expected);
    const raw = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${mirror.endpoint}/e2e-test-images/busybox@${digest}`,
    ]);
    assert.deepEqual(
      JSON.parse(raw.stdout).manifests.map(
        (entry: { platform: { architecture: string } }) => entry.platform.architecture,
      ),
      ["amd64", "arm64"],
    );
  });

  it("copies one chosen platform when asked", async function () {
    const [copy] = plan(mirror, [busybox], "linux/arm64").copies;
    copy.request.to = { ...copy.request.to, reference: "1.36.1-1-arm64" } as CopyRequest["to"];
    const digest = await copyImage(copy.request, { retries: 0 });
    const raw = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${mirror.endpoint}/e2e-test-images/busybox@${digest}`,
    ]);
    const manifest = JSON.parse(raw.stdout);
    assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    const config = await run("skopeo", [
      "inspect",
      "--config",
      "--tls-verify=false",
      `docker://${mirror.endpoint}/e2e-test-images/busybox@${digest}`,
    ]);
    assert.equal(JSON.parse(config.stdout).architecture, "arm64");
  });

  it("pushes to a TLS + auth mirror with credentials from a private auth file, never argv", async function () {
    const copies = plan(
      secureMirror,
      upstreams.images.map((image) => image.name),
    ).copies;
    const digests = await Promise.all(
      copies.map((copy) => copyImage(copy.request, { retries: 0 })),
    );
    assert.deepEqual(
      digests,
      copies.map((copy) => upstreams.images.find((image) => image.name === copy.source)!.digest),
    );
  });

  it("reports refused credentials clearly, without echoing them", async function () {
    const [copy] = plan(secureMirror, ["registry.k8s.io/pause:3.10"]).copies;
    const wrong = {
      ...copy.request,
      to: {
        ...copy.request.to,
        access: { ...registryAccessOf(secureMirror), password: "wrong-pw-456" },
      },
    } as CopyRequest;
    await assert.rejects(copyImage(wrong, { retries: 0 }), (error: Error) => {
      assert.ok(error instanceof ImageCopyError);
      assert.equal(error.kind, "unauthorized");
      assert.match(error.message, /registry\.k8s\.io\/pause:3\.10: credentials were refused/);
      assert.ok(!error.message.includes("wrong-pw-456"));
      assert.ok(!error.message.includes(Buffer.from("mirror:wrong-pw-456").toString("base64")));
      return true;
    });
  });

  it("names the image and the registry when the source is unreachable, after retrying", async function () {
    const closedPort = await freePort();
    const [copy] = planImageCopies({
      images: ["registry.k8s.io/pause:3.10"],
      source: {
        kind: "upstream",
        registries: { "registry.k8s.io": { host: `127.0.0.1:${closedPort}`, scheme: "http" } },
      },
      destination: {
        kind: "registry",
        access: registryAccessOf(mirror),
        nodeEndpoint: "mirror.lab:5000",
      },
    }).copies;
    const started = Date.now();
    const retried: { attempt: number; of: number; delayMs: number; reason: string }[] = [];
    await assert.rejects(
      copyImage(copy.request, {
        retries: 2,
        backoffMs: 100,
        onRetry: (retry) => retried.push(retry),
      }),
      (error: Error) => {
        assert.ok(error instanceof ImageCopyError);
        assert.equal(error.kind, "unreachable");
        assert.match(
          error.message,
          new RegExp(
            `registry\\.k8s\\.io/pause:3\\.10: cannot reach 127\\.0\\.0\\.1:${closedPort}`,
          ),
        );
        return true;
      },
    );
    assert.ok(Date.now() - started >= 300, "two retries with 100 ms and 200 ms backoff happened");
    // Each retry is told (the provider logs it), with skopeo's reason.
    assert.deepEqual(
      retried.map(({ attempt, of, delayMs }) => [attempt, of, delayMs]),
      [
        [1, 2, 100],
        [2, 2, 200],
      ],
    );
    assert.match(retried[0].reason, /connection refused|127\.0\.0\.1/);
  });

  it("checks presence and digests of many images in one process (plain and TLS + auth)", async function () {
    for (const registry of [mirror, secureMirror]) {
      const pause = upstreams.images.find((image) => image.repository === "pause")!;
      const results = await checkImages(registryAccessOf(registry), [
        { repository: "pause", reference: "3.10", expectedDigest: pause.digest },
        { repository: "pause", reference: "3.10", expectedDigest: `sha256:${"0".repeat(64)}` },
        { repository: "not/there", reference: "1.0" },
      ]);
      if (registry === mirror) {
        // The plain mirror has no pause yet: copy it now and check again.
        assert.deepEqual(
          results.map((result) => result.state),
          ["missing", "missing", "missing"],
        );
        await copyImage(plan(mirror, ["registry.k8s.io/pause:3.10"]).copies[0].request, {
          retries: 0,
        });
        const again = await checkImages(registryAccessOf(registry), [
          { repository: "pause", reference: "3.10", expectedDigest: pause.digest },
          { repository: "pause", reference: "3.10", expectedDigest: `sha256:${"0".repeat(64)}` },
        ]);
        assert.deepEqual(
          again.map((result) => result.state),
          ["present", "wrong-digest"],
        );
      } else {
        assert.deepEqual(
          results.map((result) => result.state),
          ["present", "wrong-digest", "missing"],
        );
        assert.equal(results[0].digest, pause.digest);
      }
    }
    await assert.rejects(
      checkImages(registryAccessOf(secureMirror, false), [
        { repository: "pause", reference: "3.10" },
      ]),
      /requires credentials \(401\)|refused the credentials/,
    );
  });

  describe("archives for the gap", function () {
    let archive: string;

    before(async function () {
      archive = path.join(scratchDir("archive-", labDir), "images");
      const exportPlan = planImageCopies({
        images: upstreams.images.map((image) => image.name),
        source: { kind: "upstream", registries: upstreamAccess(upstreams) },
        destination: { kind: "archive", directory: archive },
      });
      // Concurrent writers into one layout: the action serialises them.
      const digests = await Promise.all(
        exportPlan.copies.map((copy) => copyImage(copy.request, { retries: 0 })),
      );
      writeLock(
        archive,
        exportPlan.copies.map((copy, index) => ({ source: copy.source, digest: digests[index] })),
      );
    });

    it("exports every image into one layout with a lock file of their digests", function () {
      const lock = readLock(archive);
      assert.deepEqual(
        lock.images,
        [...upstreams.images]
          .sort((a, b) => (a.name < b.name ? -1 : 1))
          .map((image) => ({ source: image.name, digest: image.digest })),
      );
      const index = JSON.parse(readFileSync(path.join(archive, "index.json"), "utf8"));
      assert.equal(index.manifests.length, upstreams.images.length);
    });

    it("imports into a fresh mirror, verifying every digest", async function () {
      const target = await startLabRegistry({ name: "lab-mirror-from-archive" });
      try {
        const importPlan = planImageCopies({
          images: upstreams.images.map((image) => image.name),
          source: { kind: "archive", directory: archive },
          destination: {
            kind: "registry",
            access: registryAccessOf(target),
            nodeEndpoint: "mirror.lab:5000",
          },
          lock: readLock(archive),
        });
        for (const copy of importPlan.copies) {
          await verifyArchivedImage(archive, copy.source, copy.expectedDigest);
          assert.equal(await copyImage(copy.request, { retries: 0 }), copy.expectedDigest);
        }
        const results = await checkImages(
          registryAccessOf(target),
          importPlan.copies.map((copy) => ({
            repository: copy.request.to.transport === "docker" ? copy.request.to.repository : "",
            reference: copy.request.to.transport === "docker" ? copy.request.to.reference : "",
            expectedDigest: copy.expectedDigest,
          })),
        );
        assert.deepEqual(
          results.map((result) => result.state),
          ["present", "present", "present"],
        );
      } finally {
        await target.stop();
      }
    });

    it("refuses an archive with a tampered blob, naming the image", async function () {
      const tampered = path.join(scratchDir("tampered-", labDir), "images");
      cpSync(archive, tampered, { recursive: true });
      const blobs = path.join(tampered, "blobs", "sha256");
      const largest = readdirSync(blobs).sort(
        (a, b) => statSync(path.join(blobs, b)).size - statSync(path.join(blobs, a)).size,
      )[0];
      const bytes = readFileSync(path.join(blobs, largest));
      bytes[bytes.length - 1] ^= 0xff;
      writeFileSync(path.join(blobs, largest), bytes);
      const lock = readLock(tampered);
      const victims: string[] = [];
      for (const image of lock.images) {
        await verifyArchivedImage(tampered, image.source, image.digest).catch((error: Error) => {
          assert.match(
            error.message,
            new RegExp(
              `^${image.source.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: blob sha256:${largest} is corrupt or tampered with`,
            ),
          );
          victims.push(image.source);
        });
      }
      assert.ok(victims.length >= 1, "at least the image owning the blob is refused");
    });
  });
});

describe("the mirrored-image dynamic provider, serialised and run as the engine runs it", function () {
  let upstreams: LabUpstreams;
  let mirror: LabRegistry;
  let providerFile: string;
  let inputs: MirroredImageInputs;

  before(async function () {
    upstreams = await labUpstreams();
    mirror = await startLabRegistry({
      name: "lab-mirror-provider",
      tls: true,
      auth: { username: "mirror", password: "provider-pw" },
    });
    providerFile = writeProviderModule("mirrored-image", mirroredImageProviderModule);
    const [copy] = planImageCopies({
      images: ["docker.io/library/nginx:1.27-alpine"],
      source: { kind: "upstream", registries: upstreamAccess(upstreams) },
      destination: {
        kind: "registry",
        access: { ...registryAccessOf(mirror), password: undefined },
        nodeEndpoint: "mirror.lab:5000",
      },
    }).copies;
    inputs = {
      source: copy.source,
      request: copy.request,
      mirrorReference: copy.mirrorReference,
      retries: 1,
      deleteOnDestroy: true,
      credentials: { toPassword: "provider-pw" },
    };
  });
  after(() => mirror.stop());

  it("creates, sees drift in diff, repairs it on update, and deletes on destroy", async function () {
    const nginx = upstreams.images.find((image) => image.repository === "library/nginx")!;
    const progress: string[] = [];
    const created = await callProvider<{ id: string; outs: MirroredImageOutputs }>(
      providerFile,
      "create",
      [inputs],
      undefined,
      progress,
    );
    assert.equal(created.outs.digest, nginx.digest);
    // The copy reports its bytes through pulumi.log (the update shows the provider's output).
    const copiedBytes = created.outs.lastCopy?.bytes ?? 0;
    assert.ok(copiedBytes > 0, JSON.stringify(created.outs.lastCopy));
    assert.deepEqual(
      progress.filter((line) => line.includes("copied ")),
      [
        `info: [runtime] copied docker.io/library/nginx:1.27-alpine: ${megabytes(copiedBytes)} in ${created.outs.lastCopy!.seconds.toFixed(1)} s`,
      ],
    );
    assert.equal(created.outs.lastCopy?.retries, 0);
    assert.equal(created.id, `mirror.lab:5000/library/nginx:1.27-alpine@${nginx.digest}`);

    const steady = await callProvider<{ changes: boolean }>(providerFile, "diff", [
      created.id,
      created.outs,
      inputs,
    ]);
    assert.deepEqual(steady, { changes: false });

    // Someone deletes the image from the mirror behind Pulumi's back.
    const client = new RegistryClient(registryAccessOf(mirror));
    assert.equal(await client.deleteManifest("library/nginx", nginx.digest), "deleted");
    const drifted = await callProvider<{ changes: boolean }>(providerFile, "diff", [
      created.id,
      created.outs,
      inputs,
    ]);
    assert.deepEqual(drifted, { changes: true });

    const updated = await callProvider<{ outs: MirroredImageOutputs }>(providerFile, "update", [
      created.id,
      created.outs,
      inputs,
    ]);
    assert.equal(updated.outs.digest, nginx.digest);
    assert.equal(await client.manifestDigest("library/nginx", "1.27-alpine"), nginx.digest);

    const moved = {
      ...inputs,
      request: { ...inputs.request, to: { ...inputs.request.to, repository: "elsewhere/nginx" } },
    } as MirroredImageInputs;
    const replaced = await callProvider<{ changes: boolean; replaces: string[] }>(
      providerFile,
      "diff",
      [created.id, created.outs, moved],
    );
    assert.deepEqual(replaced, { changes: true, replaces: ["request"], deleteBeforeReplace: true });

    await callProvider(providerFile, "delete", [created.id, updated.outs]);
    assert.equal(await client.manifestDigest("library/nginx", "1.27-alpine"), undefined);
    client.close();
  });

  it("deleteOnDestroy deletes its tag only: another tag on the same digest stays", async function () {
    const nginx = upstreams.images.find((image) => image.repository === "library/nginx")!;
    const aliasInputs = {
      ...inputs,
      request: { ...inputs.request, to: { ...inputs.request.to, reference: "alias" } },
      mirrorReference: "mirror.lab:5000/library/nginx:alias",
    } as MirroredImageInputs;
    const first = await callProvider<{ id: string; outs: MirroredImageOutputs }>(
      providerFile,
      "create",
      [inputs],
    );
    const alias = await callProvider<{ id: string; outs: MirroredImageOutputs }>(
      providerFile,
      "create",
      [aliasInputs],
    );
    const client = new RegistryClient(registryAccessOf(mirror));
    assert.equal(await client.manifestDigest("library/nginx", "alias"), nginx.digest);

    // The registry (distribution 2.8) deletes manifests by digest only, which would take the
    // alias with it: the shared manifest is kept.
    await callProvider(providerFile, "delete", [first.id, first.outs]);
    assert.equal(await client.manifestDigest("library/nginx", "alias"), nginx.digest);

    // An image whose tag is its only one is deleted (also the first test's last step).
    assert.equal(await client.deleteManifest("library/nginx", nginx.digest), "deleted");
    assert.equal(
      await callProvider(providerFile, "delete", [alias.id, alias.outs]),
      null,
      "an image already gone is not an error",
    );
    client.close();
  });

  it("rotates the mirror password: preview sees an update, up stores it without copying, refresh with the registry down records the image as gone", async function () {
    const nginx = upstreams.images.find((image) => image.repository === "library/nginx")!;
    const created = await callProvider<{ id: string; outs: MirroredImageOutputs }>(
      providerFile,
      "create",
      [inputs],
    );
    const rotated: MirroredImageInputs = { ...inputs, credentials: { toPassword: "rotated-pw" } };

    // Preview: the registry still has the old password and refuses the new one (401).
    const preview = await callProvider<{ changes: boolean }>(providerFile, "diff", [
      created.id,
      created.outs,
      rotated,
    ]);
    assert.deepEqual(preview, { changes: true });

    // Up: the registry container is replaced with the new htpasswd (same storage) first.
    const container = docker.getContainer(mirror.container.id);
    await run("docker", ["exec", "-i", mirror.container.id, "sh", "-c", "cat >/auth/htpasswd"], {
      input: htpasswdLine("mirror", "rotated-pw"),
    });
    await container.restart();
    const client = new RegistryClient({ ...registryAccessOf(mirror), password: "rotated-pw" });
    for (let attempt = 0; ; attempt++) {
      const answer = await client.manifestDigest("library/nginx", "1.27-alpine").catch(() => "");
      if (answer === nginx.digest) break;
      if (attempt > 60) throw new Error("the registry did not come back with the new password");
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    // The source is unreachable now: any copy would fail, so success proves nothing was copied.
    const unreachableSource = {
      ...rotated,
      request: {
        ...rotated.request,
        from: {
          ...rotated.request.from,
          access: { host: `127.0.0.1:${await freePort()}`, scheme: "http" as const },
        },
      },
    } as MirroredImageInputs;
    const updated = await callProvider<{ outs: MirroredImageOutputs }>(providerFile, "update", [
      created.id,
      created.outs,
      unreachableSource,
    ]);
    assert.equal(updated.outs.digest, nginx.digest);
    assert.deepEqual(updated.outs.credentials, { toPassword: "rotated-pw" });
    const settled = await callProvider<{ changes: boolean }>(providerFile, "diff", [
      created.id,
      updated.outs,
      unreachableSource,
    ]);
    assert.deepEqual(settled, { changes: false });

    // Refresh while the registry is down: the image is recorded as gone, nothing throws.
    await container.stop();
    const refreshed = await callProvider<{ props: MirroredImageOutputs }>(providerFile, "read", [
      created.id,
      updated.outs,
    ]);
    assert.equal(refreshed.props.digest, "");
    client.close();
  });
});

describeUpstreamKilledMidCopy(
  "an upstream killed in the middle of a copy",
  { upstream: "lab-upstream-fragile", mirror: "lab-mirror-after-kill" },
  copyImage,
);
