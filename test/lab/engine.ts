import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync } from "node:fs";
import * as path from "node:path";
import Docker from "dockerode";
import { labDir } from "./paths";

/** The Docker engine the lab talks to (the local unix socket, like the provider's default). */
export const docker = new Docker({ socketPath: "/var/run/docker.sock" });

let startedDaemon: ChildProcess | undefined;

async function engineAnswers(): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes sure a Docker engine answers. When none does, starts `dockerd` (installed by
 * scripts/lab-prereqs.sh) and remembers it, so teardown stops only what the lab started.
 */
export async function ensureDockerEngine(): Promise<void> {
  if (await engineAnswers()) return;
  mkdirSync(labDir, { recursive: true });
  const log = openSync(path.join(labDir, "dockerd.log"), "a");
  startedDaemon = spawn("dockerd", [], { stdio: ["ignore", log, log], detached: true });
  startedDaemon.unref();
  for (let attempt = 0; attempt < 120; attempt++) {
    if (await engineAnswers()) return;
    if (startedDaemon.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(
    `the Docker engine did not start; see ${path.join(labDir, "dockerd.log")} (is docker.io installed? run scripts/lab-prereqs.sh)`,
  );
}

/** Stops dockerd if (and only if) this lab started it. */
export async function stopDockerEngineIfStarted(): Promise<void> {
  const daemon = startedDaemon;
  if (!daemon || daemon.exitCode !== null) return;
  startedDaemon = undefined;
  const exited = new Promise<void>((resolve) => daemon.once("exit", () => resolve()));
  daemon.kill("SIGTERM");
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20000))]);
}

/** Whether the engine has an image by that name (the lab's image caches). */
export async function imageExists(name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}
