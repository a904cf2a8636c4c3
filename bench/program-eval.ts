/**
 * Program evaluation benchmark (not a test): the dev stack evaluated under Pulumi mocks from
 * config to resolved outputs, against the SDK's own cost for the same number of plain resources
 * (CustomResources with the same inputs, registered and resolved in the same way), each in a
 * fresh process of the same run:
 *   - the full 1.31 catalog plus N extra images (default 500),
 *   - 100 and 1,000 images (catalog off): the cost per image and how it grows.
 * Each measured three times, the fastest kept (CPU time, which a shared machine disturbs less
 * than wall time). Printed as times and ratios. Run: npm run bench:program [-- N]
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";

interface Measurement {
  /** Wall-clock seconds. */
  seconds: number;
  /** CPU seconds of the process (user + system): steady on a machine shared with other work. */
  cpuSeconds: number;
  resources: number;
  images: number;
}

function setMocks(counter: { resources: number }) {
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        counter.resources++;
        const digest = `sha256:${createHash("sha256")
          .update(String(args.inputs.source ?? args.name))
          .digest("hex")}`;
        return {
          id: `${args.name}-id`,
          state: { ...args.inputs, digest, name: args.inputs.name },
        };
      },
      call: (args) => args.inputs,
    },
    "airgap-conformance",
    "bench",
    false,
  );
}

const extraImage = (index: number) =>
  `registry.example.com/team-${index % 7}/app-${index}:1.${index}`;

/** Our program: config -> resolved image mapping. */
async function measureProgram(extraCount: number, includeCatalog: boolean): Promise<Measurement> {
  const counter = { resources: 0 };
  setMocks(counter);
  const { readStackFile } = await import("../infra/stack-file");
  const { loadStackConfig } = await import("../infra/config");
  const { defineProgram } = await import("../infra/program");
  const { config } = readStackFile(path.resolve(__dirname, "..", "Pulumi.dev.yaml"));
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
    "airgap-conformance:imagesIncludeCatalog": String(includeCatalog),
    "airgap-conformance:imagesExtra": JSON.stringify(
      Array.from({ length: extraCount }, (_, index) => extraImage(index)),
    ),
  });
  const started = process.hrtime.bigint();
  const cpuStarted = process.cpuUsage();
  const outputs = defineProgram(loadStackConfig(), "airgap-conformance");
  const mapping = await new Promise<Record<string, string>>((resolve) =>
    outputs.imageMapping!.apply(resolve),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    seconds,
    cpuSeconds,
    resources: counter.resources,
    images: Object.keys(mapping).length,
  };
}

class PlainResource extends pulumi.CustomResource {
  declare public readonly digest: pulumi.Output<string>;
  constructor(name: string, inputs: pulumi.Inputs) {
    super("bench:index:Plain", name, { ...inputs, digest: undefined });
  }
}

/** The SDK alone: as many plain resources, with an image's inputs, resolved the same way. */
async function measureSdk(count: number): Promise<Measurement> {
  const counter = { resources: 0 };
  setMocks(counter);
  const started = process.hrtime.bigint();
  const cpuStarted = process.cpuUsage();
  const resources = Array.from(
    { length: count },
    (_, index) =>
      new PlainResource(`plain-${index}`, {
        source: extraImage(index),
        request: { from: { repository: `team/app-${index}` }, to: { reference: `1.${index}` } },
        mirrorReference: `mirror.lab:5000/team/app-${index}:1.${index}`,
        credentials: pulumi.secret({}),
      }),
  );
  const digests = await new Promise<string[]>((resolve) =>
    pulumi.all(resources.map((resource) => resource.digest)).apply(resolve),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return { seconds, cpuSeconds, resources: counter.resources, images: digests.length };
}

/** Runs one measurement in a fresh process (the SDK's runtime state is per process). */
function child(args: string[]): Measurement {
  const result = spawnSync(
    process.execPath,
    ["-r", "ts-node/register/transpile-only", __filename, "--child", ...args],
    { cwd: path.resolve(__dirname, ".."), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  // The measurement is the last JSON line; the program's own log lines may follow it.
  const line =
    result.stdout
      .trim()
      .split("\n")
      .reverse()
      .find((candidate) => candidate.startsWith("{")) ?? "";
  if (result.status !== 0 || !line.startsWith("{")) {
    throw new Error(`measurement ${args.join(" ")} failed:\n${result.stderr}${result.stdout}`);
  }
  return JSON.parse(line) as Measurement;
}

const repetitions = 3;

/** The fastest of a few runs, ours and the SDK's alternating: the machine is shared. */
function pair(ours: string[]): [Measurement, Measurement] {
  const best = (runs: Measurement[]): Measurement => ({
    ...runs[0],
    cpuSeconds: Math.min(...runs.map((run) => run.cpuSeconds)),
    seconds: Math.min(...runs.map((run) => run.seconds)),
  });
  const oursRuns: Measurement[] = [];
  const sdkRuns: Measurement[] = [];
  for (let run = 0; run < repetitions; run++) {
    oursRuns.push(child(ours));
    sdkRuns.push(child(["sdk", String(oursRuns[run].resources)]));
  }
  return [best(oursRuns), best(sdkRuns)];
}

function report(label: string, ours: Measurement, sdk: Measurement) {
  console.log(
    `  ${label.padEnd(28)} ours ${ours.cpuSeconds.toFixed(2)} s CPU, ${ours.seconds.toFixed(2)} s wall (${ours.images} images, ${ours.resources} resources)   SDK ${sdk.cpuSeconds.toFixed(2)} s CPU, ${sdk.seconds.toFixed(2)} s wall (${sdk.resources} plain resources)`,
  );
}

async function main() {
  if (process.argv[2] === "--child") {
    const [kind, count, catalog] = process.argv.slice(3);
    const measured =
      kind === "ours"
        ? await measureProgram(Number(count), catalog === "catalog")
        : await measureSdk(Number(count));
    console.log(JSON.stringify(measured));
    return;
  }
  const extraCount = Number(process.argv[2] ?? 500);
  console.log("program evaluation: config -> resolved image mapping, under mocks");
  console.log(`  best of ${repetitions} runs each, ours and the SDK alternating`);
  const [full, fullSdk] = pair(["ours", String(extraCount), "catalog"]);
  report(`catalog + ${extraCount} extra images`, full, fullSdk);
  const [small, smallSdk] = pair(["ours", "100", "none"]);
  report("100 images", small, smallSdk);
  const [large, largeSdk] = pair(["ours", "1000", "none"]);
  report("1,000 images", large, largeSdk);

  // Both slopes over the same 900 more images (the SDK's with as many more resources).
  const imagesAdded = large.images - small.images;
  const oursSlope = ((large.cpuSeconds - small.cpuSeconds) / imagesAdded) * 1000;
  const sdkSlope = ((largeSdk.cpuSeconds - smallSdk.cpuSeconds) / imagesAdded) * 1000;
  console.log(
    `  slope 100 -> 1,000 images    ours ${oursSlope.toFixed(2)} ms CPU/image   SDK ${sdkSlope.toFixed(2)} ms CPU/image`,
  );
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  console.log("ratios, CPU time (wall time in brackets; goal):");
  console.log(
    `  ours / SDK, catalog + ${extraCount}    ${ratio(full.cpuSeconds, fullSdk.cpuSeconds)}  [${ratio(full.seconds, fullSdk.seconds)}]  (<= 1.20)`,
  );
  console.log(
    `  ours / SDK, 100 images       ${ratio(small.cpuSeconds, smallSdk.cpuSeconds)}  [${ratio(small.seconds, smallSdk.seconds)}]  (<= 1.20)`,
  );
  console.log(
    `  ours / SDK, 1,000 images     ${ratio(large.cpuSeconds, largeSdk.cpuSeconds)}  [${ratio(large.seconds, largeSdk.seconds)}]  (<= 1.20)`,
  );
  console.log(`  slope ours / slope SDK       ${ratio(oursSlope, sdkSlope)}  (<= 1.20)`);
  // Linear: 10x the images costs 10x the time (1.00 = exactly linear; under 1, fixed costs).
  const growth = (a: Measurement, b: Measurement) =>
    ratio(b.cpuSeconds / b.resources, a.cpuSeconds / a.resources);
  console.log(
    `  per-image cost at 1,000 / at 100   ours ${growth(small, large)}  SDK ${growth(smallSdk, largeSdk)}  (linear: about 1 or less)`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
