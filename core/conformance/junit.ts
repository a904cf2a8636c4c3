/**
 * The verdict of a run from junit_01.xml as ginkgo v2 writes it for the e2e suite
 * (`<testsuites><testsuite><testcase status="passed|failed|skipped|...">`). Pure.
 */

// fast-xml-parser is CommonJS; its typings are not needed beyond these two calls.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { XMLParser, XMLValidator } = require("fast-xml-parser") as {
  XMLParser: new (options: Record<string, unknown>) => { parse(text: string): unknown };
  XMLValidator: {
    validate(text: string): true | { err: { code: string; msg: string; line: number } };
  };
};
import { ResultsParseError } from "./errors";

export interface JunitSummary {
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly total: number;
  readonly durationSeconds: number;
  /** Names of the failed specs, in file order. */
  readonly failedTests: readonly string[];
  /** ginkgo's DryRun property, when present. */
  readonly dryRun: boolean;
}

/** ginkgo spec states counted as failures (anything that is not passed, skipped or pending). */
const PASSED = new Set(["passed"]);
const SKIPPED = new Set(["skipped", "pending"]);

interface TestCase {
  "@_name"?: string;
  "@_status"?: string;
  "@_time"?: string;
  failure?: unknown;
  error?: unknown;
  skipped?: unknown;
}
interface TestSuite {
  "@_time"?: string;
  testcase?: TestCase[];
  properties?: { property?: Array<{ "@_name"?: string; "@_value"?: string }> };
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  isArray: (name: string) => ["testsuite", "testcase", "property"].includes(name),
  processEntities: true,
  parseAttributeValue: false,
});

function seconds(value: string | undefined): number {
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed >= 0 ? parsed : 0;
}

/** The state of one testcase: ginkgo's `status`, else the child elements (other reporters). */
function caseState(testcase: TestCase): "passed" | "skipped" | "failed" {
  const status = testcase["@_status"];
  if (status !== undefined) {
    if (PASSED.has(status)) return "passed";
    if (SKIPPED.has(status)) return "skipped";
    return "failed";
  }
  if (testcase.failure !== undefined || testcase.error !== undefined) return "failed";
  if (testcase.skipped !== undefined) return "skipped";
  return "passed";
}

/**
 * Summarises a junit file.
 *
 * @throws ResultsParseError naming the file when it is not XML or holds no test suite.
 */
export function parseJunit(xml: string, file = "junit_01.xml"): JunitSummary {
  if (xml.trim() === "")
    throw new ResultsParseError(file, "is empty (the suite did not finish writing it)");
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new ResultsParseError(
      file,
      `is not XML (line ${valid.err.line}: ${valid.err.msg}); the download may have been cut`,
    );
  }
  const document = parser.parse(xml) as {
    testsuites?: { "@_time"?: string; testsuite?: TestSuite[] };
    testsuite?: TestSuite[];
  };
  const suites = document.testsuites?.testsuite ?? document.testsuite;
  if (suites === undefined) {
    throw new ResultsParseError(file, "holds no <testsuite>: it is not a junit report");
  }
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  let suiteTime = 0;
  let dryRun = false;
  const failedTests: string[] = [];
  for (const suite of suites) {
    suiteTime += seconds(suite["@_time"]);
    for (const property of suite.properties?.property ?? []) {
      if (property["@_name"] === "DryRun" && property["@_value"] === "true") dryRun = true;
    }
    for (const testcase of suite.testcase ?? []) {
      const state = caseState(testcase);
      if (state === "passed") passed++;
      else if (state === "skipped") skipped++;
      else {
        failed++;
        failedTests.push(testcase["@_name"] ?? "(unnamed testcase)");
      }
    }
  }
  const durationSeconds = document.testsuites?.["@_time"]
    ? seconds(document.testsuites["@_time"])
    : suiteTime;
  return {
    passed,
    failed,
    skipped,
    total: passed + failed + skipped,
    durationSeconds,
    failedTests,
    dryRun,
  };
}
