import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ResultsParseError,
  decideVerdict,
  describeProgress,
  describeReport,
  formatReportLine,
  describeFailures,
  describeStartup,
  estimateSecondsLeft,
  formatDuration,
  isFailingVerdict,
  isSuiteNode,
  messageHead,
  reportE2eRunIds,
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
      e2eRunIds: ["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
      willRun: 6,
      totalSpecs: 7411,
      done: 6,
      flaky: 0,
      pending: 0,
      failed: [
        "[sig-network] Services [It] should serve a basic endpoint from pods  [Conformance]",
        "[sig-apps] Deployment [It] deployment should support rollover [Conformance]",
      ],
      finished: true,
    });
    assert.equal(
      describeProgress(progress, 336),
      "conformance: 6/6 specs done (100%), 2 failed after 5m (suite finished)",
    );
  });

  it("counts markers that share their line with klog output, flaky and pending specs, every process's run id", function () {
    // Parallel v1.33 output: `•` followed on the same line by a klog warning, a pending `P`,
    // a spec that passed on its second attempt (`↺`), a failure, one spec still running.
    const progress = parseE2eProgress(fixture("e2e-v1.33-parallel-partial.log"));
    assert.deepEqual(progress, {
      e2eRunIds: ["1abf14f2-15f4-4804-9118-d08ee59b4c85", "5c2e7d0a-8b1f-4e3a-9c6d-0f1e2d3c4b5a"],
      willRun: 8,
      totalSpecs: 6731,
      done: 7,
      flaky: 1,
      pending: 1,
      failed: [
        "[sig-apps] Job should delete pods when suspended [Conformance] [sig-apps, Conformance]",
      ],
      finished: false,
    });
    // 7 specs in 700 s of running: one more takes about 100 s.
    assert.equal(
      describeProgress(progress, 760, 700),
      "conformance: 7/8 specs done (87%), 1 failed, 1 flaky, 1 pending after 12m; about 1m left",
    );
  });

  it("estimates the time left from the rate so far, and only when there is a rate", function () {
    const base = { e2eRunIds: [], flaky: 0, pending: 0, failed: [], finished: false };
    assert.equal(
      estimateSecondsLeft({ ...base, willRun: 400, totalSpecs: 7000, done: 100 }, 1800),
      5400,
    );
    assert.equal(estimateSecondsLeft({ ...base, willRun: 400, done: 0 }, 1800), undefined);
    assert.equal(estimateSecondsLeft({ ...base, done: 10 }, 1800), undefined);
    assert.equal(
      estimateSecondsLeft({ ...base, willRun: 10, done: 10, finished: true }, 60),
      undefined,
    );
    assert.equal(formatDuration(42), "42s");
    assert.equal(formatDuration(7 * 60 + 5), "7m");
    assert.equal(formatDuration(2 * 3600 + 5 * 60), "2h05m");
  });

  it("says what the pod waits for before the suite runs", function () {
    assert.equal(
      describeStartup(
        { kind: "scheduling", message: "0/2 nodes are available: 2 Insufficient cpu." },
        "e2e-conformance-1",
        75,
      ),
      "conformance: pod e2e-conformance-1 waiting for a node after 1m (0/2 nodes are available: 2 Insufficient cpu.)",
    );
    assert.equal(
      describeStartup({ kind: "starting", message: "ContainerCreating" }, "e2e-conformance-1", 20),
      "conformance: pod e2e-conformance-1 scheduled, pulling images and starting containers after 20s (ContainerCreating)",
    );
    assert.equal(describeStartup({ kind: "running" }, "e2e-conformance-1", 20), undefined);
  });

  it("reads a log cut mid-spec as unfinished, with what it holds so far", function () {
    const progress = parseE2eProgress(fixture("e2e-truncated.log"));
    assert.equal(progress.finished, false);
    assert.equal(progress.willRun, 6);
    assert.equal(progress.done, 3);
    assert.deepEqual(progress.failed, [
      "[sig-network] Services [It] should serve a basic endpoint from pods  [Conformance]",
    ]);
    assert.equal(
      describeProgress(progress, 125, 120),
      "conformance: 3/6 specs done (50%), 1 failed after 2m; about 2m left",
    );
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
    assert.deepEqual(parseE2eProgress(""), {
      e2eRunIds: [],
      done: 0,
      flaky: 0,
      pending: 0,
      failed: [],
      finished: false,
    });
    assert.equal(describeProgress(parseE2eProgress(""), 0), "conformance: 0/? specs done after 0s");
    // Words that start with S or P are not markers.
    const words = parseE2eProgress("Will run 2 of 9 specs\nSTEP: x\nPASS\nSUCCESS!\nPending\n");
    assert.deepEqual([words.done, words.pending], [0, 0]);
  });

  it("never counts more than the full log, whatever prefix of it is read", function () {
    for (const name of ["e2e-failed.log", "e2e-v1.33-parallel-partial.log"]) {
      const log = fixture(name);
      const full = parseE2eProgress(log);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: log.length }), (cut) => {
          const progress = parseE2eProgress(log.slice(0, cut));
          assert.ok(progress.done <= full.done);
          assert.ok(progress.failed.length <= full.failed.length);
        }),
        { numRuns: 200 },
      );
    }
  });
});

describe("junit_01.xml", function () {
  it("counts only specs: a real v1.33 report's suite nodes are neither passed nor skipped", function () {
    const real = parseJunit(fixture("junit-v1.33-trimmed.xml"));
    assert.deepEqual(
      [real.passed, real.failed, real.skipped, real.total],
      [1, 0, 4, 5],
      "4 suite nodes ([ReportBeforeSuite], [SynchronizedBeforeSuite], ...) are not specs",
    );
    assert.deepEqual(real.suiteFailures, []);
    assert.equal(decideVerdict(real, 0, false), "passed");
  });

  it("summarises a run with failures, a panic counted as a failure, with their messages", function () {
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
      failures: [
        {
          name: "[sig-network] Services should serve a basic endpoint from pods  [Conformance]",
          state: "failed",
          message: 'pod "pod1" was not running: ErrImagePull',
        },
        {
          name: "[sig-apps] Deployment deployment should support rollover [Conformance]",
          state: "panicked",
          message:
            "Test Panicked\nruntime error: invalid memory address or nil pointer dereference",
        },
      ],
      suiteFailures: [],
      dryRun: false,
    });
  });

  it("a focus that matched nothing is no-tests, though its report nodes passed", function () {
    const empty = parseJunit(fixture("junit-empty.xml"));
    assert.deepEqual([empty.passed, empty.failed, empty.skipped, empty.total], [0, 0, 3, 3]);
    assert.equal(decideVerdict(empty, 0, false), "no-tests");
  });

  it("a failed suite node fails the run and is named with its message", function () {
    const summary = parseJunit(fixture("junit-suite-node-failed.xml"));
    assert.deepEqual([summary.passed, summary.failed, summary.skipped], [0, 0, 3]);
    assert.deepEqual(summary.suiteFailures, [
      {
        name: "[SynchronizedBeforeSuite]",
        state: "failed",
        message:
          "Timed out after 60.000s.\nExpected all nodes to be schedulable: 1 of 2 nodes are tainted node.kubernetes.io/not-ready\nUnexpected error:",
      },
    ]);
    // Even with an exit code of 0 the run failed, not "no-tests".
    assert.equal(decideVerdict(summary, 0, false), "failed");
  });

  it("still reads Ginkgo v1 reports (a bare <testsuite>, states from child elements)", function () {
    const v1 = parseJunit(fixture("junit-ginkgo-v1.xml"));
    assert.deepEqual([v1.passed, v1.failed, v1.skipped, v1.total], [2, 1, 2, 5]);
    assert.equal(v1.durationSeconds, 318.41);
    assert.deepEqual(v1.failures, [
      {
        name: "[sig-network] DNS should provide DNS for services  [Conformance]",
        state: "failed",
        message:
          'Unexpected error:\n    <*errors.errorString | 0xc0002c8270>: {\n        s: "timed out waiting for the condition",',
      },
    ]);
    assert.deepEqual(
      parseJunit(
        '<testsuite name="s" tests="2"><testcase name="BeforeSuite" classname="s"><failure type="Failure">setup.go:10\nno nodes</failure></testcase><testcase name="a" classname="s"><skipped></skipped></testcase></testsuite>',
      ).suiteFailures,
      [{ name: "BeforeSuite", state: "failed", message: "no nodes" }],
    );
  });

  it("summarises a passing run and a dry run", function () {
    const passed = parseJunit(fixture("junit-passed.xml"));
    assert.deepEqual([passed.passed, passed.failed, passed.skipped, passed.total], [3, 0, 2, 5]);
    assert.equal(passed.durationSeconds, 21.907);
    const dry = parseJunit(fixture("junit-dryrun.xml"));
    assert.equal(dry.dryRun, true);
    assert.equal(dry.passed, 4);
  });

  it("keeps the first lines of a long message, shortened", function () {
    assert.equal(messageHead("a\n\n  b\nc\nd"), "a\n  b\nc");
    assert.equal(messageHead("x".repeat(1000)).length, 400);
    assert.equal(isSuiteNode("[ReportAfterSuite] Kubernetes e2e suite report"), true);
    assert.equal(isSuiteNode("[DeferCleanup (Suite)]"), true);
    assert.equal(isSuiteNode("[It] [sig-node] Pods should run"), false);
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
    const strict = { failOnTestFailures: true, failOnNoTests: true };
    assert.equal(isFailingVerdict("no-tests", strict), true);
    assert.equal(isFailingVerdict("failed", strict), true);
    assert.equal(isFailingVerdict("dry-run", strict), false);
    assert.equal(isFailingVerdict("passed", strict), false);
    // Each setting governs its own verdict.
    assert.equal(isFailingVerdict("no-tests", { ...strict, failOnNoTests: false }), false);
    assert.equal(isFailingVerdict("failed", { ...strict, failOnNoTests: false }), true);
    assert.equal(isFailingVerdict("failed", { ...strict, failOnTestFailures: false }), false);
    assert.equal(isFailingVerdict("no-tests", { ...strict, failOnTestFailures: false }), true);
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
      failures: failed.failures,
      suiteFailures: [],
      resultsDirectory: "/r/lab/1",
      conformanceImage: "10.0.0.5:5000/conformance:v1.31.4",
      exitCode: 1,
      e2eRunIds: ["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
    };
    assert.deepEqual(parseReportOutput(`noise\n${formatReportLine(report)}\n`), report);
    assert.equal(parseReportOutput(""), undefined);
    assert.equal(
      describeReport(report),
      "failed: 4 passed, 2 failed, 3 skipped of 9 in 6m (exit 1); results in /r/lab/1",
    );
    assert.equal(
      describeFailures(report.failures),
      [
        "  [sig-network] Services should serve a basic endpoint from pods  [Conformance]",
        '    pod "pod1" was not running: ErrImagePull',
        "  [sig-apps] Deployment deployment should support rollover [Conformance] [panicked]",
        "    Test Panicked",
        "    runtime error: invalid memory address or nil pointer dereference",
      ].join("\n"),
    );
  });

  it("reads the e2e-run ids of a report written before they were kept per process", function () {
    const old = JSON.parse(
      '{"verdict":"passed","e2eRunId":"7d9e2f61-0c3b-4b8e-9a5d-2e6f1c0b9a87"}',
    ) as RunReport;
    assert.deepEqual(reportE2eRunIds(old), ["7d9e2f61-0c3b-4b8e-9a5d-2e6f1c0b9a87"]);
  });
});
