import { execFile } from "node:child_process";
import { createServer } from "node:net";

/** What a bind attempt on the host port found. */
export type PortProbe = "free" | "in-use" | "address-unavailable";

/**
 * Decides whether the registry may take `hostPort`. The port may already be published by our
 * own container (a second `pulumi up`); anything else holding it is an error that says who.
 * Returns an error message, or undefined when the port is usable.
 */
export function portConflict(args: {
  hostPort: number;
  bindAddress: string;
  containerName: string;
  probe: PortProbe;
  publishers: string[];
}): string | undefined {
  const others = args.publishers.filter((name) => name !== args.containerName);
  if (others.length > 0) {
    return `port ${args.hostPort} is already published by container ${others.join(", ")}; choose another hostPort or remove that container`;
  }
  if (args.publishers.includes(args.containerName)) return undefined;
  if (args.probe === "in-use") {
    return `port ${args.hostPort} on ${args.bindAddress} is taken by a process on this host; choose another hostPort`;
  }
  if (args.probe === "address-unavailable") {
    return `${args.bindAddress} is not an address of this host; use one of its addresses or 0.0.0.0 (bindAddress)`;
  }
  return undefined;
}

/** Tries to bind the port the way Docker's proxy would. */
export function probeHostPort(bindAddress: string, hostPort: number): Promise<PortProbe> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE" || error.code === "EACCES") resolve("in-use");
      else if (error.code === "EADDRNOTAVAIL") resolve("address-unavailable");
      else reject(error);
    });
    server.listen({ host: bindAddress, port: hostPort, exclusive: true }, () => {
      server.close(() => resolve("free"));
    });
  });
}

/** Names of running containers that publish `hostPort` on the local engine. */
export function containersPublishing(hostPort: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      "docker",
      ["ps", "--filter", `publish=${hostPort}`, "--format", "{{.Names}}"],
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(
              `cannot list containers with the docker CLI: ${stderr.trim() || error.message}`,
            ),
          );
          return;
        }
        resolve(
          stdout
            .split("\n")
            .map((line) => line.trim())
            .filter(Boolean),
        );
      },
    );
  });
}

/** Rejects with a message naming hostPort when the port cannot be used on the local engine. */
export async function assertHostPortUsable(args: {
  hostPort: number;
  bindAddress: string;
  containerName: string;
}): Promise<void> {
  const publishers = await containersPublishing(args.hostPort);
  const probe =
    publishers.length > 0 ? "in-use" : await probeHostPort(args.bindAddress, args.hostPort);
  const conflict = portConflict({ ...args, probe, publishers });
  if (conflict) throw new Error(`RegistryContainer: hostPort: ${conflict}`);
}
