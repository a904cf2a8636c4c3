import assert from "node:assert/strict";
import fc from "fast-check";
import { lockDocument, parseLock, renderLock } from "../../../components/mirror/actions/archive";
import {
  contentDigest,
  imageCheckState,
  mapWithConcurrency,
  RegistryRequestError,
} from "../../../components/mirror/actions/registry-client";
import {
  authFileContent,
  classifyCopyFailure,
  copyFailureMessage,
  redactCredentials,
  retryDelays,
  skopeoCommand,
  skopeoCopyArgs,
  type CopyRequest,
} from "../../../components/mirror/actions/skopeo";
import { classifyRegistryFailure } from "../../../components/mirror/actions/registry-copy";
import { planImageCopies } from "../../../components/mirror/plan";
import {
  replacementKeys,
  requestWithCredentials,
  type MirroredImageInputs,
} from "../../../components/mirror/provider-runtime";

const files = { digestFile: "/tmp/d/digest", authFile: "/tmp/d/auth.json" };

function request(overrides: Partial<CopyRequest> = {}): CopyRequest {
  return {
    source: "registry.k8s.io/pause:3.10",
    from: {
      transport: "docker",
      access: { host: "registry.k8s.io", scheme: "https" },
      repository: "pause",
      reference: "3.10",
    },
    to: {
      transport: "docker",
      access: {
        host: "10.0.0.5:5000",
        scheme: "https",
        caFile: "/ca.crt",
        username: "pusher",
        password: "s3cret",
      },
      repository: "pause",
      reference: "3.10",
    },
    ...overrides,
  };
}

describe("skopeo copy arguments", function () {
  it("copies the whole index with digests preserved and a digest file", function () {
    const args = skopeoCopyArgs(request(), { ...files, destCertDir: "/tmp/d/dest-certs" });
    assert.deepEqual(args, [
      "copy",
      "--preserve-digests",
      "--digestfile=/tmp/d/digest",
      "--all",
      "--retry-times=2",
      "--dest-cert-dir=/tmp/d/dest-certs",
      "--dest-authfile=/tmp/d/auth.json",
      "docker://registry.k8s.io/pause:3.10",
      "docker://10.0.0.5:5000/pause:3.10",
    ]);
  });

  it("never puts a password on the command line, whatever it is", function () {
    fc.assert(
      fc.property(
        fc.string().map((text) => `pw-${text}`),
        fc.string({ minLength: 1 }),
        (password, user) => {
          const base = request();
          const withSecret = request({
            from: {
              ...base.from,
              access: { host: "src.example:443", scheme: "https", username: user, password },
            } as CopyRequest["from"],
            to: {
              ...base.to,
              access: { ...(base.to as { access: object }).access, password },
            } as CopyRequest["to"],
          });
          const args = skopeoCopyArgs(withSecret, files).join(" ");
          assert.ok(!args.includes(password), "the password is not in argv");
          assert.ok(!/--(src-|dest-)?creds/.test(args), "no --creds flags");
          assert.ok(args.includes("--src-authfile=/tmp/d/auth.json"));
        },
      ),
    );
  });

  it("turns verification off only for plain http or an explicitly insecure registry", function () {
    const plain = request({
      from: {
        transport: "docker",
        access: { host: "127.0.0.1:5001", scheme: "http" },
        repository: "p",
        reference: "1",
      },
    });
    assert.ok(skopeoCopyArgs(plain, files).includes("--src-tls-verify=false"));
    const insecure = request({
      from: {
        transport: "docker",
        access: { host: "r:443", scheme: "https", insecureSkipVerify: true },
        repository: "p",
        reference: "1",
      },
    });
    assert.ok(skopeoCopyArgs(insecure, files).includes("--src-tls-verify=false"));
    assert.ok(!skopeoCopyArgs(request(), files).some((arg) => arg.includes("tls-verify=false")));
  });

  it("selects one platform with overrides instead of --all, and addresses digests with @", function () {
    const args = skopeoCopyArgs(
      request({
        platform: "linux/arm64/v8",
        from: {
          transport: "docker",
          access: { host: "registry.k8s.io", scheme: "https" },
          repository: "pause",
          reference: `sha256:${"b".repeat(64)}`,
        },
      }),
      files,
    );
    assert.ok(!args.includes("--all"));
    assert.ok(
      args.includes("--override-os=linux") &&
        args.includes("--override-arch=arm64") &&
        args.includes("--override-variant=v8"),
    );
    assert.ok(args.includes(`docker://registry.k8s.io/pause@sha256:${"b".repeat(64)}`));
  });

  it("serialises writers into one OCI layout with flock", function () {
    const toArchive = request({
      to: {
        transport: "oci",
        directory: "/media/usb/images",
        refName: "registry.k8s.io/pause:3.10",
      },
    });
    const [command, argv] = skopeoCommand(toArchive, ["copy"]);
    assert.equal(command, "flock");
    assert.deepEqual(argv, ["/media/usb/images.lock", "skopeo", "copy"]);
    assert.equal(skopeoCommand(request(), ["copy"])[0], "skopeo");
  });

  it("writes credentials into an auth file keyed by registry host", function () {
    const content = JSON.parse(authFileContent([request().from, request().to])!);
    assert.deepEqual(Object.keys(content.auths), ["10.0.0.5:5000"]);
    assert.equal(
      Buffer.from(content.auths["10.0.0.5:5000"].auth, "base64").toString(),
      "pusher:s3cret",
    );
    assert.equal(authFileContent([request().from]), undefined);
  });
});

describe("copy failures", function () {
  for (const [stderr, kind] of [
    [
      "reading manifest 3.10 in 127.0.0.1:5001/pause: unauthorized: authentication required",
      "unauthorized",
    ],
    [
      "initializing source docker://x/y:1: reading manifest 1 in x/y: manifest unknown: manifest unknown",
      "not-found",
    ],
    [
      'pinging container registry 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
      "unreachable",
    ],
    ["writing blob: happened during read: unexpected EOF", "unreachable"],
    ["received unexpected HTTP status: 503 Service Unavailable", "unreachable"],
    ["something else entirely", "other"],
  ] as const) {
    it(`classifies "${stderr.slice(0, 40)}..." as ${kind}`, function () {
      assert.equal(classifyCopyFailure(stderr), kind);
    });
  }

  it("names the image and both registries in the message", function () {
    assert.match(
      copyFailureMessage(request(), "unreachable", "x"),
      /^registry\.k8s\.io\/pause:3\.10: cannot reach registry\.k8s\.io or 10\.0\.0\.5:5000/,
    );
    assert.match(copyFailureMessage(request(), "not-found", "x"), /not found in registry\.k8s\.io/);
  });

  it("redacts passwords and auth tokens from error text", function () {
    assert.equal(
      redactCredentials('bad s3cret {"auth": "cHVzaGVyOnMzY3JldA=="}', ["s3cret"]),
      'bad *** {"auth": "***"}',
    );
  });

  it("backs off exponentially up to a cap", function () {
    assert.deepEqual(retryDelays(5, 1000, 6000), [1000, 2000, 4000, 6000, 6000]);
    assert.deepEqual(retryDelays(0), []);
  });
});

describe("registry checks", function () {
  it("decides present, missing and wrong digest", function () {
    assert.equal(imageCheckState(undefined, "sha256:a"), "missing");
    assert.equal(imageCheckState("sha256:a", "sha256:b"), "wrong-digest");
    assert.equal(imageCheckState("sha256:a", "sha256:a"), "present");
    assert.equal(imageCheckState("sha256:a", undefined), "present");
  });

  it("runs tasks with bounded concurrency, keeping order", async function () {
    let inFlight = 0;
    let peak = 0;
    const results = await mapWithConcurrency([5, 1, 4, 2, 3, 0], 2, async (delay) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((resolve) => setTimeout(resolve, delay * 3));
      inFlight--;
      return delay * 10;
    });
    assert.deepEqual(results, [50, 10, 40, 20, 30, 0]);
    assert.equal(peak, 2);
  });
});

describe("lock files", function () {
  const digest = `sha256:${"c".repeat(64)}`;
  it("renders sorted and parses back", function () {
    const text = renderLock([
      { source: "registry.k8s.io/pause:3.10", digest },
      { source: "docker.io/library/nginx:1.27", digest },
    ]);
    assert.deepEqual(
      parseLock(text, "f"),
      lockDocument([
        { source: "docker.io/library/nginx:1.27", digest },
        { source: "registry.k8s.io/pause:3.10", digest },
      ]),
    );
  });
  it("names the file and the entry when malformed", function () {
    assert.throws(() => parseLock("{", "/m/images.lock.json"), /\/m\/images\.lock\.json: not JSON/);
    assert.throws(() => parseLock('{"lockVersion":2,"images":[]}', "f"), /f: not an image lock/);
    assert.throws(
      () => parseLock('{"lockVersion":1,"images":[{"source":"a","digest":"md5:1"}]}', "f"),
      /f: images\[0\] needs a source and a sha256 digest/,
    );
  });
});

describe("copy plan", function () {
  const destination = {
    kind: "registry" as const,
    access: { host: "127.0.0.1:5001", scheme: "http" as const },
    nodeEndpoint: "kind-registry:5000",
  };

  it("reads upstream images where an override says and writes them at the mirror path, keeping tags", function () {
    const plan = planImageCopies({
      images: ["docker.io/library/nginx:1.27-alpine", "registry.k8s.io/pause:3.10"],
      source: {
        kind: "upstream",
        registries: { "registry.k8s.io": { host: "proxy.corp:8443", scheme: "https" } },
      },
      destination,
    });
    assert.deepEqual(
      plan.copies.map((copy) => [
        copy.source,
        copy.request.from.transport === "docker" && copy.request.from.access.host,
        copy.mirrorReference,
      ]),
      [
        [
          "docker.io/library/nginx:1.27-alpine",
          "docker.io",
          "kind-registry:5000/library/nginx:1.27-alpine",
        ],
        ["registry.k8s.io/pause:3.10", "proxy.corp:8443", "kind-registry:5000/pause:3.10"],
      ],
    );
  });

  it("reads by the pinned digest while still writing the tag", function () {
    const digest = `sha256:${"d".repeat(64)}`;
    const [copy] = planImageCopies({
      images: ["registry.k8s.io/pause:3.10"],
      source: { kind: "upstream" },
      destination,
      lock: { lockVersion: 1, images: [{ source: "registry.k8s.io/pause:3.10", digest }] },
    }).copies;
    assert.equal(copy.expectedDigest, digest);
    assert.equal(copy.request.from.transport === "docker" && copy.request.from.reference, digest);
    assert.equal(copy.request.to.transport === "docker" && copy.request.to.reference, "3.10");
  });

  it("chooses platforms for tags, and keeps the whole index of digest-pinned images", function () {
    const pinned = `sha256:${"c".repeat(64)}`;
    const copies = planImageCopies({
      images: [
        "registry.k8s.io/pause:3.10",
        `registry.k8s.io/etcd:3.5.15-0@${pinned}`,
        `registry.k8s.io/coredns/coredns@${pinned}`,
        "docker.io/library/nginx:1.27-alpine",
      ],
      source: { kind: "upstream" },
      destination,
      platforms: ["linux/amd64", "linux/arm64"],
      lock: {
        lockVersion: 1,
        images: [{ source: "docker.io/library/nginx:1.27-alpine", digest: pinned }],
      },
    }).copies;
    assert.deepEqual(
      copies.map((copy) => [copy.source.split("@")[0], copy.request.platforms ?? "whole index"]),
      [
        ["docker.io/library/nginx:1.27-alpine", "whole index"],
        ["registry.k8s.io/coredns/coredns", "whole index"],
        ["registry.k8s.io/etcd:3.5.15-0", "whole index"],
        ["registry.k8s.io/pause:3.10", ["linux/amd64", "linux/arm64"]],
      ].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
    );
    assert.ok(copies.every((copy) => copy.request.platform === undefined));
    const [single] = planImageCopies({
      images: ["registry.k8s.io/pause:3.10"],
      source: { kind: "upstream" },
      destination,
      platforms: ["linux/arm64"],
    }).copies;
    assert.equal(single.request.platform, "linux/arm64");
    assert.equal(single.request.platforms, undefined);
  });

  it("refuses bad platforms, both platform forms, and several platforms into an archive", function () {
    const base = {
      images: ["registry.k8s.io/pause:3.10"],
      source: { kind: "upstream" as const },
      destination,
    };
    assert.throws(
      () => planImageCopies({ ...base, platforms: ["linux/amd64", "amd64"] }),
      /platforms: 'amd64' must be os\/arch or os\/arch\/variant/,
    );
    assert.throws(
      () => planImageCopies({ ...base, platform: "linux/amd64", platforms: ["linux/arm64"] }),
      /platform and platforms are both set/,
    );
    assert.throws(
      () =>
        planImageCopies({
          ...base,
          destination: { kind: "archive", directory: "/tmp/images" },
          platforms: ["linux/amd64", "linux/arm64"],
        }),
      /platforms: linux\/amd64, linux\/arm64: an archive holds one platform or every platform/,
    );
  });

  it("places colliding upstreams under their prefixes", function () {
    const plan = planImageCopies({
      images: ["docker.io/library/nginx:1.27", "quay.io/library/nginx:1.27"],
      source: { kind: "upstream" },
      destination,
      upstreamPrefixes: { "quay.io": "quay" },
    });
    assert.deepEqual(
      plan.copies.map((copy) => copy.mirrorReference),
      ["kind-registry:5000/library/nginx:1.27", "kind-registry:5000/quay/library/nginx:1.27"],
    );
  });

  it("refuses an archive image missing from the lock, naming it", function () {
    assert.throws(
      () =>
        planImageCopies({
          images: ["registry.k8s.io/pause:3.10"],
          source: { kind: "archive", directory: "/media/usb" },
          destination,
          lock: { lockVersion: 1, images: [] },
        }),
      /registry\.k8s\.io\/pause:3\.10: not in the archive's lock file/,
    );
  });
});

describe("mirrored image provider decisions", function () {
  const inputs: MirroredImageInputs = {
    source: "registry.k8s.io/pause:3.10",
    request: request(),
    mirrorReference: "kind-registry:5000/pause:3.10",
    retries: 3,
    deleteOnDestroy: false,
    credentials: { toPassword: "s3cret" },
  };

  it("replaces only when the image or its place changes, not when access details do", function () {
    assert.deepEqual(replacementKeys(inputs, inputs), []);
    const newProxy = {
      ...inputs,
      request: {
        ...inputs.request,
        from: { ...inputs.request.from, access: { host: "proxy:1", scheme: "https" } },
      },
    } as MirroredImageInputs;
    assert.deepEqual(replacementKeys(inputs, newProxy), []);
    const moved = {
      ...inputs,
      request: { ...inputs.request, to: { ...inputs.request.to, repository: "other" } },
    } as MirroredImageInputs;
    assert.deepEqual(replacementKeys(inputs, moved), ["request"]);
    assert.deepEqual(replacementKeys(inputs, { ...inputs, source: "registry.k8s.io/pause:3.9" }), [
      "source",
      "request",
    ]);
    assert.deepEqual(
      replacementKeys(inputs, {
        ...inputs,
        request: { ...inputs.request, platform: "linux/arm64" },
      }),
      ["request"],
    );
  });

  it("puts passwords back only for the copy", function () {
    const stripped = {
      ...request(),
      to: {
        ...request().to,
        access: { host: "10.0.0.5:5000", scheme: "https" as const, username: "pusher" },
      },
    } as CopyRequest;
    const full = requestWithCredentials(stripped, { toPassword: "s3cret" });
    assert.equal(full.to.transport === "docker" && full.to.access.password, "s3cret");
    assert.equal(stripped.to.transport === "docker" && stripped.to.access.password, undefined);
  });
});

describe("the registry copier's failure classes", function () {
  it("retries network failures, throttling and server errors; reports the rest at once", function () {
    const cases: [RegistryRequestError | Error, string][] = [
      [new RegistryRequestError("cannot reach registry mirror:5000: ECONNRESET"), "unreachable"],
      [new RegistryRequestError("throttled", 429), "unreachable"],
      [new RegistryRequestError("bad gateway", 502), "unreachable"],
      [new RegistryRequestError("refused", 401), "unauthorized"],
      [new RegistryRequestError("denied", 403), "unauthorized"],
      [new RegistryRequestError("manifest unknown", 404), "not-found"],
      [new RegistryRequestError("digest invalid", 400), "other"],
      [new RegistryRequestError("certificate did not verify", undefined, true), "other"],
      [new Error("pause:3.10: has no linux/s390x image"), "other"],
    ];
    for (const [error, kind] of cases)
      assert.equal(classifyRegistryFailure(error), kind, error.message);
  });

  it("names content by its sha256", function () {
    assert.equal(
      contentDigest(Buffer.from("")),
      "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });
});
