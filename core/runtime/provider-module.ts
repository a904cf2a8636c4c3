/**
 * Dynamic providers as the engine stores them. The engine keeps a dynamic resource's provider
 * module text (`__provider`) in state and runs it again for every later diff, `refresh` and
 * `destroy`, in the dynamic provider host (`require-from-string(text).handler()`). The modules
 * built here are fixed, tiny texts that load the implementation from the project when called:
 * state stays small, the implementation runs exactly as the tests run it, and the text is the
 * same from run to run. They are written out rather than serialised from closures: the SDK's
 * closure serializer opens an inspector session and walks every captured function, a fixed half
 * second or so per program.
 *
 * Nothing absolute is captured: Pulumi starts the dynamic provider host in the project's working
 * directory (Pulumi.yaml's `main`), so the runtime and ts-node are looked up from there at call
 * time. `pulumi destroy` and `refresh` keep working after the project directory has moved or
 * been installed again elsewhere. The host has no TypeScript loader of its own, hence ts-node
 * (which Pulumi TypeScript projects carry anyway).
 */

/**
 * Finds `runtimeInProject` (a module path below the project root) from the working directory
 * up, and loads it. Copied as text into each provider module, so it uses only built-in modules
 * and its argument.
 */
function loadRuntime(runtimeInProject: string): Record<string, Record<string, unknown>> {
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
        `the provider runtime ${runtimeInProject} is not in ${start} or a directory above it: run pulumi from the airgap-conformance project`,
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
  return require(runtimeModule);
}

/**
 * The provider module whose `handler()` forwards each of `methods` to the provider object
 * `runtimeName` exported by `runtimeInProject` (e.g. `components/mirror/provider-runtime`).
 */
export function dynamicProviderModule(
  runtimeInProject: string,
  runtimeName: string,
  methods: readonly ("check" | "create" | "diff" | "update" | "read" | "delete")[],
): string {
  const runtime = `loadRuntime(${JSON.stringify(runtimeInProject)}).${runtimeName}`;
  return [
    `"use strict";`,
    `const loadRuntime = ${loadRuntime.toString()};`,
    "exports.handler = () => ({",
    ...methods.map((method) => `  ${method}: (...args) => ${runtime}.${method}(...args),`),
    "});",
    "",
  ].join("\n");
}
