import type * as pulumi from "@pulumi/pulumi";

/**
 * The preload tarball's dynamic provider, kept tiny in state: it loads its implementation
 * (preload-runtime.ts) from the project when the engine calls, exactly as the mirror's providers
 * do (components/mirror/provider.ts explains why nothing absolute is captured).
 */

const runtimeInProject = "components/nodes/preload-runtime";

type Runtime = typeof import("./preload-runtime");

function loadRuntime(): Runtime {
  // Serialised by value into the provider: only built-in modules and plain strings inside.
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
        `the preload provider runtime (${runtimeInProject}) is not in ${start} or a directory above it: run pulumi from the airgap-conformance project`,
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

export const preloadTarballProvider: pulumi.dynamic.ResourceProvider = {
  create: (inputs) => loadRuntime().preloadTarballRuntime.create(inputs),
  diff: (id, olds, news) => loadRuntime().preloadTarballRuntime.diff!(id, olds, news),
  update: (id, olds, news) => loadRuntime().preloadTarballRuntime.update!(id, olds, news),
  delete: (id, props) => loadRuntime().preloadTarballRuntime.delete!(id, props),
};
