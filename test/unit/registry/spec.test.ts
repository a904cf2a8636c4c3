import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as bcrypt from "bcryptjs";
import fc from "fast-check";
import { htpasswdLine, htpasswdMatches } from "../../../components/registry/htpasswd";
import { portConflict } from "../../../components/registry/port-check";
import {
  managedSettings,
  registryContainerSpec,
  resolveRegistrySettings,
} from "../../../components/registry/spec";

const fixtures = path.resolve(__dirname, "..", "..", "fixtures");
const certificatePem = readFileSync(path.join(fixtures, "registry.crt"), "utf8");
const keyPem = readFileSync(path.join(fixtures, "registry.key"), "utf8");

describe("registry settings and container spec", function () {
  it("defaults: registry:2, port 5000, delete on, unless-stopped, a named volume", function () {
    const settings = resolveRegistrySettings({ containerName: "reg", bindAddress: "10.0.0.5" });
    const spec = registryContainerSpec<string>(settings, {});
    assert.equal(spec.image, "registry:2");
    assert.deepEqual(spec.ports, [{ internal: 5000, external: 5000, ip: "10.0.0.5" }]);
    assert.deepEqual(spec.mounts, [
      { type: "volume", source: "reg-data", target: "/var/lib/registry" },
    ]);
    assert.equal(spec.restart, "unless-stopped");
    assert.ok(spec.env.includes("REGISTRY_STORAGE_DELETE_ENABLED=true"));
    assert.deepEqual(spec.uploads, []);
    assert.equal(settings.endpoint, "10.0.0.5:5000");
    assert.equal(settings.localEndpoint, "10.0.0.5:5000");
  });

  it("uses the container name on a Docker network (the kind recipe)", function () {
    const settings = resolveRegistrySettings({
      containerName: "kind-registry",
      networks: ["kind"],
      hostPort: 5001,
    });
    assert.equal(settings.endpoint, "kind-registry:5000");
    assert.equal(settings.localEndpoint, "127.0.0.1:5001");
  });

  it("brackets IPv6 endpoints", function () {
    const settings = resolveRegistrySettings({
      containerName: "reg",
      bindAddress: "fd00::5",
      hostPort: 5001,
    });
    assert.equal(settings.endpoint, "[fd00::5]:5001");
  });

  it("turns on TLS and htpasswd with files in fixed places", function () {
    const settings = resolveRegistrySettings({
      containerName: "reg",
      advertisedEndpoint: "registry.lab:443",
      hostPort: 443,
      tls: { certificatePem, keyPem },
      auth: { username: "mirror", hasPassword: true },
    });
    const spec = registryContainerSpec<string>(settings, {
      tlsKeyPem: keyPem,
      htpasswd: "mirror:hash\n",
    });
    for (const entry of [
      "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/registry.crt",
      "REGISTRY_HTTP_TLS_KEY=/certs/registry.key",
      "REGISTRY_AUTH=htpasswd",
      "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
    ]) {
      assert.ok(spec.env.includes(entry), entry);
    }
    assert.deepEqual(
      spec.uploads.map((upload) => [upload.file, upload.permissions]),
      [
        ["/certs/registry.crt", "0644"],
        ["/certs/registry.key", "0600"],
        ["/auth/htpasswd", "0600"],
      ],
    );
    assert.deepEqual(settings.warnings, []);
  });

  it("warns when auth is on without TLS", function () {
    const settings = resolveRegistrySettings({
      containerName: "reg",
      bindAddress: "127.0.0.1",
      auth: { username: "mirror", hasPassword: true },
    });
    assert.match(settings.warnings.join(), /without TLS/);
  });

  it("health probe uses the loopback debug listener, which needs neither auth nor TLS", function () {
    const spec = registryContainerSpec<string>(
      resolveRegistrySettings({ containerName: "reg", bindAddress: "127.0.0.1" }),
      {},
    );
    assert.ok(spec.env.includes("REGISTRY_HTTP_DEBUG_ADDR=127.0.0.1:5001"));
    assert.deepEqual(spec.healthcheck.tests.slice(-1), ["http://127.0.0.1:5001/debug/health"]);
  });

  it("property: env is sorted, unique by key, and holds every always-managed setting", function () {
    const extraKey = fc
      .stringMatching(/^REGISTRY_[A-Z][A-Z0-9_]{0,20}$/)
      .filter((key) => !(managedSettings as readonly string[]).includes(key));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 65535 }),
        fc.boolean(),
        fc.dictionary(extraKey, fc.stringMatching(/^[a-z0-9./:-]{0,20}$/), { maxKeys: 5 }),
        (hostPort, deleteEnabled, extraSettings) => {
          const settings = resolveRegistrySettings({
            containerName: "reg",
            bindAddress: "127.0.0.1",
            hostPort,
            deleteEnabled,
            extraSettings,
          });
          const spec = registryContainerSpec<string>(settings, {});
          const keys = spec.env.map((entry) => entry.slice(0, entry.indexOf("=")));
          assert.deepEqual(keys, [...keys].sort());
          assert.equal(new Set(keys).size, keys.length);
          for (const key of [
            "REGISTRY_HTTP_ADDR",
            "REGISTRY_HTTP_DEBUG_ADDR",
            "REGISTRY_STORAGE_DELETE_ENABLED",
          ]) {
            assert.ok(keys.includes(key));
          }
          assert.ok(spec.env.includes(`REGISTRY_STORAGE_DELETE_ENABLED=${deleteEnabled}`));
          assert.equal(spec.ports[0].external, hostPort);
          for (const [key, value] of Object.entries(extraSettings))
            assert.ok(spec.env.includes(`${key}=${value}`));
        },
      ),
    );
  });

  it("property: every port outside 1..65535 is refused, naming hostPort", function () {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ max: 0 }),
          fc.integer({ min: 65536 }),
          fc.double({ min: 1.1, max: 65534.9, noInteger: true }),
        ),
        (port) => {
          assert.throws(
            () =>
              resolveRegistrySettings({
                containerName: "reg",
                bindAddress: "127.0.0.1",
                hostPort: port,
              }),
            /hostPort: .* is out of range/,
          );
        },
      ),
    );
  });
});

describe("htpasswd line", function () {
  it("is a bcrypt hash distribution accepts, that verifies the password", function () {
    const line = htpasswdLine("mirror", "correct horse");
    const [user, hash] = line.trimEnd().split(":");
    assert.equal(user, "mirror");
    assert.match(hash, /^\$2b\$10\$[./A-Za-z0-9]{53}$/);
    assert.ok(bcrypt.compareSync("correct horse", hash));
    assert.ok(!bcrypt.compareSync("wrong horse", hash));
  });

  it("is salted at random: the same credentials never give the same line twice", function () {
    const first = htpasswdLine("mirror", "pw");
    const second = htpasswdLine("mirror", "pw");
    assert.notEqual(first, second);
    for (const line of [first, second]) assert.ok(htpasswdMatches(line, "mirror", "pw"));
    assert.ok(!htpasswdMatches(first, "mirror", "pw2"));
    assert.ok(!htpasswdMatches(first, "mirror2", "pw"));
    assert.ok(!htpasswdMatches("garbage", "mirror", "pw"));
  });
});

describe("host port decision", function () {
  const base = { hostPort: 5000, bindAddress: "0.0.0.0", containerName: "reg" };
  it("allows a free port and our own container's port", function () {
    assert.equal(portConflict({ ...base, probe: "free", publishers: [] }), undefined);
    assert.equal(
      portConflict({ ...base, probe: "in-use", publishers: [{ name: "reg" }] }),
      undefined,
    );
  });
  it("knows this stack's container under its previous name (a rename replaces it)", function () {
    const renamed = { ...base, containerName: "reg-new", stack: "airgap-conformance/lab" };
    assert.equal(
      portConflict({
        ...renamed,
        probe: "in-use",
        publishers: [{ name: "reg", stack: "airgap-conformance/lab" }],
      }),
      undefined,
    );
    assert.match(
      portConflict({
        ...renamed,
        probe: "in-use",
        publishers: [{ name: "reg", stack: "airgap-conformance/other" }],
      })!,
      /published by container reg;/,
    );
    assert.match(
      portConflict({ ...renamed, probe: "in-use", publishers: [{ name: "reg" }] })!,
      /published by container reg;/,
    );
  });
  it("names another container, a host process, or a foreign address", function () {
    assert.match(
      portConflict({ ...base, probe: "in-use", publishers: [{ name: "web" }] })!,
      /published by container web/,
    );
    assert.match(
      portConflict({ ...base, probe: "in-use", publishers: [] })!,
      /taken by a process on this host/,
    );
    assert.match(
      portConflict({ ...base, probe: "address-unavailable", publishers: [] })!,
      /not an address of this host/,
    );
  });
});
