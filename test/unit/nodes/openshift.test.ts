import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import Ajv from "ajv";
import * as YAML from "yaml";
import {
  NodeConfigError,
  digestOnlyLimitation,
  openshiftMinor,
  planOpenShiftMirror,
  renderOpenShiftManifests,
  type OpenShiftObject,
} from "../../../core/nodes";
import { assertGolden } from "./golden";

/**
 * The objects' fields as OpenShift's API reference documents them, one JSON schema per
 * `apiVersion kind`, refusing unknown fields as the API server does with strict field validation.
 */
const schemas = JSON.parse(
  readFileSync(
    path.resolve(__dirname, "..", "..", "fixtures", "openshift", "mirror-objects.schema.json"),
    "utf8",
  ),
) as Record<string, object>;
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map(
  Object.entries(schemas)
    .filter(([key]) => !key.startsWith("$"))
    .map(([key, schema]) => [key, ajv.compile(schema)]),
);

function assertValid(object: OpenShiftObject): void {
  const validate = validators.get(`${object.apiVersion} ${object.kind}`);
  assert.ok(validate, `no schema for ${object.apiVersion} ${object.kind}`);
  assert.ok(validate(object), `${object.kind}: ${ajv.errorsText(validate.errors)}`);
}

const upstreams = [
  { registry: "registry.k8s.io" },
  { registry: "docker.io", pathPrefix: "dockerhub" },
  { registry: "quay.io" },
];

describe("OpenShift mirror objects", function () {
  it("declares an ImageDigestMirrorSet and an ImageTagMirrorSet valid against their documented schema", function () {
    const plan = planOpenShiftMirror({ endpoint: "mirror.lab:5000", scheme: "https", upstreams });
    assert.equal(plan.kind, "mirror-sets");
    assert.deepEqual(
      plan.objects.map((object) => `${object.apiVersion} ${object.kind}`),
      ["config.openshift.io/v1 ImageDigestMirrorSet", "config.openshift.io/v1 ImageTagMirrorSet"],
    );
    for (const object of plan.objects) assertValid(object);
    // Tag pulls (the e2e images) go through the tag mirror set.
    assert.deepEqual(plan.objects[1].spec.imageTagMirrors, [
      { source: "registry.k8s.io", mirrors: ["mirror.lab:5000"] },
      { source: "docker.io", mirrors: ["mirror.lab:5000/dockerhub"] },
      { source: "quay.io", mirrors: ["mirror.lab:5000"] },
    ]);
    assert.deepEqual(plan.warnings, []);
    assertGolden("openshift-mirror-sets.yaml", renderOpenShiftManifests(plan));
  });

  it("forbids the upstream with NeverContactSource, still valid", function () {
    const plan = planOpenShiftMirror({
      endpoint: "10.0.0.5:5000",
      scheme: "http",
      upstreams,
      forbidFallback: true,
      openshiftVersion: "4.16.3",
    });
    for (const object of plan.objects) {
      assertValid(object);
      for (const entry of Object.values(object.spec)[0]) {
        assert.equal(entry.mirrorSourcePolicy, "NeverContactSource");
      }
    }
    assert.match(plan.warnings.join("\n"), /insecureRegistries/);
    assertGolden("openshift-mirror-sets-no-fallback.yaml", renderOpenShiftManifests(plan));
  });

  it("renders an ImageContentSourcePolicy before 4.13, with the digest-only limitation stated", function () {
    const plan = planOpenShiftMirror({
      endpoint: "mirror.lab:5000",
      scheme: "https",
      upstreams,
      openshiftVersion: "4.12",
    });
    assert.equal(plan.kind, "content-source-policy");
    assert.equal(plan.objects.length, 1);
    assert.equal(plan.objects[0].kind, "ImageContentSourcePolicy");
    assertValid(plan.objects[0]);
    assert.equal(plan.warnings[0], digestOnlyLimitation);
    const rendered = renderOpenShiftManifests(plan);
    assert.match(rendered, /^# Note: ImageContentSourcePolicy mirrors pulls by digest only/);
    assertGolden("openshift-content-source-policy.yaml", rendered);
    // The manifest file parses back to exactly the declared objects.
    const documents = YAML.parseAllDocuments(rendered).map((document) => document.toJS());
    assert.deepEqual(documents, plan.objects);
  });

  it("the schema check catches what the API server would refuse", function () {
    const plan = planOpenShiftMirror({ endpoint: "mirror.lab:5000", scheme: "https", upstreams });
    const [digestSet] = plan.objects;
    const wrongPolicy = structuredClone(digestSet) as unknown as {
      spec: { imageDigestMirrors: { mirrorSourcePolicy: string }[] };
    };
    wrongPolicy.spec.imageDigestMirrors[0].mirrorSourcePolicy = "Never";
    assert.throws(() => assertValid(wrongPolicy as unknown as OpenShiftObject), /allowed values/);
    const schemeInMirror = structuredClone(digestSet);
    schemeInMirror.spec.imageDigestMirrors[0].mirrors = ["http://mirror.lab:5000"];
    assert.throws(() => assertValid(schemeInMirror), /pattern/);
  });

  it("names the argument for a bad version or upstream", function () {
    assert.equal(openshiftMinor("4.14"), 14);
    assert.throws(
      () => openshiftMinor("v4.14", "nodesOpenshiftVersion"),
      (error: unknown) =>
        error instanceof NodeConfigError &&
        error.arg === "nodesOpenshiftVersion" &&
        /use 4\.N or 4\.N\.P/.test(error.message),
    );
    assert.throws(
      () =>
        planOpenShiftMirror({
          endpoint: "mirror.lab:5000",
          scheme: "https",
          upstreams: [{ registry: "https://quay.io" }],
        }),
      /upstreams\[0\]\.registry/,
    );
  });
});
