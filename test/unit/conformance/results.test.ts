import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ResultsParseError,
  decideVerdict,
  describeProgress,
  describeReport,
  formatReportLine,
  isFailingVerdict,
  parseE2eProgress,
  parseJunit,
  parseReportOutput,
  type RunReport,
} from "../../../core/conformance";
import { fixture } from "./helpers";

describe("e2e.log progress", function () {
  it("counts finished specs, succinct and slow/failed blocks alike, and the failures", function () {
    const progress = parseE2eProgress(fixture("e2e-failed.log"));
    assert.deepEqual(progress, {
      e2eRunId: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
      willRun: 6,
      totalSpecs: 7411,
      done: 6,
      failed: [
        "[sig-network] Services [It] should serve a basic endpoint from pods  [Conformance]",
        "[sig-apps] Deployment [It] deployment should support rollover [Conformance]",
      ],
      finished: true,
    });
    assert.equal(
      describeProgress(progress, 336),
      "conformance: 6/6 specs done, 2 failed after 5m (suite finished)",
    );
  });

  it("reads a log cut mid-spec as unfinished, with what it holds so far", function () {
    const progress = parseE2eProgress(fixture("e2e-truncated.log"));
    assert.equal(progress.finished, false);
    assert.equal(progress.willRun, 6);
    assert.equal(progress.done, 3);
    assert.deepEqual(progress.failed, [
      "[sig-network] Services [It] should serve a basic endpoint from pods  [Conformance]",
    ]);
    assert.equal(describeProgress(progress, 125), "conformance: 3/6 specs done, 1 failed after 2m");
  });

  it("a passing run and an empty suite", function () {
    const passed = parseE2eProgress(fixture("e2e-passed.log"));
    assert.equal(passed.done, 3);
    assert.equal(passed.willRun, 3);
    assert.deepEqual(passed.failed, []);
    assert.equal(passed.finished, true);
    const empty = parseE2eProgress(fixture("e2e-empty.log"));
    assert.equal(empty.willRun, 0);
    assert.equal(empty.done, 0);
    assert.equal(empty.finished, true);
  });

  it("a dry run lists its specs as done", function () {
    const dry = parseE2eProgress(fixture("e2e-dryrun.log"));
    assert.equal(dry.willRun, 4);
    assert.equal(dry.done, 4);
  });

  it("an empty or foreign log is no progress, not an error", function () {
    assert.deepEqual(parseE2eProgress(""), { done: 0, failed: [], finished: false });
    assert.equal(describeProgress(parseE2eProgress(""), 0), "conformance: 0/? specs done after 0m");
  });

  it("never counts more than the full log, whatever prefix of it is read", function () {
    const log = fixture("e2e-failed.log");
    const full = parseE2eProgress(log).done;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: log.length }), (cut) => {
        const progress = parseE2eProgress(log.slice(0, cut));
        assert.ok(progress.done <= full);
        assert.ok(progress.failed.length <= 2);
      }),
      { numRuns: 200 },
    );
  });
});

describe("junit_01.xml", function () {
  it("summarises a run with failures, a panic counted as a failure", function () {
    assert.deepEqual(parseJunit(fixture("junit-failed.xml")), {
      passed: 4,
      failed: 2,
      skipped: 3,
      total: 9,
      durationSeconds: 335.804,
      failedTests: [
        "[sig-network] Services should serve a basic endpoint from pods  [Conformance]",
        "[sig-apps] Deployment deployment should support rollover [Conformance]",
      ],
      dryRun: false,
    });
  });

  it("summarises a passing run, an empty suite and a dry run", function () {
    const passed = parseJunit(fixture("junit-passed.xml"));
    assert.deepEqual([passed.passed, passed.failed, passed.skipped, passed.total], [3, 0, 2, 5]);
    assert.equal(passed.durationSeconds, 21.907);
    const empty = parseJunit(fixture("junit-empty.xml"));
    assert.deepEqual([empty.passed, empty.failed, empty.skipped], [0, 0, 3]);
    const dry = parseJunit(fixture("junit-dryrun.xml"));
    assert.equal(dry.dryRun, true);
    assert.equal(dry.passed, 4);
  });

  it("reports a file that is not XML, cut, empty or not junit, naming the file", function () {
    assert.throws(
      () => parseJunit(fixture("junit-not-xml.xml"), "/r/junit_01.xml"),
      (error: unknown) =>
        error instanceof ResultsParseError && /^\/r\/junit_01\.xml: is not XML/.test(error.message),
    );
    assert.throws(() => parseJunit(fixture("junit-cut.xml")), /junit_01\.xml: is not XML .*cut/);
    assert.throws(() => parseJunit("  \n"), /junit_01\.xml: is empty/);
    assert.throws(() => parseJunit("<html><body>502</body></html>"), /holds no <testsuite>/);
  });
});

describe("verdict and report", function () {
  const failed = parseJunit(fixture("junit-failed.xml"));
  const passed = parseJunit(fixture("junit-passed.xml"));
  const empty = parseJunit(fixture("junit-empty.xml"));
  const dry = parseJunit(fixture("junit-dryrun.xml"));

  it("decides from the junit summary and the suite's exit code", function () {
    assert.equal(decideVerdict(passed, 0, false), "passed");
    assert.equal(decideVerdict(failed, 1, false), "failed");
    // A suite that exits non-zero failed even if junit shows no failure (e.g. a setup node).
    assert.equal(decideVerdict(passed, 1, false), "failed");
    assert.equal(decideVerdict(empty, 0, false), "no-tests");
    assert.equal(decideVerdict(dry, 0, true), "dry-run");
    assert.equal(isFailingVerdict("no-tests"), true);
    assert.equal(isFailingVerdict("dry-run"), false);
  });

  it("round-trips the report line among other stdout lines; none is undefined", function () {
    const report: RunReport = {
      verdict: "failed",
      passed: 4,
      failed: 2,
      skipped: 3,
      total: 9,
      durationSeconds: 335.804,
      failedTests: failed.failedTests,
      resultsDirectory: "/r/lab/1",
      conformanceImage: "10.0.0.5:5000/conformance:v1.31.4",
      exitCode: 1,
      e2eRunId: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    };
    assert.deepEqual(parseReportOutput(`noise\n${formatReportLine(report)}\n`), report);
    assert.equal(parseReportOutput(""), undefined);
    assert.equal(
      describeReport(report),
      "failed: 4 passed, 2 failed, 3 skipped of 9 in 6m (exit 1); results in /r/lab/1",
    );
  });
});
