import { mkdirSync, rmSync } from "node:fs";
import * as path from "node:path";
import { ensureDockerEngine, stopDockerEngineIfStarted } from "./engine";
import { run } from "./exec";
import { labDir } from "./paths";
import { ensureLabRegistryImage } from "./registry-image";
import { removeLabLeftovers } from "./run-spec";

/** Tools the integration tests drive for real; scripts/lab-prereqs.sh installs them. */
const requiredTools = ["skopeo", "openssl", "tar"];

/**
 * Mocha global fixtures: the lab is started and stopped by the test run itself. A missing tool
 * fails the run with its name: no test skips itself.
 */
export async function mochaGlobalSetup(): Promise<void> {
  for (const tool of requiredTools) {
    const found = await run("sh", ["-c", `command -v ${tool}`], { allowFailure: true });
    if (found.code !== 0) {
      throw new Error(`the lab needs '${tool}' on PATH; run scripts/lab-prereqs.sh (as root)`);
    }
  }
  // A fresh checkout has no scratch directory yet; tests create theirs inside it.
  mkdirSync(labDir, { recursive: true });
  await ensureDockerEngine();
  await removeLabLeftovers();
  await ensureLabRegistryImage();
}

export async function mochaGlobalTeardown(): Promise<void> {
  await removeLabLeftovers();
  rmSync(path.join(labDir, `run-${process.pid}`), { recursive: true, force: true });
  await stopDockerEngineIfStarted();
}
