import * as pulumi from "@pulumi/pulumi";
import { dynamicProviderModule } from "../../core/runtime/provider-module";
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
 * (whose uploaded file holds the line) is not replaced on every `up`. The engine runs it from
 * this module in the project (see core/runtime/provider-module.ts).
 */
export const htpasswdEntryRuntime: pulumi.dynamic.ResourceProvider = {
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

/** The `__provider` of an {@link HtpasswdEntry}. */
export const htpasswdEntryProviderModule = dynamicProviderModule(
  "components/registry/htpasswd-entry",
  "htpasswdEntryRuntime",
  ["create", "diff", "update"],
);

/** One user's htpasswd line with a random salt kept stable across `up`s. */
export class HtpasswdEntry extends pulumi.CustomResource {
  declare public readonly line: pulumi.Output<string>;

  constructor(
    name: string,
    args: { username: pulumi.Input<string>; password: pulumi.Input<string> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      "pulumi-nodejs:dynamic/registry:HtpasswdEntry",
      name,
      {
        username: args.username,
        password: pulumi.secret(args.password),
        line: undefined,
        __provider: htpasswdEntryProviderModule,
      },
      { ...opts, additionalSecretOutputs: ["password", "line"] },
    );
  }
}
