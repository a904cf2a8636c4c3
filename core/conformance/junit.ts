/**
 * The verdict of a run from junit_01.xml. Ginkgo v2 writes
 * `<testsuites><testsuite><testcase name="[It] ..." status="passed|failed|skipped|...">` and
 * also writes its suite nodes (`[SynchronizedBeforeSuite]`, `[ReportAfterSuite] ...`) as test
 * cases; Ginkgo v1 writes a bare `<testsuite>` whose cases carry `<failure>`/`<skipped>`
 * children and, for a failed setup node, a case named `BeforeSuite`/`AfterSuite`. Only specs
 * are tests here; a failed suite node is reported on its own. Pure.
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

/** A spec or suite node that did not pass, with the start of its failure message. */
export interface JunitFailure {
  /** The spec's text without Ginkgo's `[It]` prefix, or the suite node's name. */
  readonly name: string;
  /** Ginkgo's state: failed, panicked, timedout, interrupted, aborted (or "failed" for v1). */
  readonly state: string;
  /** The first lines of the failure message (at most {@link MESSAGE_LINES}); may be empty. */
  readonly message: string;
}

export interface JunitSummary {
  /** Specs that passed. */
  readonly passed: number;
  /** Specs that failed in any way (failed, panicked, timed out, interrupted, aborted). */
  readonly failed: number;
  /** Specs skipped or pending. */
  readonly skipped: number;
  /** Specs in the file (suite nodes are not specs). */
  readonly total: number;
  readonly durationSeconds: number;
  /** Names of the failed specs, in file order. */
  readonly failedTests: readonly string[];
  /** The failed specs with the start of their messages, in file order. */
  readonly failures: readonly JunitFailure[];
  /** Suite nodes (BeforeSuite, ReportAfterSuite, ...) that failed: the run failed with them. */
  readonly suiteFailures: readonly JunitFailure[];
  /** ginkgo's DryRun property, when present. */
  readonly dryRun: boolean;
}

/** Lines of a failure message kept beside the spec's name. */
export const MESSAGE_LINES = 3;
/** Characters of a failure message kept at most (a message can be a whole object dump). */
const MESSAGE_CHARACTERS = 400;

const PASSED = new Set(["passed"]);
const SKIPPED = new Set(["skipped", "pending"]);

/**
 * Ginkgo v2's suite-level leaf node types, as the junit names them (`[<type>]` prefix), and
 * Ginkgo v1's names for a failed setup node.
 */
const SUITE_NODE_V2 =
  /^\[(?:BeforeSuite|AfterSuite|SynchronizedBeforeSuite|SynchronizedAfterSuite|ReportBeforeSuite|ReportAfterSuite|DeferCleanup \(Suite\))\]/;
const SUITE_NODE_V1 = new Set(["BeforeSuite", "AfterSuite"]);
/** Ginkgo v2 prefixes a spec's text with its leaf node type. */
const LEAF_TYPE_PREFIX = /^\[It\] /;

interface FailureElement {
  "@_message"?: string;
  "@_type"?: string;
  "#text"?: string;
}
interface TestCase {
  "@_name"?: string;
  "@_status"?: string;
  "@_time"?: string;
  failure?: FailureElement | string;
  error?: FailureElement | string;
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
  // Go's encoder writes quotes and newlines as numeric references (&#34; &#xA;).
  htmlEntities: true,
  parseAttributeValue: false,
  parseTagValue: false,
  trimValues: false,
});

function seconds(value: string | undefined): number {
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed >= 0 ? parsed : 0;
}

/** The state of one testcase: ginkgo's `status`, else the child elements (Ginkgo v1). */
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

/** Whether a testcase is a Ginkgo suite node rather than a spec. */
export function isSuiteNode(name: string): boolean {
  return SUITE_NODE_V2.test(name) || SUITE_NODE_V1.has(name);
}

/** The first few non-empty lines of a message, shortened; "" when there is none. */
export function messageHead(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== "")
    .slice(0, MESSAGE_LINES);
  const head = lines.join("\n");
  return head.length > MESSAGE_CHARACTERS ? `${head.slice(0, MESSAGE_CHARACTERS - 1)}…` : head;
}

function elementText(element: FailureElement | string | undefined): {
  message: string;
  body: string;
} {
  if (element === undefined) return { message: "", body: "" };
  if (typeof element === "string") return { message: "", body: element };
  return { message: element["@_message"] ?? "", body: element["#text"] ?? "" };
}

function failureOf(testcase: TestCase, name: string): JunitFailure {
  const state = testcase["@_status"] ?? "failed";
  const failure = elementText(testcase.failure ?? testcase.error);
  // Ginkgo's message attribute holds the failure itself; a panic's is "Test Panicked" and the
  // body holds the panic value after the location line, so the body is read when it says more.
  let message = failure.message;
  if (message === "" || message === "Test Panicked" || message === "interrupted") {
    const body = failure.body
      .split(/\r?\n/)
      // Drop Ginkgo's own framing: the state line, "In [It] at: ...", and v1's code locations.
      .filter((line) => !/^(?:\[[A-Z]+\] .*|In \[\w+\] at: .*|\S+\.go:\d+)$/.test(line.trim()))
      .join("\n");
    message = [message, body].filter((part) => part.trim() !== "").join("\n");
  }
  return { name, state, message: messageHead(message) };
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
  let skipped = 0;
  let suiteTime = 0;
  let dryRun = false;
  const failures: JunitFailure[] = [];
  const suiteFailures: JunitFailure[] = [];
  for (const suite of suites) {
    suiteTime += seconds(suite["@_time"]);
    for (const property of suite.properties?.property ?? []) {
      if (property["@_name"] === "DryRun" && property["@_value"] === "true") dryRun = true;
    }
    for (const testcase of suite.testcase ?? []) {
      const rawName = testcase["@_name"] ?? "(unnamed testcase)";
      const state = caseState(testcase);
      if (isSuiteNode(rawName)) {
        if (state === "failed") suiteFailures.push(failureOf(testcase, rawName));
        continue;
      }
      if (state === "passed") passed++;
      else if (state === "skipped") skipped++;
      else failures.push(failureOf(testcase, rawName.replace(LEAF_TYPE_PREFIX, "")));
    }
  }
  const durationSeconds = document.testsuites?.["@_time"]
    ? seconds(document.testsuites["@_time"])
    : suiteTime;
  return {
    passed,
    failed: failures.length,
    skipped,
    total: passed + failures.length + skipped,
    durationSeconds,
    failedTests: failures.map((failure) => failure.name),
    failures,
    suiteFailures,
    dryRun,
  };
}
