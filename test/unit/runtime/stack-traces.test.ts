import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { withoutPropertyStackTraces } from "../../../core/runtime/stack-traces";

describe("withoutPropertyStackTraces", function () {
  it("captures no frames inside and restores the limit after, also when declare throws", function () {
    const before = Error.stackTraceLimit;
    const inside = withoutPropertyStackTraces(() => new Error("probe").stack ?? "");
    assert.equal(inside.split("\n").length, 1, inside);
    assert.equal(Error.stackTraceLimit, before);
    assert.throws(
      () =>
        withoutPropertyStackTraces(() => {
          throw new Error("bad input");
        }),
      /bad input/,
    );
    assert.equal(Error.stackTraceLimit, before);
  });

  it("leaves the resource's source position to the SDK, which takes it with its own limit", function () {
    // The position the SDK records for a resource: the first frame past the SDK's classes.
    const frames = withoutPropertyStackTraces(() => pulumi.Resource["callsites"]());
    assert.ok(
      frames.some((frame: { file?: string }) => frame.file?.endsWith("stack-traces.test.ts")),
      JSON.stringify(frames),
    );
  });
});
