import { readFileSync } from "node:fs";
import * as path from "node:path";
import type { ConformanceRunInput } from "../../../core/conformance";

export const fixtures = path.resolve(__dirname, "..", "..", "fixtures", "conformance");

export function fixture(name: string): string {
  return readFileSync(path.join(fixtures, name), "utf8");
}

/** A complete, valid run input: the tests change one thing at a time. */
export function baseInput(overrides: Partial<ConformanceRunInput> = {}): ConformanceRunInput {
  return {
    kubernetesVersion: "v1.31.4+k3s1",
    mirror: { endpoint: "10.0.0.5:5000", authenticated: false },
    kubeconfig: "/home/user/.kube/config",
    resultsDirectory: "/var/lib/conformance",
    stack: "lab",
    ...overrides,
  };
}
