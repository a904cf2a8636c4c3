import { recorded, resourcesOf, only, settle, valueOf } from "./harness";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import {
  RegistryContainer,
  imageTarLabel,
  type RegistryContainerArgs,
} from "../../components/registry";
import { containerArgsFromSpec } from "../../components/registry/docker-args";
import { stackLabel } from "../../components/registry/port-check";
import { htpasswdMatches } from "../../components/registry/htpasswd";
import { dockerLoadScript, dockerUnloadScript } from "../../components/registry/image-load";
import { registryContainerSpec, resolveRegistrySettings } from "../../components/registry/spec";

const fixtures = path.resolve(__dirname, "..", "fixtures");
const certificateFile = path.join(fixtures, "registry.crt");
const keyFile = path.join(fixtures, "registry.key");
const password = "mock-password-never-in-plain-text";

/** Normalises docker.ContainerArgs the way the mock monitor sees them (no undefined fields). */
function asSent(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe("RegistryContainer (mocks)", function () {
  describe("with TLS, auth and a named volume", function () {
    let registry: RegistryContainer;
    before(async function () {
      registry = new RegistryContainer("secure", {
        containerName: "bastion-registry",
        hostPort: 5443,
        bindAddress: "0.0.0.0",
        advertisedEndpoint: "registry.lab:5443",
        tls: { certificateFile, keyFile },
        auth: { username: "mirror", password },
        extraSettings: { REGISTRY_LOG_LEVEL: "warn" },
        checkHostPort: false,
      });
      await valueOf(registry.containerId);
      await settle();
    });

    it("declares exactly the container the pure spec describes", function () {
      const settings = resolveRegistrySettings({
        containerName: "bastion-registry",
        hostPort: 5443,
        bindAddress: "0.0.0.0",
        advertisedEndpoint: "registry.lab:5443",
        tls: {
          certificatePem: readFileSync(certificateFile, "utf8"),
          keyPem: readFileSync(keyFile, "utf8"),
        },
        auth: { username: "mirror", hasPassword: true },
        extraSettings: { REGISTRY_LOG_LEVEL: "warn" },
      });
      const spec = registryContainerSpec<string>(settings, {
        tlsKeyPem: readFileSync(keyFile, "utf8"),
        htpasswd: "set below",
      });
      const container = only(resourcesOf("secure"), "docker:index/container:Container");
      // The htpasswd line is salted at random (HtpasswdEntry): it must verify the password.
      const uploads = container.inputs.uploads as Array<{ file: string; content: string }>;
      const htpasswd = uploads.find((upload) => upload.file === "/auth/htpasswd")!;
      assert.ok(htpasswdMatches(htpasswd.content, "mirror", password));
      const expected = containerArgsFromSpec(spec);
      expected.uploads = (spec.uploads ?? []).map((upload) => ({
        ...upload,
        content: upload.file === "/auth/htpasswd" ? htpasswd.content : upload.content,
      }));
      assert.deepEqual(
        container.inputs,
        asSent({
          ...expected,
          // Which stack the container belongs to: the port check knows it under any name.
          labels: [{ label: stackLabel, value: `${pulumi.getProject()}/${pulumi.getStack()}` }],
        }),
      );
      assert.equal(container.name, "secure-container");
    });

    it("sends the TLS key, the htpasswd file and the environment with registryExtraSettings as secrets", function () {
      const container = only(resourcesOf("secure"), "docker:index/container:Container");
      assert.deepEqual(container.secretPaths, ["envs", "uploads[1].content", "uploads[2].content"]);
      assert.deepEqual(container.additionalSecretOutputs, ["envs"]);
      const uploads = container.inputs.uploads as Array<{ file: string; content: string }>;
      assert.deepEqual(
        uploads.map((upload) => upload.file),
        ["/certs/registry.crt", "/certs/registry.key", "/auth/htpasswd"],
      );
      assert.match(uploads[2].content, /^mirror:\$2b\$10\$/);
    });

    it("sends the password only to the htpasswd entry, as a secret that stays one", function () {
      const holders = recorded.filter((resource) => JSON.stringify(resource).includes(password));
      assert.deepEqual(
        holders.map((resource) => [resource.type, resource.name]),
        [["pulumi-nodejs:dynamic/registry:HtpasswdEntry", "secure-htpasswd"]],
      );
      assert.deepEqual(holders[0].secretPaths, ["password"]);
      assert.deepEqual(holders[0].additionalSecretOutputs, ["password", "line"]);
    });

    it("parents its children and replaces the container by deleting it first", function () {
      const children = resourcesOf("secure").filter((resource) => resource.custom);
      assert.deepEqual(children.map((child) => child.type).sort(), [
        "docker:index/container:Container",
        "docker:index/volume:Volume",
        "pulumi-nodejs:dynamic/registry:HtpasswdEntry",
      ]);
      for (const child of children)
        assert.match(child.parent, /airgap:registry:RegistryContainer::secure$/);
      const container = only(children, "docker:index/container:Container");
      assert.equal(container.deleteBeforeReplace, true);
      assert.ok(container.dependencies.some((urn) => urn.endsWith("::secure-data")));
      const volume = only(children, "docker:index/volume:Volume");
      assert.equal(volume.inputs.name, "bastion-registry-data");
    });

    it("reports endpoint, scheme and what is switched on", async function () {
      assert.equal(await valueOf(registry.endpoint), "registry.lab:5443");
      assert.equal(await valueOf(registry.localEndpoint), "127.0.0.1:5443");
      assert.equal(await valueOf(registry.scheme), "https");
      assert.equal(await valueOf(registry.authEnabled), true);
      assert.equal(await valueOf(registry.tlsEnabled), true);
      assert.equal(await valueOf(registry.containerId), "secure-container-id");
    });
  });

  describe("loading the image from a tar on a remote engine", function () {
    let tarFile: string;
    before(async function () {
      tarFile = path.join(mkdtempSync(path.join(os.tmpdir(), "registry-tar-")), "registry.tar");
      writeFileSync(tarFile, "pretend image tar");
      const registry = new RegistryContainer("remote", {
        imageTar: tarFile,
        hostPath: "/srv/registry",
        bindAddress: "10.0.0.5",
        dockerHost: "ssh://admin@bastion",
      });
      await valueOf(registry.containerId);
      await settle();
    });

    it("runs docker load first, against the same engine, keyed on the tar's content", function () {
      const load = only(resourcesOf("remote"), "command:local:Command");
      assert.equal(load.inputs.create, dockerLoadScript);
      assert.deepEqual(load.inputs.environment, {
        IMAGE_TAR: tarFile,
        IMAGE: "registry:2",
        DOCKER_HOST: "ssh://admin@bastion",
      });
      assert.deepEqual(load.inputs.triggers, [
        createHash("sha256").update("pretend image tar").digest("hex"),
      ]);
      const container = only(resourcesOf("remote"), "docker:index/container:Container");
      assert.ok(container.dependencies.some((urn) => urn.endsWith("::remote-load-image")));
      // Destroy removes the image it loaded; a new tar removes the old image before loading.
      assert.equal(load.inputs.delete, dockerUnloadScript);
      assert.equal(load.deleteBeforeReplace, true);
    });

    it("labels the container with the tar's hash, so a new tar under the same tag replaces it", async function () {
      const container = only(resourcesOf("remote"), "docker:index/container:Container");
      const label = {
        label: imageTarLabel,
        value: createHash("sha256").update("pretend image tar").digest("hex"),
      };
      const ownStack = { label: stackLabel, value: `${pulumi.getProject()}/${pulumi.getStack()}` };
      assert.deepEqual(container.inputs.labels, [ownStack, label]);
      writeFileSync(tarFile, "a newer image tar");
      const again = new RegistryContainer("newtar", {
        containerName: "remote",
        imageTar: tarFile,
        hostPath: "/srv/registry",
        bindAddress: "10.0.0.5",
        dockerHost: "ssh://admin@bastion",
      });
      await valueOf(again.containerId);
      await settle();
      const replaced = only(resourcesOf("newtar"), "docker:index/container:Container");
      assert.deepEqual(replaced.inputs.labels, [
        ownStack,
        {
          label: imageTarLabel,
          value: createHash("sha256").update("a newer image tar").digest("hex"),
        },
      ]);
      // Everything else the same: only the (replace-on-change) label differs.
      assert.deepEqual({ ...replaced.inputs, labels: [] }, { ...container.inputs, labels: [] });
    });

    it("uses its own docker provider for the remote host and a bind mount for hostPath", function () {
      const provider = only(resourcesOf("remote"), "pulumi:providers:docker");
      assert.equal(provider.inputs.host, "ssh://admin@bastion");
      const container = only(resourcesOf("remote"), "docker:index/container:Container");
      assert.match(container.provider, /pulumi:providers:docker::remote-docker::remote-docker-id$/);
      assert.deepEqual(container.inputs.mounts, [
        { type: "bind", source: "/srv/registry", target: "/var/lib/registry" },
      ]);
      assert.equal(
        resourcesOf("remote").filter((r) => r.type === "docker:index/volume:Volume").length,
        0,
      );
    });
  });

  describe("bad input fails before anything is created", function () {
    const cases: Array<[string, RegistryContainerArgs, RegExp]> = [
      ["port out of range", { hostPort: 70000 }, /hostPort: 70000 is out of range/],
      ["port zero", { hostPort: 0 }, /hostPort: 0 is out of range/],
      [
        "certificate without key",
        { tls: { certificateFile } },
        /tls\.keyFile: a TLS certificate was given without its key/,
      ],
      [
        "key without certificate",
        { tls: { keyFile } },
        /tls\.certificateFile: a TLS key was given without a certificate/,
      ],
      [
        "mismatched key",
        { tls: { certificateFile, keyFile: path.join(fixtures, "other.key") } },
        /tls\.keyFile: does not belong to the certificate/,
      ],
      [
        "certificate not naming the endpoint",
        { advertisedEndpoint: "elsewhere.lab:5000", tls: { certificateFile, keyFile } },
        /tls\.certificateFile: the certificate does not name 'elsewhere\.lab'/,
      ],
      [
        "unreadable certificate",
        { tls: { certificateFile: "/nonexistent/cert.pem", keyFile } },
        /tls\.certificateFile: cannot read '\/nonexistent\/cert\.pem'/,
      ],
      [
        "password without user",
        { auth: { password: "x" } },
        /auth\.username: a password was given without a user name/,
      ],
      [
        "user without password",
        { auth: { username: "mirror" } },
        /auth\.password: user 'mirror' needs a password/,
      ],
      [
        "unknown restart policy",
        { restartPolicy: "sometimes" as never },
        /restartPolicy: 'sometimes' is not a restart policy; use one of no, on-failure, always, unless-stopped/,
      ],
      [
        "unreadable tar",
        { imageTar: "/nonexistent/registry.tar" },
        /imageTar: cannot read '\/nonexistent\/registry\.tar'/,
      ],
      [
        "managed setting overridden",
        { extraSettings: { REGISTRY_HTTP_ADDR: ":80" } },
        /extraSettings\.REGISTRY_HTTP_ADDR: is managed by RegistryContainer/,
      ],
      [
        "setting that is not REGISTRY_*",
        { extraSettings: { HTTP_PROXY: "x" } },
        /extraSettings\.HTTP_PROXY: keys must be REGISTRY_\*/,
      ],
      [
        "relative host path",
        { hostPath: "data/registry" },
        /hostPath: 'data\/registry' must be an absolute path/,
      ],
      [
        "all addresses without an advertised endpoint",
        { bindAddress: "0.0.0.0" },
        /advertisedEndpoint: the registry binds 0\.0\.0\.0/,
      ],
      [
        "bind address that is no IP",
        { bindAddress: "bastion" },
        /bindAddress: 'bastion' is not an IP address/,
      ],
    ];
    for (const [label, args, expected] of cases) {
      it(label, async function () {
        const name = `bad-${label.replace(/\W+/g, "-")}`;
        assert.throws(
          () =>
            new RegistryContainer(name, {
              bindAddress: "127.0.0.1",
              checkHostPort: false,
              ...args,
            }),
          expected,
        );
        await settle();
        assert.deepEqual(
          resourcesOf(name).filter((resource) => resource.custom),
          [],
          "no resource was created",
        );
      });
    }
  });
});
