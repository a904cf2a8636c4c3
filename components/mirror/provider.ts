import type * as pulumi from "@pulumi/pulumi";

/**
 * The dynamic providers the engine stores with every mirrored image. Pulumi serialises a
 * provider with everything it references into each resource's state, so these are kept tiny:
 * they load the implementation (provider-runtime.ts) from the project when called. That keeps
 * state small (a few hundred bytes per image instead of the whole runtime), and the runtime runs
 * exactly as the tests run it.
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
  // Serialised by value into each provider: only built-in modules and plain strings inside.
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

export const mirroredImageProvider: pulumi.dynamic.ResourceProvider = {
  create: (inputs) => loadRuntime().mirroredImageRuntime.create(inputs),
  diff: (id, olds, news) => loadRuntime().mirroredImageRuntime.diff!(id, olds, news),
  update: (id, olds, news) => loadRuntime().mirroredImageRuntime.update!(id, olds, news),
  read: (id, props) => loadRuntime().mirroredImageRuntime.read!(id, props),
  delete: (id, props) => loadRuntime().mirroredImageRuntime.delete!(id, props),
};

export const archiveLockProvider: pulumi.dynamic.ResourceProvider = {
  create: (inputs) => loadRuntime().archiveLockRuntime.create(inputs),
  update: (id, olds, news) => loadRuntime().archiveLockRuntime.update!(id, olds, news),
  delete: (id, props) => loadRuntime().archiveLockRuntime.delete!(id, props),
};
