import assert from "node:assert/strict";
import { decideWait, podRunState, type PodStatusJson } from "../../../core/conformance";
import { fixture } from "./helpers";

const pod = (name: string) => JSON.parse(fixture(name)) as PodStatusJson;
const timeouts = { startupSeconds: 600, runSeconds: 3600 };

describe("run pod state", function () {
  it("waits while scheduling and starting, saying why", function () {
    assert.deepEqual(podRunState(pod("pod-unschedulable.json")), {
      kind: "scheduling",
      message:
        "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    });
    assert.deepEqual(podRunState(pod("pod-creating.json")), {
      kind: "starting",
      message: "ContainerCreating",
    });
    assert.deepEqual(podRunState(pod("pod-running.json")), { kind: "running" });
  });

  it("fails fast on image pull errors, naming the container and the mirrored image", function () {
    for (const [file, reason] of [
      ["pod-image-pull-backoff.json", "ImagePullBackOff"],
      ["pod-err-image-pull.json", "ErrImagePull"],
    ]) {
      const state = podRunState(pod(file));
      assert.equal(state.kind, "failed");
      if (state.kind !== "failed") return;
      assert.equal(state.reason, reason);
      assert.equal(state.container, "conformance-container");
      assert.equal(state.image, "10.0.0.5:5000/conformance:v1.31.4");
      assert.match(
        state.message,
        new RegExp(
          `conformance-container \\(image 10\\.0\\.0\\.5:5000/conformance:v1\\.31\\.4\\) is in ${reason}`,
        ),
      );
      assert.match(state.message, /in the mirror/);
    }
  });

  it("fails fast on CrashLoopBackOff of the output container", function () {
    const crashing = pod("pod-running.json");
    crashing.status!.containerStatuses![1].state = {
      waiting: { reason: "CrashLoopBackOff", message: "back-off 5m0s restarting failed container" },
    };
    const state = podRunState(crashing);
    assert.equal(state.kind, "failed");
    assert.match(
      (state as { message: string }).message,
      /output-container \(image 10\.0\.0\.5:5000\/e2e-test-images\/busybox:1\.36\.1-1\) is in CrashLoopBackOff: back-off/,
    );
  });

  it("collects when the suite ended and the output container still runs", function () {
    assert.deepEqual(podRunState(pod("pod-finished.json")), {
      kind: "finished",
      exitCode: 0,
      reason: "Completed",
    });
    assert.deepEqual(podRunState(pod("pod-finished-exit-1.json")), {
      kind: "finished",
      exitCode: 1,
      reason: "Error",
    });
  });

  it("reports eviction, deletion, a vanished pod and a dead output container", function () {
    const evicted = podRunState(pod("pod-evicted.json"));
    assert.equal(evicted.kind, "failed");
    assert.match(
      (evicted as { message: string }).message,
      /evicted: The node was low on resource: ephemeral-storage/,
    );
    assert.match(
      (podRunState(pod("pod-deleting.json")) as { message: string }).message,
      /being deleted/,
    );
    assert.deepEqual(podRunState(undefined), { kind: "gone" });
    const outputEnded = podRunState(pod("pod-output-ended.json"));
    assert.match(
      (outputEnded as { message: string }).message,
      /output-container ended \(Error, exit 127\), so the results can no longer be read/,
    );
  });
});

describe("wait decision", function () {
  it("keeps waiting within the startup limit and fails after it with the scheduler's reason", function () {
    const state = podRunState(pod("pod-unschedulable.json"));
    assert.deepEqual(decideWait(state, { elapsedSeconds: 599 }, timeouts), { action: "wait" });
    const late = decideWait(state, { elapsedSeconds: 601 }, timeouts);
    assert.equal(late.action, "fail");
    assert.match(
      (late as { message: string }).message,
      /did not start within 600s \(startupTimeoutMinutes\): 0\/3 nodes/,
    );
  });

  it("measures the run timeout from when the suite started, and keeps what was read", function () {
    const running = podRunState(pod("pod-running.json"));
    assert.deepEqual(
      decideWait(running, { elapsedSeconds: 3000, runningSinceSeconds: 300 }, timeouts),
      { action: "wait" },
    );
    assert.deepEqual(
      decideWait(running, { elapsedSeconds: 3901, runningSinceSeconds: 300 }, timeouts),
      {
        action: "fail",
        message: "the suite did not finish within 3600s (timeoutMinutes); the run pod was deleted",
        readable: true,
        stopPod: true,
      },
    );
  });

  it("collects a finished run with its exit code, fails a vanished pod", function () {
    assert.deepEqual(
      decideWait(podRunState(pod("pod-finished-exit-1.json")), { elapsedSeconds: 1 }, timeouts),
      {
        action: "collect",
        exitCode: 1,
      },
    );
    assert.deepEqual(decideWait({ kind: "gone" }, { elapsedSeconds: 1 }, timeouts), {
      action: "fail",
      message: "the run pod was deleted mid-run (it no longer exists)",
      readable: false,
    });
  });
});
