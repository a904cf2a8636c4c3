import assert from "node:assert/strict";

import fc from "fast-check";

import { catalogForKubernetesVersion } from "../../../core/images/catalog";
import {
  MirrorCollisionError,
  MirrorMappingError,
  MirrorMappingOptions,
  mirrorLocationFor,
  mirrorPathFor,
  mirrorPathPrefixFor,
  planMirrorMapping,
} from "../../../core/images/mapping";
import { parseImageReference } from "../../../core/images/reference";

const MIRROR = { mirrorHost: "10.0.0.5:5001" };
const refs = (...inputs: string[]) => inputs.map(parseImageReference);
const DIGEST = `sha256:${"a".repeat(64)}`;

describe("planMirrorMapping", () => {
  it("drops the upstream host, as containerd asks the mirror for /v2/<repository>", () => {
    const plan = planMirrorMapping(refs("registry.k8s.io/pause:3.10", "nginx:1.27"), MIRROR);
    assert.deepEqual(
      plan.entries.map((entry) => [entry.source, entry.mirrorReference]),
      [
        ["docker.io/library/nginx:1.27", "10.0.0.5:5001/library/nginx:1.27"],
        ["registry.k8s.io/pause:3.10", "10.0.0.5:5001/pause:3.10"],
      ],
    );
    const pause = plan.entries[1];
    assert.equal(pause?.upstreamRegistry, "registry.k8s.io");
    assert.equal(pause?.mirrorPath, "pause");
    assert.equal(pause?.mirrorRepository, "10.0.0.5:5001/pause");
  });

  it("maps by digest when the source has one (that is what a node requests)", () => {
    const plan = planMirrorMapping(
      refs(`quay.io/a/b@${DIGEST}`, `quay.io/a/c:v1@${DIGEST}`),
      MIRROR,
    );
    assert.deepEqual(
      plan.entries.map((entry) => entry.mirrorReference),
      [`10.0.0.5:5001/a/b@${DIGEST}`, `10.0.0.5:5001/a/c@${DIGEST}`],
    );
  });

  it("merges duplicates, sorts entries and lists distinct upstream registries", () => {
    const plan = planMirrorMapping(
      refs(
        "quay.io/x/y:1",
        "nginx",
        "docker.io/library/nginx:latest",
        "registry.k8s.io/pause:3.10",
      ),
      MIRROR,
    );
    assert.deepEqual(
      plan.entries.map((entry) => entry.source),
      ["docker.io/library/nginx:latest", "quay.io/x/y:1", "registry.k8s.io/pause:3.10"],
    );
    assert.deepEqual(plan.upstreamRegistries, ["docker.io", "quay.io", "registry.k8s.io"]);
    assert.equal(plan.mirrorHost, "10.0.0.5:5001");
  });

  it("allows several tags of one upstream repository", () => {
    const plan = planMirrorMapping(
      refs("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.10"),
      MIRROR,
    );
    assert.equal(plan.entries.length, 2);
  });

  it("refuses two upstreams sharing a mirror repository, naming both and the fix", () => {
    const images = refs("quay.io/library/nginx:1", "nginx:2", "nginx:3");
    assert.throws(
      () => planMirrorMapping(images, MIRROR),
      (error: unknown) => {
        assert.ok(error instanceof MirrorCollisionError);
        assert.equal(error.collisions.length, 1);
        assert.equal(error.collisions[0]?.mirrorPath, "library/nginx");
        assert.deepEqual(error.collisions[0]?.upstreamRegistries, ["docker.io", "quay.io"]);
        assert.match(error.message, /quay\.io\/library\/nginx:1/);
        assert.match(error.message, /docker\.io\/library\/nginx:2/);
        assert.match(error.message, /upstreamPrefixes: \{"quay\.io":"quay\.io"\}/);
        // Node configuration follows the prefix by itself: nothing more for the user to do.
        assert.doesNotMatch(error.message, /override_path/);
        // The suggestion keeps the upstream with more images (docker.io) unprefixed, and works.
        assert.deepEqual(error.suggestedUpstreamPrefixes, { "quay.io": "quay.io" });
        const fixed = planMirrorMapping(images, {
          ...MIRROR,
          upstreamPrefixes: error.suggestedUpstreamPrefixes,
        });
        assert.equal(
          fixed.entries.find((e) => e.upstreamRegistry === "quay.io")?.mirrorPath,
          "quay.io/library/nginx",
        );
        return true;
      },
    );
  });

  it("places a prefixed upstream under its prefix (index.docker.io key means docker.io)", () => {
    const options: MirrorMappingOptions = {
      ...MIRROR,
      upstreamPrefixes: { "index.docker.io": "/dockerhub/", "localhost:5000": "local/dev" },
    };
    const plan = planMirrorMapping(
      refs("nginx:1.27", "localhost:5000/app:1", "registry.k8s.io/pause:3.10"),
      options,
    );
    assert.deepEqual(
      plan.entries.map((entry) => entry.mirrorReference),
      [
        "10.0.0.5:5001/dockerhub/library/nginx:1.27",
        "10.0.0.5:5001/local/dev/app:1",
        "10.0.0.5:5001/pause:3.10",
      ],
    );
    assert.equal(mirrorPathPrefixFor("docker.io", options), "dockerhub");
    assert.equal(mirrorPathPrefixFor("registry.k8s.io", options), undefined);
  });

  it("maps the whole 1.31 catalog without collision, to references on the mirror", () => {
    const { images } = catalogForKubernetesVersion("1.31");
    const plan = planMirrorMapping(images, MIRROR);
    assert.equal(plan.entries.length, images.length);
    for (const entry of plan.entries) {
      const mirrored = parseImageReference(entry.mirrorReference);
      assert.equal(mirrored.registry, "10.0.0.5:5001");
      assert.equal(mirrored.repository, entry.reference.repository);
      assert.equal(mirrored.tag, entry.reference.tag);
    }
  });

  it("refuses a mirror reference that would be too long, naming the source", () => {
    const longPath = `quay.io/${"abcdefghi/".repeat(24)}x:1`;
    assert.throws(
      () =>
        planMirrorMapping(refs(longPath), { ...MIRROR, upstreamPrefixes: { "quay.io": "prefix" } }),
      (error: unknown) =>
        error instanceof MirrorMappingError &&
        error.message.startsWith(`cannot mirror ${longPath}`) &&
        /at most 255/.test(error.message),
    );
  });

  const badHosts: Array<[string, RegExp]> = [
    ["http://10.0.0.5:5001", /without a scheme/],
    ["10.0.0.5:5001/mirror", /path is not allowed.*upstreamPrefixes/],
    ["mirror", /Docker Hub namespace/],
    ["bad host:1", /expected host\[:port\]/],
    ["", /expected host\[:port\]/],
  ];
  for (const [mirrorHost, reason] of badHosts) {
    it(`rejects mirrorHost ${JSON.stringify(mirrorHost)}`, () => {
      assert.throws(
        () => planMirrorMapping(refs("registry.k8s.io/pause:3.10"), { mirrorHost }),
        (error: unknown) =>
          error instanceof MirrorMappingError &&
          error.message.includes(`invalid mirrorHost ${JSON.stringify(mirrorHost)}`) &&
          reason.test(error.message),
      );
    });
  }

  it("accepts localhost, names with dots and bracketed IPv6 as mirror hosts", () => {
    for (const mirrorHost of ["localhost", "localhost:5001", "mirror.internal", "[fd00::5]:5001"]) {
      const plan = planMirrorMapping(refs("registry.k8s.io/pause:3.10"), { mirrorHost });
      assert.equal(plan.entries[0]?.mirrorReference, `${mirrorHost}/pause:3.10`);
    }
  });

  const badPrefixes: Array<[Record<string, string>, RegExp]> = [
    [{ "docker.io": "DockerHub" }, /upstreamPrefixes\["docker\.io"\] = "DockerHub"/],
    [{ "docker.io": "" }, /lowercase path components/],
    [{ "docker.io": "a//b" }, /lowercase path components/],
    [{ "https://quay.io": "quay" }, /keys are upstream registry hosts/],
  ];
  for (const [upstreamPrefixes, reason] of badPrefixes) {
    it(`rejects upstreamPrefixes ${JSON.stringify(upstreamPrefixes)}`, () => {
      assert.throws(
        () => planMirrorMapping(refs("nginx"), { ...MIRROR, upstreamPrefixes }),
        (error: unknown) => error instanceof MirrorMappingError && reason.test(error.message),
      );
    });
  }

  it("property: a plan never puts two upstreams in one repository; suggested prefixes fix collisions", () => {
    const upstream = fc.constantFrom(
      "docker.io",
      "quay.io",
      "registry.k8s.io",
      "localhost:5000",
      "[fd00::1]:5000",
    );
    const repository = fc.constantFrom("library/nginx", "pause", "a/b", "library/busybox");
    const tag = fc.constantFrom("1", "2", "latest");
    const image = fc
      .tuple(upstream, repository, tag)
      .map(([registry, repo, t]) => parseImageReference(`${registry}/${repo}:${t}`));
    fc.assert(
      fc.property(fc.array(image, { maxLength: 12 }), (images) => {
        const checkPlan = (options: MirrorMappingOptions) => {
          const plan = planMirrorMapping(images, options);
          const owner = new Map<string, string>();
          for (const entry of plan.entries) {
            assert.equal(
              owner.get(entry.mirrorPath) ?? entry.upstreamRegistry,
              entry.upstreamRegistry,
            );
            owner.set(entry.mirrorPath, entry.upstreamRegistry);
            assert.equal(entry.mirrorPath, mirrorPathFor(entry.reference, options));
          }
        };
        try {
          checkPlan(MIRROR);
        } catch (error) {
          assert.ok(error instanceof MirrorCollisionError, String(error));
          checkPlan({ ...MIRROR, upstreamPrefixes: error.suggestedUpstreamPrefixes });
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("mirrorPathFor / mirrorLocationFor", () => {
  it("gives the repository path inside the mirror", () => {
    assert.equal(
      mirrorPathFor(
        parseImageReference("registry.k8s.io/sig-storage/csi-provisioner:v5.0.1"),
        MIRROR,
      ),
      "sig-storage/csi-provisioner",
    );
    assert.equal(
      mirrorPathFor(parseImageReference("nginx"), {
        ...MIRROR,
        upstreamPrefixes: { "docker.io": "hub" },
      }),
      "hub/library/nginx",
    );
  });

  it("maps registry prefixes that are not image references", () => {
    assert.equal(mirrorLocationFor("registry.k8s.io", "", MIRROR), "10.0.0.5:5001");
    assert.equal(
      mirrorLocationFor("registry.k8s.io", "e2e-test-images", MIRROR),
      "10.0.0.5:5001/e2e-test-images",
    );
    assert.equal(
      mirrorLocationFor("docker.io", "library", {
        ...MIRROR,
        upstreamPrefixes: { "docker.io": "hub" },
      }),
      "10.0.0.5:5001/hub/library",
    );
    assert.equal(
      mirrorLocationFor("quay.io", "", { ...MIRROR, upstreamPrefixes: { "quay.io": "q" } }),
      "10.0.0.5:5001/q",
    );
  });
});
