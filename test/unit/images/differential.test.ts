import assert from "node:assert/strict";
import {
  missingBlobsMessage,
  planDifferentialPush,
  presenceKey,
  type CarriedImageNeeds,
} from "../../../core/images/differential";

const digest = (name: string) => `sha256:${name.padEnd(64, "0")}`;
const base = digest("ba5e");
const pauseLayer = digest("9a05e");
const newLayer = digest("7e3");
const config = digest("c0f");

describe("applying a differential archive onto a mirror: the blob plan", function () {
  // agnhost is new: its own layer and config are carried; the base layer stays behind, held by pause.
  const agnhost: CarriedImageNeeds = {
    source: "registry.k8s.io/e2e-test-images/agnhost:2.53",
    repository: "e2e-test-images/agnhost",
    blobs: [config, base, newLayer],
  };
  const carried = new Set([config, newLayer]);
  const leftOut = new Map([[base, ["pause", "e2e-test-images/busybox"]]]);

  it("pushes carried blobs and mounts a left-out blob from the first holder that has it", function () {
    const plan = planDifferentialPush({
      images: [agnhost],
      carried,
      leftOut,
      present: new Set([presenceKey("e2e-test-images/busybox", base)]),
    });
    assert.deepEqual(plan.missing, []);
    assert.deepEqual(plan.images[0].steps, [
      { digest: config, action: "upload" },
      { digest: base, action: "mount", from: "e2e-test-images/busybox" },
      { digest: newLayer, action: "upload" },
    ]);
  });

  it("leaves a left-out blob the image's own repository has (a changed tag of a kept repository)", function () {
    const plan = planDifferentialPush({
      images: [{ ...agnhost, repository: "pause" }],
      carried,
      leftOut,
      present: new Set([presenceKey("pause", base), presenceKey("e2e-test-images/busybox", base)]),
    });
    assert.deepEqual(plan.images[0].steps[1], { digest: base, action: "present" });
  });

  it("reports a left-out blob found nowhere, with the image and where it was looked for", function () {
    const plan = planDifferentialPush({
      images: [agnhost],
      carried,
      leftOut,
      present: new Set([presenceKey("pause", pauseLayer)]),
    });
    assert.deepEqual(plan.missing, [
      {
        image: agnhost.source,
        digest: base,
        lookedIn: ["e2e-test-images/agnhost", "pause", "e2e-test-images/busybox"],
        unknown: false,
      },
    ]);
    assert.match(
      missingBlobsMessage(plan.missing, "mirror.lab:5000"),
      new RegExp(
        `^mirror\\.lab:5000 lacks blob ${base} that registry\\.k8s\\.io/e2e-test-images/agnhost:2\\.53 needs .*made against another lock file or another mirror; nothing was written$`,
      ),
    );
  });

  it("calls a blob neither carried nor listed as left out an incomplete differential", function () {
    const plan = planDifferentialPush({
      images: [{ ...agnhost, blobs: [...agnhost.blobs, pauseLayer] }],
      carried,
      leftOut,
      present: new Set([presenceKey("pause", base), presenceKey("pause", pauseLayer)]),
    });
    assert.equal(plan.missing.length, 1);
    assert.equal(plan.missing[0].unknown, true);
    assert.match(
      missingBlobsMessage(plan.missing, "mirror.lab:5000"),
      /needs blob sha256:9a05e0+, which the differential archive neither carries nor lists as left out; it is incomplete/,
    );
  });

  it("plans each carried image on its own: the same left-out blob, present in one repository, mounted into another", function () {
    const busybox: CarriedImageNeeds = {
      source: "registry.k8s.io/e2e-test-images/busybox:1.37",
      repository: "e2e-test-images/busybox",
      blobs: [base, base],
    };
    const plan = planDifferentialPush({
      images: [agnhost, busybox],
      carried,
      leftOut,
      present: new Set([presenceKey("e2e-test-images/busybox", base)]),
    });
    assert.deepEqual(
      plan.images.map((image) => image.steps.filter((step) => step.digest === base)),
      [
        [{ digest: base, action: "mount", from: "e2e-test-images/busybox" }],
        [{ digest: base, action: "present" }],
      ],
    );
  });
});
