import { dynamicProviderModule } from "../../core/runtime/provider-module";

/** The runtime module's path below the project root (where Pulumi.yaml is). */
const runtimeInProject = "components/mirror/provider-runtime";

/** The `__provider` of every mirrored image (see core/runtime/provider-module.ts). */
export const mirroredImageProviderModule = dynamicProviderModule(
  runtimeInProject,
  "mirroredImageRuntime",
  ["check", "create", "diff", "update", "read", "delete"],
);

/** The `__provider` of an archive's lock file. */
export const archiveLockProviderModule = dynamicProviderModule(
  runtimeInProject,
  "archiveLockRuntime",
  ["create", "diff", "update", "delete"],
);
