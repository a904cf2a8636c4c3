import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import {
  buildStackConfig,
  configKeyForRegistryArg,
  parseExtraSettings,
  parseNodeEntry,
  readTypedConfig,
  registryArgConfigKeys,
} from "../../../infra/config";
import { loadProjectSchema } from "../../../infra/schema";

const schema = loadProjectSchema();

describe("stack config", function () {
  it("declares every key with a type and a description in Pulumi.yaml", function () {
    assert.equal(schema.project, "airgap-conformance");
    for (const [key, keySchema] of Object.entries(schema.keys)) {
      assert.ok(["string", "integer", "boolean", "array"].includes(keySchema.type), key);
      assert.ok(keySchema.description && keySchema.description.length > 10, key);
    }
  });

  it("fills defaults from Pulumi.yaml", function () {
    const config = buildStackConfig(
      readTypedConfig({ "airgap-conformance:kubernetesVersion": "1.31.4" }, schema),
      schema.project,
    );
    assert.equal(config.registry.enabled, true);
    assert.equal(config.registry.image, "registry:2");
    assert.equal(config.registry.hostPort, 5000);
    assert.deepEqual(config.registry.networks, []);
    assert.equal(config.registry.tls, undefined);
    assert.equal(config.dockerHost, undefined);
  });

  it("parses integers, booleans and lists from their stack-file string form", function () {
    const values = readTypedConfig(
      {
        "airgap-conformance:registryHostPort": "5443",
        "airgap-conformance:registryDeleteEnabled": "false",
        "airgap-conformance:registryNetworks": '["kind","lab"]',
        "other-project:whatever": "ignored",
      },
      schema,
    );
    assert.equal(values.registryHostPort, 5443);
    assert.equal(values.registryDeleteEnabled, false);
    assert.deepEqual(values.registryNetworks, ["kind", "lab"]);
  });

  it("fails the up on a run where no spec ran unless conformanceFailOnNoTests is false", function () {
    const base = {
      "airgap-conformance:kubernetesVersion": "1.31.4",
      "airgap-conformance:conformanceEnabled": "true",
    };
    const strict = buildStackConfig(readTypedConfig(base, schema), schema.project);
    assert.equal(strict.conformance.failOnNoTests, true);
    const lenient = buildStackConfig(
      readTypedConfig({ ...base, "airgap-conformance:conformanceFailOnNoTests": "false" }, schema),
      schema.project,
    );
    assert.equal(lenient.conformance.failOnNoTests, false);
    assert.equal(lenient.conformance.failOnTestFailures, true);
    assert.throws(
      () =>
        readTypedConfig({ ...base, "airgap-conformance:conformanceFailOnNoTests": "no" }, schema),
      /conformanceFailOnNoTests.*allowed: true or false/,
    );
  });

  for (const [key, raw, message] of [
    ["registryDeleteEnabled", "yes", /allowed: true or false/],
    ["registryNetworks", "kind", /allowed: a list of string values/],
    ["registryNetworks", "[1,2]", /allowed: a list of string values/],
    ["registryHostPort", "50.5", /allowed: an integer/],
  ] as const) {
    it(`rejects ${key}=${raw}`, function () {
      assert.throws(() => readTypedConfig({ [`airgap-conformance:${key}`]: raw }, schema), message);
    });
  }

  it("reads imagesPlatforms, and names the key for a bad entry or a conflicting setting", function () {
    const build = (extra: Record<string, string>) =>
      buildStackConfig(
        readTypedConfig({ "airgap-conformance:kubernetesVersion": "1.31.4", ...extra }, schema),
        schema.project,
      );
    assert.deepEqual(build({}).images.platforms, []);
    assert.deepEqual(
      build({ "airgap-conformance:imagesPlatforms": '["linux/amd64","linux/arm64/v8"]' }).images
        .platforms,
      ["linux/amd64", "linux/arm64/v8"],
    );
    assert.throws(
      () => build({ "airgap-conformance:imagesPlatforms": '["linux/amd64","arm64"]' }),
      /config airgap-conformance:imagesPlatforms\[1\]: got "arm64"; allowed: os\/arch or os\/arch\/variant/,
    );
    assert.throws(
      () =>
        build({
          "airgap-conformance:imagesPlatforms": '["linux/arm64"]',
          "airgap-conformance:imagesPlatform": "linux/amd64",
        }),
      /config airgap-conformance:imagesPlatforms: .*not together with imagesPlatform/,
    );
    assert.throws(
      () =>
        build({
          "airgap-conformance:imagesPlatforms": '["linux/amd64","linux/arm64"]',
          "airgap-conformance:imagesDestination": "archive",
          "airgap-conformance:imagesArchiveDirectory": "/srv/images",
          "airgap-conformance:registryEnabled": "false",
          "airgap-conformance:conformanceEnabled": "false",
        }),
      /config airgap-conformance:imagesPlatforms: .*when imagesDestination is archive/,
    );
  });

  it("rejects unknown keys, with a suggestion only when one is close", function () {
    assert.throws(
      () => readTypedConfig({ "airgap-conformance:regsitryImage": "x" }, schema),
      /did you mean airgap-conformance:registryImage\?/,
    );
    assert.throws(
      () => readTypedConfig({ "airgap-conformance:completelyDifferent": "x" }, schema),
      (error: Error) =>
        /unknown key \(known keys: /.test(error.message) && !/did you mean/.test(error.message),
    );
  });

  it("parses REGISTRY_KEY=value settings and names a malformed entry", function () {
    assert.deepEqual(parseExtraSettings("k", ["REGISTRY_LOG_LEVEL=debug", "REGISTRY_A=b=c"]), {
      REGISTRY_LOG_LEVEL: "debug",
      REGISTRY_A: "b=c",
    });
    assert.throws(
      () => parseExtraSettings("k", ["REGISTRY_LOG_LEVEL"]),
      /config k\[0\]: got "REGISTRY_LOG_LEVEL"/,
    );
  });

  it("maps every component argument to a declared config key", function () {
    for (const key of Object.values(registryArgConfigKeys)) assert.ok(schema.keys[key], key);
    assert.equal(configKeyForRegistryArg("p", "networks[2]"), "p:registryNetworks");
    assert.equal(
      configKeyForRegistryArg("p", "extraSettings.REGISTRY_X"),
      "p:registryExtraSettings",
    );
    assert.equal(configKeyForRegistryArg("p", "tls.keyFile"), "p:registryTlsKeyFile");
  });

  it("the dev stack sets only declared keys", function () {
    const stack = parse(
      readFileSync(path.resolve(__dirname, "../../../Pulumi.dev.yaml"), "utf8"),
    ) as {
      config: Record<string, unknown>;
    };
    for (const fullKey of Object.keys(stack.config)) {
      assert.ok(schema.keys[fullKey.replace(/^airgap-conformance:/, "")], fullKey);
    }
  });
});

describe("nodes entries", function () {
  it("parses docker://, ssh:// and manual:// nodes", function () {
    assert.deepEqual(parseNodeEntry("nodes[0]", "manual://edge-7?runtime=k3s"), {
      name: "edge-7",
      runtime: "k3s",
      access: { kind: "manual" },
    });
    assert.deepEqual(parseNodeEntry("nodes[0]", "docker://kind-control-plane?runtime=containerd"), {
      name: "kind-control-plane",
      runtime: "containerd",
      access: { kind: "docker-exec", container: "kind-control-plane" },
    });
  });

  it("refuses a manual node with a user, a port or sudo, naming the key and the forms allowed", function () {
    for (const entry of [
      "manual://root@edge-7?runtime=k3s",
      "manual://edge-7:22?runtime=k3s",
      "manual://edge-7?runtime=k3s&sudo=true",
      "manual://?runtime=k3s",
    ]) {
      assert.throws(
        () => parseNodeEntry("airgap-conformance:nodes[1]", entry),
        /airgap-conformance:nodes\[1\].*manual:\/\/<node>\?runtime=<flavour>/,
        entry,
      );
    }
  });
});

describe("docs/config-reference.md", function () {
  it("is exactly what Pulumi.yaml generates (run npm run docs:config after changing keys)", function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { referenceFile, renderConfigReference } = require("../../../scripts/config-reference");
    assert.equal(readFileSync(referenceFile, "utf8"), renderConfigReference(loadProjectSchema()));
  });
});

describe("ssh nodes: host keys and credentials in nodes entries", function () {
  const hostKey =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMTGdvLmgDPZ/nmBIl3MR5RS9lHoEVuY6hm/arU7AM5U";
  const build = (raw: Record<string, string>) =>
    buildStackConfig(
      readTypedConfig(
        {
          "airgap-conformance:registryEnabled": "false",
          "airgap-conformance:imagesEnabled": "false",
          "airgap-conformance:conformanceEnabled": "false",
          ...raw,
        },
        schema,
      ),
      schema.project,
    );

  it("gives each ssh node the host key its host is listed with", function () {
    const config = build({
      "airgap-conformance:nodes": JSON.stringify([
        "ssh://root@10.0.0.11:2222?runtime=containerd&name=cp-1",
        "docker://kind-worker?runtime=containerd",
      ]),
      "airgap-conformance:nodesSshHostKeys": JSON.stringify([`10.0.0.11=${hostKey}`]),
    });
    assert.deepEqual(config.nodes.list[0].hostKeyCheck, { hostKey });
    assert.equal(config.nodes.list[1].hostKeyCheck, undefined);
  });

  it("refuses an ssh node without a host key, naming the key and the way out", function () {
    assert.throws(
      () =>
        build({
          "airgap-conformance:nodes": JSON.stringify(["ssh://root@10.0.0.11?runtime=containerd"]),
        }),
      (error: Error) =>
        error.message.startsWith("config airgap-conformance:nodesSshHostKeys: ") &&
        error.message.includes("no host key for ssh node 10.0.0.11") &&
        error.message.includes("ssh-keyscan -t ed25519 10.0.0.11") &&
        error.message.includes("nodesSshHostKeyCheck to false"),
    );
  });

  it("connects without host keys only when the stack says so", function () {
    const config = build({
      "airgap-conformance:nodes": JSON.stringify(["ssh://root@10.0.0.11?runtime=containerd"]),
      "airgap-conformance:nodesSshHostKeyCheck": "false",
    });
    assert.deepEqual(config.nodes.list[0].hostKeyCheck, { skipHostKeyCheck: true });
  });

  it("refuses a malformed host key and one for a host that is not a node", function () {
    const nodes = JSON.stringify(["ssh://root@10.0.0.11?runtime=containerd"]);
    assert.throws(
      () =>
        build({
          "airgap-conformance:nodes": nodes,
          "airgap-conformance:nodesSshHostKeys": JSON.stringify(["10.0.0.11=AAAAC3Nza"]),
        }),
      /config airgap-conformance:nodesSshHostKeys\[0\]: .*allowed: host=<key type> <base64 key>/,
    );
    assert.throws(
      () =>
        build({
          "airgap-conformance:nodes": nodes,
          "airgap-conformance:nodesSshHostKeys": JSON.stringify([
            `10.0.0.11=${hostKey}`,
            `10.0.0.99=${hostKey}`,
          ]),
        }),
      /config airgap-conformance:nodesSshHostKeys\[1\]: got "10\.0\.0\.99"; allowed: the host of an ssh:\/\/ node in nodes \(10\.0\.0\.11\)/,
    );
  });

  it("refuses a password in an ssh:// entry without echoing it", function () {
    assert.throws(
      () =>
        build({
          "airgap-conformance:nodes": JSON.stringify([
            "ssh://admin:Sup3rSecret@10.0.0.11?runtime=k3s",
          ]),
        }),
      (error: Error) =>
        error.message.startsWith("config airgap-conformance:nodes[0]: ") &&
        error.message.includes("ssh://admin:***@10.0.0.11?runtime=k3s") &&
        error.message.includes("nodesSshPrivateKey") &&
        !error.message.includes("Sup3rSecret") &&
        !(error.stack ?? "").includes("Sup3rSecret"),
    );
  });
});

describe("nodesPreloadSource", function () {
  const project = schema.project;
  const build = (values: Record<string, string>) =>
    buildStackConfig(
      readTypedConfig(
        Object.fromEntries(Object.entries(values).map(([k, v]) => [`${project}:${k}`, v])),
        schema,
      ),
      project,
    );
  const archiveStack = {
    kubernetesVersion: "1.31.4",
    registryEnabled: "false",
    imagesEnabled: "false",
    conformanceEnabled: "false",
    nodesPreload: "true",
    nodesPreloadSource: "archive",
    imagesArchiveDirectory: "/srv/airgap-images",
    nodes: JSON.stringify(["docker://k3s-server?runtime=k3s", "docker://worker?runtime=crio"]),
  };

  it("is mirror by default, and archive takes k3s and rke2 nodes with no registry at all", function () {
    assert.equal(build({ kubernetesVersion: "1.31.4" }).nodes.preloadSource, "mirror");
    const config = build(archiveStack);
    assert.equal(config.nodes.preloadSource, "archive");
    assert.equal(config.nodes.preload, true);
    assert.equal(config.registry.enabled, false);
  });

  it("names the key and what is allowed for every bad combination", function () {
    const refused = (values: Record<string, string>, message: RegExp) =>
      assert.throws(() => build(values), message);
    refused(
      { ...archiveStack, nodesPreloadSource: "usb" },
      /config airgap-conformance:nodesPreloadSource: got "usb"; allowed: mirror, archive/,
    );
    refused(
      { ...archiveStack, nodesPreload: "false" },
      /config airgap-conformance:nodesPreloadSource: got "archive"; allowed: mirror \(the default\) unless nodesPreload is true/,
    );
    refused(
      { ...archiveStack, imagesArchiveDirectory: "" },
      /config airgap-conformance:imagesArchiveDirectory: required when nodesPreloadSource is archive/,
    );
    refused(
      { ...archiveStack, kubernetesVersion: "" },
      /config airgap-conformance:kubernetesVersion: required when nodesPreloadSource is archive/,
    );
    refused(
      { ...archiveStack, conformanceEnabled: "true" },
      /config airgap-conformance:conformanceEnabled: got "true"; allowed: false when the stack has no mirror/,
    );
    refused(
      {
        ...archiveStack,
        nodesPreloadSource: "mirror",
        imagesEnabled: "true",
        mirrorEndpoint: "10.0.0.5:5000",
      },
      /config airgap-conformance:nodesPreload: got "true"; allowed: false while nodes lists a runtime=k3s node \(preload from the mirror serves .*k3s and rke2 nodes need nodesPreloadSource archive\)/,
    );
    refused(
      { ...archiveStack, nodes: JSON.stringify(["docker://m?runtime=hosts"]) },
      /allowed: false while nodes lists a runtime=hosts node \(preload from the archive serves containerd, containerd2, crio, podman, k3s and rke2 nodes\)/,
    );
  });
});
