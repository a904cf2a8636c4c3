import { spawn } from "node:child_process";

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs kubectl with arguments built by core/conformance/kubectl.ts: no shell, output collected.
 * A kubectl that cannot be started is an error that says so.
 */
export function runKubectl(binary: string, args: readonly string[]): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (error) =>
      reject(
        new Error(
          `cannot run ${binary} (kubectl): ${error.message}; install kubectl or set the kubectl arg`,
        ),
      ),
    );
    child.on("close", (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      }),
    );
  });
}

/** The last meaningful line of kubectl's stderr, for error messages. */
export function kubectlError(result: KubectlResult): string {
  const lines = result.stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.includes("memcache.go"));
  return lines[lines.length - 1] ?? `exit ${result.code}`;
}
