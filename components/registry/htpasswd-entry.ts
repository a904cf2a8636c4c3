import * as pulumi from "@pulumi/pulumi";
import { htpasswdLine, htpasswdMatches } from "./htpasswd";

/** Inputs (and, with `line`, outputs) of an {@link HtpasswdEntry}. */
export interface HtpasswdEntryInputs {
  username: string;
  password: string;
}

export interface HtpasswdEntryOutputs extends HtpasswdEntryInputs {
  /** `user:<bcrypt hash>\n`, salted at random once and kept in state. */
  line: string;
}

/**
 * Keeps one htpasswd line in state: the salt is random, drawn once, and the line changes only
 * when the user or password does (checked against the stored hash), so the registry container
 * (whose uploaded file holds the line) is not replaced on every `up`. Self-contained: the engine
 * stores this provider with the resource and runs it from the project's node_modules (bcryptjs).
 */
export const htpasswdEntryProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: HtpasswdEntryInputs) {
    const outs: HtpasswdEntryOutputs = {
      ...inputs,
      line: htpasswdLine(inputs.username, inputs.password),
    };
    return { id: inputs.username, outs };
  },
  async diff(_id: string, olds: HtpasswdEntryOutputs, news: HtpasswdEntryInputs) {
    return { changes: !htpasswdMatches(olds.line ?? "", news.username, news.password) };
  },
  async update(_id: string, _olds: HtpasswdEntryOutputs, news: HtpasswdEntryInputs) {
    const outs: HtpasswdEntryOutputs = {
      ...news,
      line: htpasswdLine(news.username, news.password),
    };
    return { outs };
  },
};

/** One user's htpasswd line with a random salt kept stable across `up`s. */
export class HtpasswdEntry extends pulumi.dynamic.Resource {
  declare public readonly line: pulumi.Output<string>;

  constructor(
    name: string,
    args: { username: pulumi.Input<string>; password: pulumi.Input<string> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      htpasswdEntryProvider,
      name,
      { username: args.username, password: pulumi.secret(args.password), line: undefined },
      { ...opts, additionalSecretOutputs: ["password", "line"] },
      "registry",
      "HtpasswdEntry",
    );
  }
}
