import * as pulumi from "@pulumi/pulumi";
import { ConformanceArgsError } from "../core/conformance";
import { ImageCopyPlanError } from "../components/mirror/plan";
import { NodeRegistryArgsError } from "../components/nodes";
import { RegistryArgsError } from "../components/registry";
import { ConfigError } from "./config";

/** Errors about the stack's own input: the message says everything, a stack trace adds noise. */
const inputErrors = [
  ConfigError,
  RegistryArgsError,
  NodeRegistryArgsError,
  ConformanceArgsError,
  ImageCopyPlanError,
];

/**
 * A stack input error as Pulumi's RunError, which the Node.js host prints as its message alone
 * (one line naming the key, the value and what is allowed) instead of "unhandled exception" and
 * a stack trace. Anything else is a bug and keeps its trace.
 */
export function asUserError(error: unknown): unknown {
  if (inputErrors.some((type) => error instanceof type)) {
    return new pulumi.RunError((error as Error).message);
  }
  return error;
}
