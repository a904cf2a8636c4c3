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
  /** This stack's identity (the stack label its registry container carries). */
  stack?: string;
  probe: PortProbe;
  publishers: PortPublisher[];
}): string | undefined {
  // Our own container, also under its previous name (a rename replaces it, deleting it first).
  const ours = (publisher: PortPublisher) =>
    publisher.name === args.containerName ||
    (args.stack !== undefined && publisher.stack === args.stack);
  const others = args.publishers.filter((publisher) => !ours(publisher));
  if (others.length > 0) {
    return `port ${args.hostPort} is already published by container ${others.map((publisher) => publisher.name).join(", ")}; choose another hostPort or remove that container`;
  }
  if (args.publishers.length > 0) return undefined;
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

/** Container label naming the stack (`<project>/<stack>`) a registry container belongs to. */
export const stackLabel = "airgap-conformance.stack";

/** A running container publishing the port, with the stack label it carries ("" when none). */
export interface PortPublisher {
  name: string;
  stack?: string;
}

/** Running containers that publish `hostPort` on the local engine. */
export function containersPublishing(hostPort: number): Promise<PortPublisher[]> {
  return new Promise((resolve, reject) => {
    execFile(
      "docker",
      [
        "ps",
        "--filter",
        `publish=${hostPort}`,
        "--format",
        `{{.Names}}\t{{.Label "${stackLabel}"}}`,
      ],
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
            .filter((line) => line.trim())
            .map((line) => {
              const [name, stack] = line.split("\t");
              return stack ? { name: name.trim(), stack: stack.trim() } : { name: name.trim() };
            }),
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
  stack?: string;
}): Promise<void> {
  const publishers = await containersPublishing(args.hostPort);
  const probe =
    publishers.length > 0 ? "in-use" : await probeHostPort(args.bindAddress, args.hostPort);
  const conflict = portConflict({ ...args, probe, publishers });
  if (conflict) throw new Error(`RegistryContainer: hostPort: ${conflict}`);
}
