import { dynamicProviderModule } from "../../core/runtime/provider-module";

/** The `__provider` of the preload tarball (see core/runtime/provider-module.ts). */
export const preloadTarballProviderModule = dynamicProviderModule(
  "components/nodes/preload-runtime",
  "preloadTarballRuntime",
  ["create", "diff", "update", "delete"],
);
