import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { run } from "./exec";
import { labDir, projectRoot } from "./paths";

/**
 * Dynamic providers as the Pulumi engine runs them: the module text a resource declares as its
 * `__provider`, written to a file and loaded in a fresh Node process (no ts-node, no project
 * modules) the way the dynamic provider host loads it (`require-from-string(text).handler()`).
 */
export function writeProviderModule(name: string, text: string): string {
  const dir = path.join(labDir, `run-${process.pid}`, "providers");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.js`);
  writeFileSync(file, text);
  return file;
}

/** Marks the answer line; whatever else the provider prints (its progress) is returned apart. */
const resultMarker = "@@provider-result ";

const hostScript = `
const fs = require("fs");
const requireFromString = require(require.resolve("require-from-string", { paths: [process.env.PULUMI_SDK_DIR] }));
const provider = requireFromString(fs.readFileSync(process.env.PROVIDER_FILE, "utf8")).handler();
const { method, args } = JSON.parse(fs.readFileSync(0, "utf8"));
const answer = (value) => process.stdout.write("\\n" + ${JSON.stringify(resultMarker)} + JSON.stringify(value) + "\\n");
// The engine's dynamic provider host treats a provider without delete as deleting nothing.
(provider[method] || method !== "delete" ? provider[method](...args) : Promise.resolve()).then(
  (result) => answer({ ok: true, result: result === undefined ? null : result }),
  (error) => answer({ ok: false, error: String(error && error.message || error) }),
);
`;

/**
 * Calls one provider method in a fresh process; rejects with the provider's error message. Like
 * the engine, the host runs in the program's working directory (`projectDir`/infra, Pulumi.yaml's
 * `main`) with the project's own @pulumi/pulumi. Lines the provider printed besides its answer
 * (what the engine shows in the update) are appended to `output` when given. `programDir`
 * overrides the working directory (a program evaluated elsewhere inside the project).
 */
export async function callProvider<T>(
  file: string,
  method: string,
  args: unknown[],
  projectDir = projectRoot,
  output?: string[],
  programDir = path.join(projectDir, "infra"),
): Promise<T> {
  const result = await run(process.execPath, ["-e", hostScript], {
    input: JSON.stringify({ method, args }),
    env: {
      PROVIDER_FILE: file,
      PULUMI_SDK_DIR: path.join(projectDir, "node_modules", "@pulumi", "pulumi"),
    },
    cwd: programDir,
  });
  const lines = result.stdout.split("\n");
  const answerLine = [...lines].reverse().find((line) => line.startsWith(resultMarker));
  if (answerLine === undefined) throw new Error(`the provider gave no answer: ${result.stdout}`);
  output?.push(...lines.filter((line) => line !== "" && !line.startsWith(resultMarker)));
  const answer = JSON.parse(answerLine.slice(resultMarker.length)) as {
    ok: boolean;
    result?: T;
    error?: string;
  };
  if (!answer.ok) throw new Error(answer.error);
  return answer.result as T;
}
