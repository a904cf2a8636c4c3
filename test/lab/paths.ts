import * as path from "node:path";

/** Project root (two levels above test/lab). */
export const projectRoot = path.resolve(__dirname, "..", "..");

/** Scratch space of the lab: logs, caches, generated certificates. Ignored by git. */
export const labDir = path.join(projectRoot, ".lab");
