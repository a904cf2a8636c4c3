/**
 * End to end, for machines that have the Pulumi CLI, Docker and kind (not part of CI: the test
 * machines have neither the CLI nor a cluster). Creates a kind cluster `airgap` whose containerd
 * reads /etc/containerd/certs.d, runs `pulumi up` on the dev stack through the Automation API
 * with a local file backend, checks the outputs, runs `pulumi destroy`, and checks that the
 * registry container and its volume are gone.
 *
 *   npm run e2e:kind            (DRY_RUN focus: set E2E_FOCUS to narrow the suite)
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const projectRoot = path.resolve(__dirname, "..");

/** Tools the script needs, and how to tell they work. */
export const requiredTools: { name: string; probe: string[]; install: string }[] = [
  {
    name: "pulumi",
    probe: ["version"],
    install: "the Pulumi CLI: https://www.pulumi.com/docs/iac/download-install/",
  },
  {
    name: "docker",
    probe: ["info", "--format", "{{.ServerVersion}}"],
    install: "a running Docker engine",
  },
  {
    name: "kind",
    probe: ["version"],
    install: "kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
  },
  { name: "kubectl", probe: ["version", "--client"], install: "kubectl" },
];

/** Names of required tools that do not run here. */
export function missingTools(
  runs: (command: string, args: string[]) => boolean = canRun,
): string[] {
  return requiredTools.filter((tool) => !runs(tool.name, tool.probe)).map((tool) => tool.name);
}

function canRun(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: "ignore", timeout: 20000 });
  return result.error === undefined && result.status === 0;
}

function sh(command: string, args: string[], input?: string): string {
  const result = spawnSync(command, args, {
    input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "inherit"],
  });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(" ")} failed (${result.status})`);
  return result.stdout;
}

const kindConfig = `kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
`;

async function main(): Promise<number> {
  const missing = missingTools();
  if (missing.length > 0) {
    for (const name of missing) {
      console.error(
        `e2e: needs ${requiredTools.find((tool) => tool.name === name)!.install} (${name} not found or not working)`,
      );
    }
    return 1;
  }
  const { LocalWorkspace } = await import("@pulumi/pulumi/automation");
  const scratch = mkdtempSync(path.join(os.tmpdir(), "airgap-e2e-"));
  if (!sh("kind", ["get", "clusters"]).split("\n").includes("airgap")) {
    writeFileSync(path.join(scratch, "kind.yaml"), kindConfig);
    sh("kind", [
      "create",
      "cluster",
      "--name",
      "airgap",
      "--config",
      path.join(scratch, "kind.yaml"),
    ]);
  }
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: "dev", workDir: projectRoot },
    {
      envVars: {
        PULUMI_BACKEND_URL: `file://${scratch}`,
        PULUMI_CONFIG_PASSPHRASE: "e2e",
        PULUMI_SKIP_UPDATE_CHECK: "true",
      },
    },
  );
  if (process.env.E2E_FOCUS)
    await stack.setConfig("conformanceFocus", { value: process.env.E2E_FOCUS });
  const up = await stack.up({ onOutput: (text) => process.stdout.write(text) });
  const outputs = up.outputs;
  const problems: string[] = [];
  if (outputs.registryEndpoint?.value !== "kind-registry:5000")
    problems.push("registryEndpoint is not kind-registry:5000");
  if (!(Number(outputs.imageCount?.value) > 0)) problems.push("no images were mirrored");
  if (!["passed", "dry-run"].includes(String(outputs.conformanceVerdict?.value))) {
    problems.push(`conformance verdict ${String(outputs.conformanceVerdict?.value)}`);
  }
  await stack.destroy({ onOutput: (text) => process.stdout.write(text) });
  const leftovers = sh("docker", [
    "ps",
    "-a",
    "--filter",
    "name=^kind-registry$",
    "--format",
    "{{.Names}}",
  ]).trim();
  if (leftovers) problems.push(`container left behind: ${leftovers}`);
  const volumes = sh("docker", [
    "volume",
    "ls",
    "--filter",
    "name=^kind-registry-data$",
    "--format",
    "{{.Name}}",
  ]).trim();
  if (volumes) problems.push(`volume left behind: ${volumes}`);
  for (const problem of problems) console.error(`e2e: ${problem}`);
  console.log(
    problems.length === 0 ? "e2e: up, outputs and destroy all as expected" : "e2e: FAILED",
  );
  return problems.length === 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => (process.exitCode = code),
    (error) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
