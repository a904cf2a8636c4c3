import type * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";

/**
 * The dynamic providers the engine stores with every mirrored image. Pulumi serialises a
 * provider with everything it references into each resource's state, so these are kept tiny:
 * they load the implementation (provider-runtime.ts) from this project when called. That keeps
 * state small (a few hundred bytes per image instead of the whole runtime), and the runtime runs
 * exactly as the tests run it. The dynamic provider host has no TypeScript loader of its own,
 * hence ts-node (which Pulumi TypeScript projects carry anyway).
 */

// Resolved when the program runs; captured by value into the serialised providers.
const runtimeModule = path.join(__dirname, "provider-runtime");
const tsNodeModule = require.resolve("ts-node");

type Runtime = typeof import("./provider-runtime");

function loadRuntime(): Runtime {
  if (!require.extensions[".ts"]) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(tsNodeModule).register({
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
