import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { commandHelp } from "../../../cli/airgap";
import { pluginArchiveName, providerPlugins } from "../../../cli/bundle";
import { resolveRegistrySettings } from "../../../components/registry/spec";
import { buildStackConfig, readTypedConfig } from "../../../infra/config";
import { imageSetForStack, upstreamsForStack } from "../../../infra/images";
import { loadProjectSchema } from "../../../infra/schema";
import { readStackFile } from "../../../infra/stack-file";

const root = path.join(__dirname, "../../..");
const readme = readFileSync(path.join(root, "README.md"), "utf8");
const schema = loadProjectSchema();
const project = schema.project;

/** The first ```sh block after `<!-- walkthrough:NAME -->`. */
function walkthroughBlock(name: string): string {
  const marker = readme.indexOf(`<!-- walkthrough:${name} -->`);
  assert.ok(marker >= 0, `README has no walkthrough:${name} block`);
  const match = /```sh\n([\s\S]*?)```/.exec(readme.slice(marker));
  assert.ok(match, `no sh block after walkthrough:${name}`);
  return match[1];
}

/** Undoes the shell quoting the README uses: '...' and "..." with $BUNDLE expanded. */
function shellWord(word: string, variables: Record<string, string>): string {
  // `$(ssh-keyscan -t TYPE HOST ... | cut ...)` prints "<type> <key>": a well-formed key stands in.
  const scanned = word.replace(
    /\$\(ssh-keyscan -t (\S+) \S+ [^)]*\)/g,
    (_, type: string) =>
      `ssh-${type} AAAAC3NzaC1lZDI1NTE5AAAAIBmesRW2453+7+sP65+lx6YuLczt1nsV7zMOj8RG+ZWe`,
  );
  const expanded = scanned.replace(
    /\$([A-Z_]+)/g,
    (_, name: string) => variables[name] ?? `$${name}`,
  );
  return expanded.replace(/^'(.*)'$/, "$1").replace(/^"(.*)"$/, "$1");
}

interface ConfigSettings {
  values: Record<string, string>;
  lists: Record<string, string[]>;
  secrets: string[];
}

/** The `pulumi config set` lines of a block, as Pulumi would store them. */
function configSets(block: string, variables: Record<string, string>): ConfigSettings {
  const settings: ConfigSettings = { values: {}, lists: {}, secrets: [] };
  for (const line of block.split("\n")) {
    const command = line.replace(/\s+#.*$/, "").trim();
    if (!command.startsWith("pulumi config set ")) continue;
    const words = command.slice("pulumi config set ".length).match(/'[^']*'|"[^"]*"|\S+/g)!;
    const secret = words.includes("--secret");
    const pathMode = words.includes("--path");
    const rest = words.filter((word) => word !== "--secret" && word !== "--path");
    const key = shellWord(rest[0], variables);
    if (secret) {
      // Secrets come from a file or stdin, never from the command line.
      assert.equal(rest[1], "<", `${line}: a secret must be read from a file (< file)`);
      settings.secrets.push(key);
      continue;
    }
    const value = shellWord(rest[1], variables);
    const indexed = /^(\w+)\[(\d+)\]$/.exec(key);
    if (pathMode && indexed) {
      const list = (settings.lists[indexed[1]] ??= []);
      assert.equal(Number(indexed[2]), list.length, `${line}: list entries in order`);
      list.push(value);
    } else {
      settings.values[key] = value;
    }
  }
  return settings;
}

function rawConfig(settings: ConfigSettings, base: Record<string, string> = {}) {
  const raw = { ...base };
  for (const [key, value] of Object.entries(settings.values)) raw[`${project}:${key}`] = value;
  for (const [key, list] of Object.entries(settings.lists))
    raw[`${project}:${key}`] = JSON.stringify(list);
  return raw;
}

describe("README", function () {
  it("names each provider plugin at the exact version package.json pins", function () {
    const plugins = providerPlugins();
    assert.ok(plugins.length >= 3);
    for (const plugin of plugins) {
      assert.ok(
        readme.includes(`| \`${plugin.name}\``) &&
          new RegExp(
            `\\| \`${plugin.name}\`\\s+\\| \`${plugin.version.replace(/\./g, "\\.")}\``,
          ).test(readme),
        `table row for ${plugin.name} ${plugin.version}`,
      );
      assert.ok(
        readme.includes(`pulumi plugin install resource ${plugin.name} ${plugin.version}\n`),
        `connected-side install line for ${plugin.name} ${plugin.version}`,
      );
      assert.ok(
        readme.includes(
          `pulumi plugin install resource ${plugin.name} ${plugin.version} --file "$BUNDLE/plugins/${pluginArchiveName(plugin, "linux-amd64")}"`,
        ),
        `gap-side install line for ${plugin.name} ${plugin.version}`,
      );
    }
    // No other version of any plugin anywhere in the README.
    for (const match of readme.matchAll(/pulumi plugin install resource (\S+) (\S+)/g)) {
      const plugin = plugins.find((candidate) => candidate.name === match[1]);
      assert.ok(plugin, `unknown plugin ${match[1]}`);
      assert.equal(match[2], plugin.version, match[0]);
    }
    assert.doesNotMatch(readme, /\d\.x --file/);
  });

  it("the export stack of the walkthrough evaluates with the real config code", function () {
    const block = walkthroughBlock("export-stack");
    assert.match(block, /^pulumi stack init export /m);
    const base = readStackFile(path.join(root, "Pulumi.export.yaml")).config;
    const settings = configSets(block, {});
    const config = buildStackConfig(readTypedConfig(rawConfig(settings, base), schema), project);
    assert.equal(config.images.destination, "archive");
    assert.equal(config.images.archiveDirectory, "/srv/airgap/images");
    assert.equal(config.registry.enabled, false);
    assert.equal(config.conformance.enabled, false);
    assert.ok(imageSetForStack(config, project).images.length > 10);
    // The bundle is then made from the same archive directory.
    assert.match(
      walkthroughBlock("plugins-connected"),
      /npm run bundle -- --out \/srv\/airgap\/bundle --images \/srv\/airgap\/images/,
    );
  });

  it("the gap side's stack evaluates with the real config code: archive, registry tar, SSH nodes", function () {
    const block = walkthroughBlock("gap-stack");
    const bundle = "/srv/airgap/bundle";
    assert.match(walkthroughBlock("gap-plugins"), /^BUNDLE=\/srv\/airgap\/bundle$/m);
    assert.match(block, /^pulumi login --local$/m);
    assert.match(block, /^pulumi stack init [a-z-]+$/m);
    const settings = configSets(block, { BUNDLE: bundle });
    const present = new Set(settings.secrets);
    const config = buildStackConfig(readTypedConfig(rawConfig(settings), schema), project, {
      nodesSshPrivateKey: present.has("nodesSshPrivateKey") ? ({} as never) : undefined,
    });
    assert.deepEqual(config.images.source, { kind: "archive", directory: `${bundle}/images` });
    assert.equal(config.registry.imageTar, `${bundle}/registry-image.tar`);
    assert.equal(config.registry.enabled, true);
    assert.equal(config.conformance.enabled, true);
    assert.ok(config.nodes.list.length >= 1);
    assert.ok(config.nodes.list.every((node) => node.access.kind === "ssh"));
    // Every SSH node's host key is set, so the connection is checked.
    for (const node of config.nodes.list) {
      assert.match(String(node.hostKeyCheck?.hostKey), /^ssh-ed25519 /, node.name);
    }
    // SSH nodes need the key, and it is set as a secret from a file.
    assert.ok(present.has("nodesSshPrivateKey"));
    const endpoint = resolveRegistrySettings({
      containerName: config.registry.containerName,
      hostPort: config.registry.hostPort,
      bindAddress: config.registry.bindAddress,
      advertisedEndpoint: config.registry.advertisedEndpoint,
      networks: config.registry.networks,
    }).endpoint;
    assert.equal(endpoint, "10.0.0.5:5000");
    assert.ok(imageSetForStack(config, project).images.length > 10);
    assert.ok(upstreamsForStack(config, project, endpoint).length > 0);
  });

  it("every key the README sets is declared in Pulumi.yaml", function () {
    for (const match of readme.matchAll(/pulumi config set (?:--\w+ )*'?([A-Za-z]+)/g)) {
      assert.ok(schema.keys[match[1]], `README sets undeclared key ${match[1]}`);
    }
    for (const match of readme.matchAll(/`(\w+): (true|false)`/g)) {
      assert.ok(schema.keys[match[1]] ?? schema.keys[`conformance${match[1]}`], match[0]);
    }
  });

  it("documents every stack output of the program, and no other", function () {
    const program = readFileSync(path.join(root, "infra/program.ts"), "utf8");
    const body = /export interface ProgramOutputs \{([\s\S]*?)\n\}/.exec(program)![1];
    const declared = [...body.matchAll(/^ {2}(\w+)\?:/gm)].map((match) => match[1]).sort();
    const section = readme.slice(
      readme.indexOf("### Stack outputs"),
      readme.indexOf("### The results directory"),
    );
    const documented = [...section.matchAll(/^\| `(\w+)`/gm)].map((match) => match[1]).sort();
    assert.deepEqual(documented, declared);
  });

  it("lists the results files the run action writes", function () {
    const block = readme.slice(
      readme.indexOf("### The results directory"),
      readme.indexOf("### Pass or fail"),
    );
    assert.match(block, /conformance-results\/\n\s+<stack>\/\n\s+<runId>\//);
    const files = [...block.matchAll(/^\s+([\w.]+\.(?:log|xml|json))\s/gm)].map(
      (match) => match[1],
    );
    assert.ok(files.length >= 4, files.join(", "));
    const actions = readdirSync(path.join(root, "components/conformance/actions"))
      .map((name) => readFileSync(path.join(root, "components/conformance/actions", name), "utf8"))
      .join("\n");
    for (const file of files)
      assert.ok(actions.includes(`"${file}"`), `${file} is written by the run`);
    assert.match(readFileSync(path.join(root, ".gitignore"), "utf8"), /^conformance-results\/$/m);
  });

  it("describes each CLI command", function () {
    const section = readme.slice(
      readme.indexOf("## The offline CLI"),
      readme.indexOf("## Stack configuration"),
    );
    for (const command of Object.keys(commandHelp))
      assert.match(section, new RegExp(`^- \`${command}`, "m"));
  });

  it("its test command is what npm test and CI run", function () {
    const section = readme.slice(readme.indexOf("## Tests"));
    const command = /```sh\n(.+)\n```/.exec(section)![1];
    assert.equal(command, "npm test");
    const scripts = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).scripts;
    assert.equal(scripts.test, "npm run test:all");
    const ci = readFileSync(path.join(root, ".ci/run"), "utf8").trim().split("\n");
    assert.equal(ci[ci.length - 1], command);
  });
});
