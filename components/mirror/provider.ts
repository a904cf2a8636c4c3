/**
 * The dynamic providers the engine stores with every mirrored image. The engine keeps a
 * provider's module text in each resource's state, so these are kept tiny: they load the
 * implementation (provider-runtime.ts) from the project when called. That keeps state small (a
 * few hundred bytes per image instead of the whole runtime), and the runtime runs exactly as the
 * tests run it.
 *
 * Nothing absolute is captured: Pulumi starts the dynamic provider host in the project's working
 * directory (the `main` directory), so the runtime and ts-node are looked up from there at call
 * time. `pulumi destroy` and `refresh` keep working after the project directory has moved or
 * been installed again elsewhere. The host has no TypeScript loader of its own, hence ts-node
 * (which Pulumi TypeScript projects carry anyway).
 */

/** The runtime module's path below the project root (where Pulumi.yaml is). */
const runtimeInProject = "components/mirror/provider-runtime";

type Runtime = typeof import("./provider-runtime");

function loadRuntime(): Runtime {
  // Copied as text into each provider module: only built-in modules and `runtimeInProject` inside.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodePath = require("node:path") as typeof import("node:path");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeFs = require("node:fs") as typeof import("node:fs");
  const start = process.cwd();
  let root = start;
  for (;;) {
    const candidate = nodePath.join(root, runtimeInProject);
    if (nodeFs.existsSync(`${candidate}.ts`) || nodeFs.existsSync(`${candidate}.js`)) break;
    const parent = nodePath.dirname(root);
    if (parent === root) {
      throw new Error(
        `the mirror's provider runtime (${runtimeInProject}) is not in ${start} or a directory above it: run pulumi from the airgap-conformance project`,
      );
    }
    root = parent;
  }
  const runtimeModule = nodePath.join(root, runtimeInProject);
  if (!nodeFs.existsSync(`${runtimeModule}.js`) && !require.extensions[".ts"]) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(require.resolve("ts-node", { paths: [root] })).register({
      transpileOnly: true,
      compilerOptions: { module: "commonjs" },
    });
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(runtimeModule) as Runtime;
}

/**
 * The provider module the engine stores with each resource and its dynamic provider host loads
 * (`require-from-string(text).handler()`): it finds the runtime in the project and forwards
 * every call to `runtimeName`. Written out rather than serialised from a closure: the SDK's
 * closure serializer opens an inspector session and walks every captured function (a fixed half
 * second or so per program), and a fixed text keeps what the state holds the same from run to run.
 */
function providerModule(runtimeName: keyof Runtime, methods: readonly string[]): string {
  return [
    `"use strict";`,
    `const runtimeInProject = ${JSON.stringify(runtimeInProject)};`,
    `const loadRuntime = ${loadRuntime.toString()};`,
    "exports.handler = () => ({",
    ...methods.map(
      (method) => `  ${method}: (...args) => loadRuntime().${runtimeName}.${method}(...args),`,
    ),
    "});",
    "",
  ].join("\n");
}

/** The `__provider` of every mirrored image. */
export const mirroredImageProviderModule = providerModule("mirroredImageRuntime", [
  "check",
  "create",
  "diff",
  "update",
  "read",
  "delete",
]);

/** The `__provider` of an archive's lock file. */
export const archiveLockProviderModule = providerModule("archiveLockRuntime", [
  "create",
  "diff",
  "update",
  "delete",
]);
