import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { run } from "./exec";
import { labDir, projectRoot } from "./paths";

/**
 * Dynamic providers as the Pulumi engine runs them: serialised by the SDK's closure serializer,
 * then loaded from that text in a fresh Node process (no ts-node, no project modules) the way
 * the dynamic provider host loads them (`require-from-string(text).handler()`).
 */
export async function serializeProvider(
  name: string,
  provider: pulumi.dynamic.ResourceProvider,
): Promise<string> {
  const serialized = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
  const dir = path.join(labDir, `run-${process.pid}`, "providers");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.js`);
  writeFileSync(file, serialized.text);
  return file;
}

const hostScript = `
const fs = require("fs");
const requireFromString = require(require.resolve("require-from-string", { paths: [process.env.PULUMI_SDK_DIR] }));
const provider = requireFromString(fs.readFileSync(process.env.PROVIDER_FILE, "utf8")).handler();
const { method, args } = JSON.parse(fs.readFileSync(0, "utf8"));
provider[method](...args).then(
  (result) => process.stdout.write(JSON.stringify({ ok: true, result: result === undefined ? null : result })),
  (error) => process.stdout.write(JSON.stringify({ ok: false, error: String(error && error.message || error) })),
);
`;

/**
 * Calls one provider method in a fresh process; rejects with the provider's error message. Like
 * the engine, the host runs in the program's working directory (`projectDir`/infra, Pulumi.yaml's
 * `main`) with the project's own @pulumi/pulumi.
 */
export async function callProvider<T>(
  file: string,
  method: string,
  args: unknown[],
  projectDir = projectRoot,
): Promise<T> {
  const result = await run(process.execPath, ["-e", hostScript], {
    input: JSON.stringify({ method, args }),
    env: {
      PROVIDER_FILE: file,
      PULUMI_SDK_DIR: path.join(projectDir, "node_modules", "@pulumi", "pulumi"),
    },
    cwd: path.join(projectDir, "infra"),
  });
  const answer = JSON.parse(result.stdout) as { ok: boolean; result?: T; error?: string };
  if (!answer.ok) throw new Error(answer.error);
  return answer.result as T;
}
