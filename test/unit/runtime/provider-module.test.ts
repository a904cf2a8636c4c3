import assert from "node:assert/strict";
import * as path from "node:path";
import { archiveLockProviderModule } from "../../../components/mirror/provider";
import { preloadTarballProviderModule } from "../../../components/nodes/preload-provider";
import { htpasswdEntryProviderModule } from "../../../components/registry/htpasswd-entry";
import { dynamicProviderModule } from "../../../core/runtime/provider-module";

// What the engine's dynamic provider host does with a stored `__provider`.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString = require(
  require.resolve("require-from-string", {
    paths: [path.dirname(require.resolve("@pulumi/pulumi"))],
  }),
) as (code: string) => { handler: () => Record<string, (...args: unknown[]) => unknown> };

const projectRoot = path.resolve(__dirname, "..", "..", "..");

describe("dynamic provider modules", function () {
  it("forward exactly the given methods to the runtime found from the working directory", async function () {
    const provider = requireFromString(htpasswdEntryProviderModule).handler();
    assert.deepEqual(Object.keys(provider), ["create", "diff", "update"]);
    const created = (await provider.create({ username: "lab", password: "pw" })) as {
      outs: { line: string };
    };
    assert.match(created.outs.line, /^lab:\$2[aby]\$/);
    const unchanged = (await provider.diff("lab", created.outs, {
      username: "lab",
      password: "pw",
    })) as { changes: boolean };
    assert.equal(unchanged.changes, false);
  });

  it("hold no path into the project and are the same text every time", function () {
    for (const text of [
      archiveLockProviderModule,
      preloadTarballProviderModule,
      htpasswdEntryProviderModule,
    ]) {
      assert.ok(!text.includes(projectRoot), "no absolute path");
    }
    assert.equal(
      dynamicProviderModule("components/mirror/provider-runtime", "archiveLockRuntime", [
        "create",
        "diff",
        "update",
        "delete",
      ]),
      archiveLockProviderModule,
    );
  });

  it("name the runtime and the directory when the project is not found", function () {
    const provider = requireFromString(
      dynamicProviderModule("components/no-such-runtime", "someRuntime", ["create"]),
    ).handler();
    assert.throws(
      () => provider.create({}),
      /the provider runtime components\/no-such-runtime is not in .* or a directory above it: run pulumi from the airgap-conformance project/,
    );
  });
});
