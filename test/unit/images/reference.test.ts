import assert from "node:assert/strict";

import fc from "fast-check";

import {
  ImageReference,
  InvalidImageReferenceError,
  canonicalImageReference,
  familiarName,
  familiarString,
  parseImageReference,
  repositoryName,
  sameImage,
  tryParseImageReference,
} from "../../../core/images/reference";

const HEX64 = "f".repeat(64);
const DIGEST = `sha256:${HEX64}`;
const REAL_DIGEST = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

describe("parseImageReference", () => {
  // Mostly from distribution/reference reference_test.go and normalize_test.go, normalised.
  const valid: Array<[input: string, expected: ImageReference, canonical: string]> = [
    // distribution's normalisation: an uppercase first component is a registry host.
    ["Foo/bar", { registry: "Foo", repository: "bar", tag: "latest" }, "Foo/bar:latest"],
    [
      "MyRegistry/team/app:1.0",
      { registry: "MyRegistry", repository: "team/app", tag: "1.0" },
      "MyRegistry/team/app:1.0",
    ],
    [
      "nginx:1.27-alpine",
      { registry: "docker.io", repository: "library/nginx", tag: "1.27-alpine" },
      "docker.io/library/nginx:1.27-alpine",
    ],
    [
      "nginx",
      { registry: "docker.io", repository: "library/nginx", tag: "latest" },
      "docker.io/library/nginx:latest",
    ],
    [
      "docker.io/debian",
      { registry: "docker.io", repository: "library/debian", tag: "latest" },
      "docker.io/library/debian:latest",
    ],
    [
      "index.docker.io/docker/docker",
      { registry: "docker.io", repository: "docker/docker", tag: "latest" },
      "docker.io/docker/docker:latest",
    ],
    [
      "index.docker.io/debian",
      { registry: "docker.io", repository: "library/debian", tag: "latest" },
      "docker.io/library/debian:latest",
    ],
    [
      "dmcgowan/myapp",
      { registry: "docker.io", repository: "dmcgowan/myapp", tag: "latest" },
      "docker.io/dmcgowan/myapp:latest",
    ],
    [
      "docker.io/library/foo/bar",
      { registry: "docker.io", repository: "library/foo/bar", tag: "latest" },
      "docker.io/library/foo/bar:latest",
    ],
    [
      "test_com/foo",
      { registry: "docker.io", repository: "test_com/foo", tag: "latest" },
      "docker.io/test_com/foo:latest",
    ],
    [
      "registry.k8s.io/pause:3.10",
      { registry: "registry.k8s.io", repository: "pause", tag: "3.10" },
      "registry.k8s.io/pause:3.10",
    ],
    [
      "localhost:5000/foo/bar:v1",
      { registry: "localhost:5000", repository: "foo/bar", tag: "v1" },
      "localhost:5000/foo/bar:v1",
    ],
    [
      "localhost/foo",
      { registry: "localhost", repository: "foo", tag: "latest" },
      "localhost/foo:latest",
    ],
    [
      "test:5000/repo",
      { registry: "test:5000", repository: "repo", tag: "latest" },
      "test:5000/repo:latest",
    ],
    [
      `test:5000/repo@${DIGEST}`,
      { registry: "test:5000", repository: "repo", digest: DIGEST },
      `test:5000/repo@${DIGEST}`,
    ],
    [
      `test:5000/repo:tag@${DIGEST}`,
      { registry: "test:5000", repository: "repo", tag: "tag", digest: DIGEST },
      `test:5000/repo:tag@${DIGEST}`,
    ],
    [
      `busybox:latest@${REAL_DIGEST}`,
      { registry: "docker.io", repository: "library/busybox", tag: "latest", digest: REAL_DIGEST },
      `docker.io/library/busybox:latest@${REAL_DIGEST}`,
    ],
    [
      "test.com:5000",
      { registry: "docker.io", repository: "library/test.com", tag: "5000" },
      "docker.io/library/test.com:5000",
    ],
    [
      "192.168.1.1:5000/repo:5050",
      { registry: "192.168.1.1:5000", repository: "repo", tag: "5050" },
      "192.168.1.1:5000/repo:5050",
    ],
    [
      "192.168.1.1",
      { registry: "docker.io", repository: "library/192.168.1.1", tag: "latest" },
      "docker.io/library/192.168.1.1:latest",
    ],
    [
      "[2001:db8::1]:5000/repo:tag",
      { registry: "[2001:db8::1]:5000", repository: "repo", tag: "tag" },
      "[2001:db8::1]:5000/repo:tag",
    ],
    [
      "[::1]:5000/repo",
      { registry: "[::1]:5000", repository: "repo", tag: "latest" },
      "[::1]:5000/repo:latest",
    ],
    [
      "[2001:db8:1:2:3:4:5:6]/repo:tag",
      { registry: "[2001:db8:1:2:3:4:5:6]", repository: "repo", tag: "tag" },
      "[2001:db8:1:2:3:4:5:6]/repo:tag",
    ],
    [
      "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
      { registry: "sub-dom1.foo.com", repository: "bar/baz/quux", tag: "some-long-tag" },
      "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    ],
    [
      "b.gcr.io/test.example.com/my-app:test.example.com",
      { registry: "b.gcr.io", repository: "test.example.com/my-app", tag: "test.example.com" },
      "b.gcr.io/test.example.com/my-app:test.example.com",
    ],
    [
      "xn--n3h.com:18080/foo",
      { registry: "xn--n3h.com:18080", repository: "foo", tag: "latest" },
      "xn--n3h.com:18080/foo:latest",
    ],
    [
      "lowercase:Uppercase",
      { registry: "docker.io", repository: "library/lowercase", tag: "Uppercase" },
      "docker.io/library/lowercase:Uppercase",
    ],
    [
      "docker---rules/dock__er",
      { registry: "docker.io", repository: "docker---rules/dock__er", tag: "latest" },
      "docker.io/docker---rules/dock__er:latest",
    ],
    [
      "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
      {
        registry: "docker.io",
        repository: "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        tag: "latest",
      },
      "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest",
    ],
    [
      `xn--7o8h.com/myimage:xn--7o8h.com@sha512:${"f".repeat(128)}`,
      {
        registry: "xn--7o8h.com",
        repository: "myimage",
        tag: "xn--7o8h.com",
        digest: `sha512:${"f".repeat(128)}`,
      },
      `xn--7o8h.com/myimage:xn--7o8h.com@sha512:${"f".repeat(128)}`,
    ],
    [
      // Name of exactly 255 characters: the maximum.
      `a.io/${"a/".repeat(124)}ab:t`,
      { registry: "a.io", repository: `${"a/".repeat(124)}ab`, tag: "t" },
      `a.io/${"a/".repeat(124)}ab:t`,
    ],
  ];

  for (const [input, expected, canonical] of valid) {
    it(`parses ${JSON.stringify(input)}`, () => {
      const reference = parseImageReference(input);
      assert.deepStrictEqual(reference, expected);
      assert.equal(canonicalImageReference(reference), canonical);
    });
  }

  const invalid: Array<[input: string, reason: RegExp]> = [
    ["", /empty/],
    [
      "Foo/Bar",
      /uppercase letters are not allowed in repository 'Bar': a repository path is lowercase/,
    ],
    ["foo/Bar", /uppercase letters are not allowed in repository 'foo\/Bar'/],
    ["Uppercase:tag", /uppercase letters are not allowed in repository 'Uppercase'/],
    ["docker/Docker", /uppercase.*'docker\/Docker'/],
    ["test:5000/Uppercase/lowercase:tag", /uppercase.*'Uppercase\/lowercase'/],
    [":justtag", /path component ''/],
    [`@${DIGEST}`, /repository name is required before '@'/],
    ["repo@sha256:ffffffffffffffffffffffffffffffffff", /exactly 64 lowercase hex digits/],
    [`repo@sha256:${"F".repeat(64)}`, /exactly 64 lowercase hex digits/],
    [`validname@invaliddigest:${HEX64}`, /unsupported digest algorithm 'invaliddigest'/],
    [`validname@${HEX64}`, /invalid digest/],
    [`a@constructor:${HEX64}`, /unsupported digest algorithm 'constructor'/],
    [`${"a/".repeat(128)}a:tag`, /at most 255/],
    [`a.io/${"a/".repeat(124)}abc:t`, /256 characters long; at most 255/],
    ["aa/asdf$$^/aa", /path component 'asdf\$\$\^'/],
    ["https://github.com/docker/docker", /URL scheme is not allowed/],
    ["-docker", /path component '-docker'/],
    ["-docker.io/docker/docker", /invalid registry host '-docker.io'/],
    ["docker///docker", /path component ''/],
    ["docker-/docker", /path component 'docker-'/],
    ["____/____", /path component '____'/],
    // A first component with '.' is read as a registry host (as docker does), and rejected as one.
    ["dock..er/docker", /invalid registry host 'dock..er'/],
    ["dock_.er/docker", /invalid registry host 'dock_.er'/],
    ["library/dock-.er", /path component 'dock-.er'/],
    ["docker/", /path component ''/],
    ["example.com/", /repository name is empty/],
    ["[fc00::1]", /path component '\[fc00'/],
    ["[fc00::1]:5000", /path component/],
    ["fc00::1:5000/debian", /invalid registry host 'fc00::1:5000'/],
    ["[fe80::1%eth0]:5000/debian", /invalid registry host/],
    ["[2001:db8:3:4::192.0.2.33]:5000/debian", /invalid registry host/],
    [HEX64.replace(/f/g, "a"), /image ID, not a repository name/],
    ["nginx:-tag", /invalid tag '-tag'/],
    [`nginx:${"t".repeat(129)}`, /invalid tag/],
    ["nginx:", /invalid tag ''/],
    ["nginx 1.27", /whitespace/],
    ["foo:bar/baz", /invalid registry host 'foo:bar'/],
  ];

  for (const [input, reason] of invalid) {
    it(`rejects ${JSON.stringify(input.length > 60 ? `${input.slice(0, 60)}...` : input)}`, () => {
      assert.throws(
        () => parseImageReference(input),
        (error: unknown) => {
          assert.ok(error instanceof InvalidImageReferenceError);
          assert.equal(error.input, input);
          assert.match(error.reason, reason);
          assert.ok(error.message.includes(JSON.stringify(input)), "message names the input");
          return true;
        },
      );
    });
  }

  it("tryParseImageReference returns undefined instead of throwing", () => {
    assert.equal(tryParseImageReference("foo/Bar"), undefined);
    assert.deepEqual(tryParseImageReference("pause"), parseImageReference("pause"));
  });
});

describe("familiarName / familiarString / repositoryName", () => {
  const cases: Array<[input: string, familiar: string, name: string]> = [
    ["docker.io/library/ubuntu", "ubuntu", "docker.io/library/ubuntu"],
    ["fooo/bar", "fooo/bar", "docker.io/fooo/bar"],
    ["library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar"],
    [
      "127.0.0.1:8000/private/moonbase",
      "127.0.0.1:8000/private/moonbase",
      "127.0.0.1:8000/private/moonbase",
    ],
    ["example.com/privatebase", "example.com/privatebase", "example.com/privatebase"],
    ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause", "registry.k8s.io/pause"],
  ];
  for (const [input, familiar, name] of cases) {
    it(`${input} -> ${familiar}`, () => {
      const reference = parseImageReference(input);
      assert.equal(familiarName(reference), familiar);
      assert.equal(repositoryName(reference), name);
    });
  }

  it("keeps tag and digest in the familiar string", () => {
    const input = `busybox:latest@${REAL_DIGEST}`;
    assert.equal(familiarString(parseImageReference(input)), input);
  });

  it("canonical form of a digest-only reference has no implicit tag", () => {
    const reference: ImageReference = {
      registry: "docker.io",
      repository: "library/redis",
      digest: REAL_DIGEST,
    };
    assert.equal(canonicalImageReference(reference), `docker.io/library/redis@${REAL_DIGEST}`);
  });

  it("a hand-built reference without tag or digest is :latest, like docker", () => {
    assert.equal(
      canonicalImageReference({ registry: "quay.io", repository: "a/b" }),
      "quay.io/a/b:latest",
    );
  });

  it("sameImage compares canonical forms", () => {
    assert.ok(
      sameImage(
        parseImageReference("nginx"),
        parseImageReference("docker.io/library/nginx:latest"),
      ),
    );
    assert.ok(!sameImage(parseImageReference("nginx:1"), parseImageReference("nginx:2")));
  });
});

describe("parseImageReference properties", () => {
  const alphanumeric = fc.stringMatching(/^[a-z0-9]{1,6}$/);
  const separator = fc.constantFrom(".", "_", "__", "-", "--", "---");
  const pathComponent = fc
    .tuple(alphanumeric, fc.array(fc.tuple(separator, alphanumeric), { maxLength: 2 }))
    .map(([head, rest]) => head + rest.map(([sep, part]) => sep + part).join(""));
  const path = fc
    .array(pathComponent, { minLength: 1, maxLength: 4 })
    .map((parts) => parts.join("/"));
  const domainComponent = fc.stringMatching(/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?$/);
  const port = fc.integer({ min: 1, max: 65535 }).map((n) => `:${n}`);
  const host = fc.oneof(
    fc.array(domainComponent, { minLength: 2, maxLength: 4 }).map((labels) => labels.join(".")),
    fc.constant("localhost"),
    // Real IPv6 addresses always contain ':' (that is also what marks "[...]" as a host).
    fc.stringMatching(/^[a-f0-9]{0,4}:[a-f0-9:]{0,10}$/).map((address) => `[${address}]`),
    domainComponent, // needs a port to be read as a host; see `registry`
  );
  const registry = fc
    .tuple(host, fc.option(port, { nil: undefined }))
    .filter(([h, p]) => p !== undefined || h.includes(".") || h.includes("[") || h === "localhost")
    .map(([h, p]) => h + (p ?? ""));
  const tag = fc.stringMatching(/^\w[\w.-]{0,20}$/);
  const digest = fc.stringMatching(/^[a-f0-9]{64}$/).map((hex) => `sha256:${hex}`);

  const referenceParts = fc.record({
    registry: fc.option(fc.oneof(registry, fc.constant("index.docker.io")), { nil: undefined }),
    path,
    tag: fc.option(tag, { nil: undefined }),
    digest: fc.option(digest, { nil: undefined }),
  });
  // Without a registry, a first component containing '.' would itself be read as a registry.
  const validReference = referenceParts
    .filter((parts) => parts.registry !== undefined || !parts.path.split("/")[0]?.includes("."))
    .map((parts) => ({
      parts,
      text:
        (parts.registry === undefined ? "" : `${parts.registry}/`) +
        parts.path +
        (parts.tag === undefined ? "" : `:${parts.tag}`) +
        (parts.digest === undefined ? "" : `@${parts.digest}`),
    }));

  it("generated valid references always parse, into the parts they were built from", () => {
    fc.assert(
      fc.property(validReference, ({ parts, text }) => {
        const reference = parseImageReference(text);
        const expectedRegistry =
          parts.registry === undefined || parts.registry === "index.docker.io"
            ? "docker.io"
            : parts.registry;
        const expectedRepository =
          expectedRegistry === "docker.io" && !parts.path.includes("/")
            ? `library/${parts.path}`
            : parts.path;
        assert.equal(reference.registry, expectedRegistry);
        assert.equal(reference.repository, expectedRepository);
        assert.equal(reference.digest, parts.digest);
        assert.equal(
          reference.tag,
          parts.tag ?? (parts.digest === undefined ? "latest" : undefined),
        );
      }),
      { numRuns: 500 },
    );
  });

  it("the canonical form is a fixed point: parse(canonical(parse(x))) equals parse(x)", () => {
    fc.assert(
      fc.property(validReference, ({ text }) => {
        const parsed = parseImageReference(text);
        const canonical = canonicalImageReference(parsed);
        assert.deepStrictEqual(parseImageReference(canonical), parsed);
        assert.equal(canonicalImageReference(parseImageReference(canonical)), canonical);
      }),
      { numRuns: 500 },
    );
  });

  it("the familiar string parses back to the same reference", () => {
    fc.assert(
      fc.property(validReference, ({ text }) => {
        const parsed = parseImageReference(text);
        assert.deepStrictEqual(parseImageReference(familiarString(parsed)), parsed);
      }),
      { numRuns: 300 },
    );
  });

  const grammarCharacters = fc.constantFrom(..."aZ09._-/:@[]%$ ".split(""), "sha256:", "localhost");
  const garbage = fc.oneof(
    fc.string({ unit: grammarCharacters, maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    validReference.chain(({ text }) =>
      fc
        .tuple(fc.nat(text.length), fc.string({ unit: grammarCharacters, maxLength: 3 }))
        .map(([at, insert]) => text.slice(0, at) + insert + text.slice(at + 1)),
    ),
  );

  it("garbage either parses to a stable reference or throws InvalidImageReferenceError", () => {
    fc.assert(
      fc.property(garbage, (input) => {
        let parsed: ImageReference;
        try {
          parsed = parseImageReference(input);
        } catch (error) {
          assert.ok(error instanceof InvalidImageReferenceError, `unexpected ${String(error)}`);
          assert.equal(error.input, input);
          assert.ok(error.reason.length > 0);
          return;
        }
        assert.deepStrictEqual(parseImageReference(canonicalImageReference(parsed)), parsed);
      }),
      { numRuns: 2000 },
    );
  });
});
