import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import {
  dockerLoadEnvironment,
  dockerLoadScript,
  dockerUnloadScript,
  loadedMarker,
} from "../../components/registry/image-load";
import { assertHostPortUsable, stackLabel } from "../../components/registry/port-check";
import { docker } from "../lab/engine";
import { run, runShell } from "../lab/exec";
import { labDir } from "../lab/paths";
import { labRegistryImage } from "../lab/registry-image";
import { freePort, startLabRegistry, type LabRegistry } from "../lab/registries";
import { labUpstreams } from "../lab/upstreams";

function tlsFlags(registry: LabRegistry, direction: "src" | "dest"): string[] {
  return registry.certDir
    ? [`--${direction}-cert-dir=${registry.certDir}`]
    : [`--${direction}-tls-verify=false`];
}

async function inspectDigest(registry: LabRegistry, reference: string, extra: string[] = []) {
  const result = await run(
    "skopeo",
    [
      "inspect",
      "--raw",
      ...(registry.certDir ? [`--cert-dir=${registry.certDir}`] : ["--tls-verify=false"]),
      ...extra,
      `docker://${registry.endpoint}/${reference}`,
    ],
    { allowFailure: true },
  );
  return result;
}

describe("RegistryContainer spec on the Docker engine", function () {
  let layoutDir: string;
  let busyboxDigest: string;

  before(async function () {
    const upstreams = await labUpstreams();
    layoutDir = upstreams.layoutDir;
    busyboxDigest = upstreams.images.find(
      (image) => image.repository === "e2e-test-images/busybox",
    )!.digest;
  });

  describe("plain http, delete enabled", function () {
    let registry: LabRegistry;
    before(async () => {
      registry = await startLabRegistry({ name: "lab-registry-plain" });
    });
    after(() => registry.stop());

    it("became healthy through the spec's healthcheck", async function () {
      const state = (await docker.getContainer(registry.container.id).inspect()).State;
      assert.equal(state.Health?.Status, "healthy");
    });

    it("accepts a push, serves the image by digest, and deletes it by digest", async function () {
      await run("skopeo", [
        "copy",
        "--all",
        "--preserve-digests",
        ...tlsFlags(registry, "dest"),
        `oci:${layoutDir}:registry.k8s.io/e2e-test-images/busybox:1.36.1-1`,
        `docker://${registry.endpoint}/e2e-test-images/busybox:1.36.1-1`,
      ]);
      const byDigest = await inspectDigest(registry, `e2e-test-images/busybox@${busyboxDigest}`);
      assert.equal(byDigest.code, 0, byDigest.stderr);
      assert.equal(JSON.parse(byDigest.stdout).manifests.length, 2, "the whole index was kept");

      const pulled = mkdtempSync(path.join(labDir, "pulled-"));
      await run("skopeo", [
        "copy",
        "--all",
        "--preserve-digests",
        ...tlsFlags(registry, "src"),
        `docker://${registry.endpoint}/e2e-test-images/busybox@${busyboxDigest}`,
        `oci:${pulled}:busybox`,
      ]);
      const pulledIndex = JSON.parse(readFileSync(path.join(pulled, "index.json"), "utf8"));
      assert.equal(pulledIndex.manifests[0].digest, busyboxDigest);

      await run("skopeo", [
        "delete",
        "--tls-verify=false",
        `docker://${registry.endpoint}/e2e-test-images/busybox@${busyboxDigest}`,
      ]);
      const afterDelete = await inspectDigest(registry, `e2e-test-images/busybox@${busyboxDigest}`);
      assert.notEqual(afterDelete.code, 0);
      assert.match(afterDelete.stderr, /manifest unknown/i);
    });
  });

  describe("delete disabled", function () {
    let registry: LabRegistry;
    before(async () => {
      registry = await startLabRegistry({ name: "lab-registry-nodelete", deleteEnabled: false });
    });
    after(() => registry.stop());

    it("refuses a delete by digest", async function () {
      await run("skopeo", [
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${layoutDir}:registry.k8s.io/pause:3.10`,
        `docker://${registry.endpoint}/pause:3.10`,
      ]);
      const raw = await inspectDigest(registry, "pause:3.10");
      const digest = `sha256:${createHash("sha256").update(raw.stdout).digest("hex")}`;
      const refused = await run(
        "skopeo",
        ["delete", "--tls-verify=false", `docker://${registry.endpoint}/pause@${digest}`],
        { allowFailure: true },
      );
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /unsupported|405|not allowed/i);
    });
  });

  describe("TLS with htpasswd auth", function () {
    let registry: LabRegistry;
    before(async () => {
      registry = await startLabRegistry({
        name: "lab-registry-secure",
        tls: true,
        auth: { username: "mirror", password: "s3cret-lab-password" },
      });
    });
    after(() => registry.stop());

    it("completes a TLS handshake verified against the run's CA, and fails without it", async function () {
      const [host, port] = registry.endpoint.split(":");
      const handshake = (ca?: Buffer) =>
        new Promise<{ authorized: boolean; error?: string }>((resolve) => {
          const socket = tls.connect(
            { host, port: Number(port), ca, servername: "localhost" },
            () => {
              resolve({ authorized: socket.authorized });
              socket.end();
            },
          );
          socket.once("error", (error) => resolve({ authorized: false, error: error.message }));
        });
      const verified = await handshake(readFileSync(registry.caFile!));
      assert.deepEqual(verified, { authorized: true });
      const unverified = await handshake();
      assert.equal(unverified.authorized, false);
      assert.match(
        unverified.error ?? "",
        /self[- ]signed|unable to get local issuer|unable to verify the first certificate/i,
      );
    });

    it("rejects an unauthenticated push and accepts an authenticated one", async function () {
      const source = `oci:${layoutDir}:docker.io/library/nginx:1.27-alpine`;
      const destination = `docker://${registry.endpoint}/library/nginx:1.27-alpine`;
      const anonymous = await run(
        "skopeo",
        ["copy", ...tlsFlags(registry, "dest"), "--dest-no-creds", source, destination],
        { allowFailure: true },
      );
      assert.notEqual(anonymous.code, 0);
      assert.match(anonymous.stderr, /unauthorized|authentication required/i);

      await run("skopeo", [
        "copy",
        ...tlsFlags(registry, "dest"),
        `--dest-authfile=${registry.authFile}`,
        source,
        destination,
      ]);
      const present = await inspectDigest(registry, "library/nginx:1.27-alpine", [
        `--authfile=${registry.authFile}`,
      ]);
      assert.equal(present.code, 0, present.stderr);
      assert.equal(
        JSON.parse(present.stdout).mediaType,
        "application/vnd.oci.image.manifest.v1+json",
      );
    });

    it("keeps the password out of the spec: only a bcrypt hash is uploaded", function () {
      const htpasswd = registry.spec.uploads.find((upload) => upload.file === "/auth/htpasswd");
      assert.ok(htpasswd);
      assert.match(htpasswd.content, /^mirror:\$2b\$10\$/);
      assert.ok(!JSON.stringify(registry.spec).includes("s3cret-lab-password"));
    });
  });
});

describe("registry image load from a tar (docker load action)", function () {
  const loadedTag = "airgap-lab/registry-from-tar:test";
  let tarFile: string;

  before(async function () {
    const dir = mkdtempSync(path.join(labDir, "image-tar-"));
    tarFile = path.join(dir, "registry.tar");
    await run("docker", ["tag", labRegistryImage, loadedTag]);
    await run("docker", ["save", "--output", tarFile, loadedTag]);
    await run("docker", ["rmi", loadedTag]);
  });
  after(async () => {
    await run("docker", ["rmi", loadedTag], { allowFailure: true });
  });

  it("loads the image the container will use", async function () {
    await runShell(dockerLoadScript, {
      env: dockerLoadEnvironment({ imageTar: tarFile, image: loadedTag }),
    });
    const inspected = await docker.getImage(loadedTag).inspect();
    assert.ok(inspected.Id.startsWith("sha256:"));
  });

  it("destroy removes the image it loaded, and only that image", async function () {
    await run("docker", ["rmi", loadedTag], { allowFailure: true });
    const environment = dockerLoadEnvironment({ imageTar: tarFile, image: loadedTag });
    const loaded = await runShell(dockerLoadScript, { env: environment });
    const id = (await docker.getImage(loadedTag).inspect()).Id;
    assert.equal(loaded.stdout.trim(), `${loadedMarker} ${loadedTag} ${id}`);

    // Loaded again while present (a second up): nothing is recorded, destroy keeps the image.
    const again = await runShell(dockerLoadScript, { env: environment });
    assert.equal(again.stdout.trim(), "");
    await runShell(dockerUnloadScript, {
      env: { ...environment, PULUMI_COMMAND_STDOUT: again.stdout },
    });
    assert.equal((await docker.getImage(loadedTag).inspect()).Id, id);

    // The tag now names another image (a newer tar): destroy leaves it alone.
    const emptyTar = path.join(path.dirname(tarFile), "empty.tar");
    await run("tar", ["-cf", emptyTar, "--files-from", "/dev/null"]);
    await run("docker", ["import", emptyTar, loadedTag]);
    const retagged = (await docker.getImage(loadedTag).inspect()).Id;
    assert.notEqual(retagged, id);
    await runShell(dockerUnloadScript, {
      env: { ...environment, PULUMI_COMMAND_STDOUT: loaded.stdout },
    });
    assert.equal((await docker.getImage(loadedTag).inspect()).Id, retagged);
    await run("docker", ["rmi", loadedTag]);
    await runShell(dockerLoadScript, { env: environment });

    // The stack loaded it: destroy removes it.
    await runShell(dockerUnloadScript, {
      env: { ...environment, PULUMI_COMMAND_STDOUT: loaded.stdout },
    });
    await assert.rejects(docker.getImage(loadedTag).inspect(), /no such image/i);
  });

  it("fails, naming the tar and the image, when the tar lacks the image", async function () {
    const result = await runShell(dockerLoadScript, {
      env: dockerLoadEnvironment({ imageTar: tarFile, image: "registry:does-not-exist" }),
      allowFailure: true,
    });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /registry\.tar does not contain registry:does-not-exist/);
  });

  it("fails on an unreadable tar", async function () {
    const bogus = path.join(path.dirname(tarFile), "not-a-tar.tar");
    writeFileSync(bogus, "garbage");
    const result = await runShell(dockerLoadScript, {
      env: dockerLoadEnvironment({ imageTar: bogus, image: loadedTag }),
      allowFailure: true,
    });
    assert.notEqual(result.code, 0);
  });
});

describe("host port check against the local engine", function () {
  let registry: LabRegistry;
  let holder: Server;
  let heldPort: number;

  before(async function () {
    registry = await startLabRegistry({
      name: "lab-registry-port",
      labels: { [stackLabel]: "airgap-conformance/it" },
    });
    heldPort = await freePort();
    holder = createServer();
    await new Promise<void>((resolve) => holder.listen(heldPort, "127.0.0.1", resolve));
  });
  after(async () => {
    holder.close();
    await registry.stop();
  });

  it("accepts a free port", async function () {
    await assertHostPortUsable({
      hostPort: await freePort(),
      bindAddress: "127.0.0.1",
      containerName: "x-new",
    });
  });

  it("accepts the port our own container already publishes (a second up)", async function () {
    await assertHostPortUsable({
      hostPort: registry.settings.hostPort,
      bindAddress: "127.0.0.1",
      containerName: registry.name,
    });
  });

  it("accepts the port this stack's container publishes under its previous name (a rename)", async function () {
    await assertHostPortUsable({
      hostPort: registry.settings.hostPort,
      bindAddress: "127.0.0.1",
      containerName: "lab-registry-renamed",
      stack: "airgap-conformance/it",
    });
    await assert.rejects(
      assertHostPortUsable({
        hostPort: registry.settings.hostPort,
        bindAddress: "127.0.0.1",
        containerName: "lab-registry-renamed",
        stack: "airgap-conformance/another-stack",
      }),
      /hostPort: port \d+ is already published by container lab-registry-port;/,
    );
  });

  it("rejects a port another container publishes, naming it", async function () {
    await assert.rejects(
      assertHostPortUsable({
        hostPort: registry.settings.hostPort,
        bindAddress: "127.0.0.1",
        containerName: "other",
      }),
      /hostPort: port \d+ is already published by container lab-registry-port/,
    );
  });

  it("rejects a port a host process holds", async function () {
    await assert.rejects(
      assertHostPortUsable({
        hostPort: heldPort,
        bindAddress: "127.0.0.1",
        containerName: "other",
      }),
      /hostPort: port \d+ on 127\.0\.0\.1 is taken by a process on this host/,
    );
  });
});
