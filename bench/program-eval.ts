/**
 * Program evaluation benchmark (not a test): the dev stack with the full 1.31 catalog plus N
 * extra images (default 500), evaluated under Pulumi mocks from config to resolved outputs.
 * Target: <= 3 s. Run: npm run bench:program [-- N]
 */
import { createHash } from "node:crypto";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";

const extraCount = Number(process.argv[2] ?? 500);
let resources = 0;

pulumi.runtime.setMocks(
  {
    newResource(args) {
      resources++;
      const digest = `sha256:${createHash("sha256")
        .update(String(args.inputs.source ?? args.name))
        .digest("hex")}`;
      return { id: `${args.name}-id`, state: { ...args.inputs, digest, name: args.inputs.name } };
    },
    call: (args) => args.inputs,
  },
  "airgap-conformance",
  "bench",
  false,
);

async function main() {
  const { readStackFile } = await import("../infra/stack-file");
  const { loadStackConfig } = await import("../infra/config");
  const { defineProgram } = await import("../infra/program");
  const { config } = readStackFile(path.resolve(__dirname, "..", "Pulumi.dev.yaml"));
  const extra = Array.from(
    { length: extraCount },
    (_, index) => `registry.example.com/team-${index % 7}/app-${index}:1.${index}`,
  );
  pulumi.runtime.setAllConfig({
    ...config,
    "airgap-conformance:registryCheckHostPort": "false",
    // The run checks its kubeconfig at preview; a fixture stands in for the kind cluster's.
    "airgap-conformance:kubeconfig": path.resolve(
      __dirname,
      "..",
      "test",
      "fixtures",
      "kubeconfig-kind-airgap.yaml",
    ),
    "airgap-conformance:imagesExtra": JSON.stringify(extra),
  });
  const started = process.hrtime.bigint();
  const outputs = defineProgram(loadStackConfig(), "airgap-conformance");
  const mapping = await new Promise<Record<string, string>>((resolve) =>
    outputs.imageMapping!.apply(resolve),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `program evaluation: ${Object.keys(mapping).length} images, ${resources} resources registered`,
  );
  console.log(`  evaluate config -> resolved image mapping   ${seconds.toFixed(2)} s`);
  console.log(
    `  ratio to the 3 s target                     ${(seconds / 3).toFixed(2)}  (<= 1.00)`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
