import assert from "node:assert/strict";
import fc from "fast-check";
import * as smolToml from "smol-toml";
import * as YAML from "yaml";
import {
  type NodeMirror,
  type NodeUpstream,
  NodeConfigError,
  renderContainerdConfigFile,
  renderContainerdConfigFragment,
  renderContainerdHostsToml,
  renderContainerdMirrorHostsToml,
  containerdHostDirectoryName,
  containerdMirrorUrl,
  basicAuthorization,
  renderHostsBlock,
  renderLocalRegistryHosting,
  renderRancherNoFallbackConfig,
  renderRegistriesConfDropIn,
  renderRegistriesYaml,
  tomlString,
  upstreamServerUrl,
} from "../../../core/nodes";
import { assertGolden } from "./golden";

const httpMirror: NodeMirror = { endpoint: "10.0.0.5:5000", scheme: "http" };
const tlsMirror: NodeMirror = {
  endpoint: "registry.lab:5443",
  scheme: "https",
  caFile: "/etc/airgap-conformance/mirror-ca.crt",
};
/** TOML as plain objects (the parser's tables have a null prototype). */
function parseToml(text: string): Record<string, unknown> {
  return JSON.parse(JSON.stringify(smolToml.parse(text))) as Record<string, unknown>;
}

const puller = { username: "puller", password: "s3cret" };
const k8s: NodeUpstream = { registry: "registry.k8s.io" };
const hub: NodeUpstream = { registry: "docker.io" };
const prefixedHub: NodeUpstream = { registry: "docker.io", pathPrefix: "dockerhub" };

const hostLabel = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
const upstreamArb: fc.Arbitrary<NodeUpstream> = fc.record(
  {
    registry: fc.tuple(hostLabel, fc.constantFrom("io", "com", "lab")).map(([a, b]) => `${a}.${b}`),
    pathPrefix: fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8})?$/),
  },
  { requiredKeys: ["registry"] },
);
const mirrorArb: fc.Arbitrary<NodeMirror> = fc
  .record({
    host: fc.oneof(
      fc.ipV4(),
      hostLabel.map((label) => `${label}.lab`),
    ),
    port: fc.integer({ min: 1, max: 65535 }),
    tls: fc.boolean(),
    ca: fc.boolean(),
    skipVerify: fc.boolean(),
  })
  .map(({ host, port, tls, ca, skipVerify }) => ({
    endpoint: `${host}:${port}`,
    scheme: tls ? ("https" as const) : ("http" as const),
    caFile: tls && ca ? "/etc/airgap-conformance/mirror-ca.crt" : undefined,
    skipVerify: tls && skipVerify ? true : undefined,
  }));

describe("node config renderers", function () {
  describe("TOML strings", function () {
    it("read back as the same string (TOML's escapes are a subset of JSON's)", function () {
      fc.assert(
        fc.property(fc.string({ unit: "binary" }), (value) => {
          const rendered = tomlString(value);
          assert.equal(JSON.parse(rendered), value);
          // TOML forbids raw control characters other than tab, and DEL, in basic strings.
          // eslint-disable-next-line no-control-regex
          assert.doesNotMatch(rendered.slice(1, -1), /[\u0000-\u0008\u000a-\u001f\u007f]/);
          assert.doesNotMatch(rendered.slice(1, -1), /(^|[^\\])(\\\\)*"/);
        }),
      );
    });

    it("refuses lone surrogates, which are not Unicode scalar values", function () {
      assert.throws(() => tomlString("a\ud800b"), /lone surrogate/);
    });
  });

  describe("containerd hosts.toml", function () {
    it("plain http mirror for registry.k8s.io", function () {
      assertGolden("hosts.toml-http", renderContainerdHostsToml(k8s, httpMirror));
    });
    it("TLS mirror with a CA, for docker.io (whose API host is registry-1.docker.io)", function () {
      assertGolden("hosts.toml-tls-docker.io", renderContainerdHostsToml(hub, tlsMirror));
    });
    it("upstream under a path prefix: override_path with the /v2/<prefix> path", function () {
      assertGolden("hosts.toml-prefix", renderContainerdHostsToml(prefixedHub, httpMirror));
    });
    it("forbidden fallback: the mirror is the server", function () {
      assertGolden(
        "hosts.toml-no-fallback",
        renderContainerdHostsToml(
          k8s,
          { ...tlsMirror, skipVerify: true },
          { forbidFallback: true },
        ),
      );
    });

    it("always names the upstream server, one mirror host, and only the settings asked for", function () {
      fc.assert(
        fc.property(upstreamArb, mirrorArb, (upstream, mirror) => {
          const text = renderContainerdHostsToml(upstream, mirror);
          assert.ok(text.includes(`server = "${upstreamServerUrl(upstream.registry)}"\n`));
          const tables = text.match(/^\[host\."([^"]+)"\]$/gm) ?? [];
          assert.equal(tables.length, 1);
          const url = `${mirror.scheme}://${mirror.endpoint}${upstream.pathPrefix ? `/v2/${upstream.pathPrefix}` : ""}`;
          assert.equal(tables[0], `[host."${url}"]`);
          assert.equal(text.includes("override_path = true"), upstream.pathPrefix !== undefined);
          assert.equal(text.includes("skip_verify = true"), mirror.skipVerify === true);
          assert.equal(/^ {2}ca = /m.test(text), mirror.caFile !== undefined);
          assert.ok(text.includes('capabilities = ["pull", "resolve"]'));
        }),
      );
    });

    it("TLS mirror with a CA and credentials: the header goes to the mirror only", function () {
      const text = renderContainerdHostsToml(k8s, { ...tlsMirror, auth: puller });
      assertGolden("hosts.toml-tls-auth", text);
      const parsed = parseToml(text) as unknown as {
        server: string;
        header?: unknown;
        host: Record<string, { header?: Record<string, string> }>;
      };
      assert.equal(parsed.server, "https://registry.k8s.io");
      assert.equal(parsed.header, undefined, "the upstream server gets no credentials");
      assert.deepEqual(parsed.host["https://registry.lab:5443"].header, {
        Authorization: `Basic ${Buffer.from("puller:s3cret").toString("base64")}`,
      });
    });

    it("with fallback forbidden never names the upstream: the mirror is the server and the one host", function () {
      fc.assert(
        fc.property(upstreamArb, mirrorArb, (upstream, mirror) => {
          const text = renderContainerdHostsToml(upstream, mirror, { forbidFallback: true });
          const body = text.replace(/^#.*\n/gm, "");
          assert.ok(!body.includes(upstreamServerUrl(upstream.registry)));
          const parsed = parseToml(text) as { server: string; host: Record<string, unknown> };
          const url = containerdMirrorUrl(mirror, upstream);
          assert.equal(parsed.server, url);
          assert.deepEqual(Object.keys(parsed.host), [url]);
        }),
      );
    });
  });

  describe("containerd hosts.toml for the mirror's own name", function () {
    it("plain http: the mirror is the server, with its scheme", function () {
      assertGolden("hosts.toml-mirror-http", renderContainerdMirrorHostsToml(httpMirror));
    });
    it("TLS with a CA and credentials: ca and an Authorization header", function () {
      assertGolden(
        "hosts.toml-mirror-tls-auth",
        renderContainerdMirrorHostsToml({ ...tlsMirror, auth: puller }),
      );
    });
    it("parses back to the mirror's URL, its TLS settings and its credentials", function () {
      fc.assert(
        fc.property(
          mirrorArb,
          fc.option(fc.record({ username: hostLabel, password: fc.string({ minLength: 1 }) })),
          (mirror, auth) => {
            const parsed = parseToml(
              renderContainerdMirrorHostsToml({ ...mirror, auth: auth ?? undefined }),
            );
            const url = `${mirror.scheme}://${mirror.endpoint}`;
            const settings = {
              capabilities: ["pull", "resolve"],
              ...(mirror.caFile ? { ca: mirror.caFile } : {}),
              ...(mirror.skipVerify ? { skip_verify: true } : {}),
              ...(auth ? { header: { Authorization: basicAuthorization(auth) } } : {}),
            };
            // The server and the one host entry (containerd 1.6 needs a host table).
            assert.deepEqual(parsed, { server: url, ...settings, host: { [url]: settings } });
          },
        ),
      );
    });
    it("lives where containerd looks first: host_port_ for host:port, the host alone without", function () {
      assert.equal(containerdHostDirectoryName("kind-registry:5000"), "kind-registry_5000_");
      assert.equal(containerdHostDirectoryName("[fd00::5]:5000"), "[fd00::5]_5000_");
      assert.equal(containerdHostDirectoryName("registry.lab"), "registry.lab");
    });
  });

  describe("containerd config.toml", function () {
    it("version 2 (containerd 1.x) fragment and whole file", function () {
      assertGolden(
        "config.toml-v2-fragment",
        renderContainerdConfigFragment(2, "/etc/containerd/certs.d"),
      );
      assertGolden("config.toml-v2", renderContainerdConfigFile(2, "/etc/containerd/certs.d"));
    });
    it("version 3 (containerd 2.x) uses the images plugin", function () {
      assertGolden("config.toml-v3", renderContainerdConfigFile(3, "/etc/containerd/certs.d"));
      assert.match(
        renderContainerdConfigFragment(3, "/x"),
        /^\[plugins\."io\.containerd\.cri\.v1\.images"\.registry\]$/m,
      );
    });
  });

  describe("k3s/rke2 registries.yaml", function () {
    it("plain http mirror for two upstreams", function () {
      assertGolden("registries.yaml-http", renderRegistriesYaml(httpMirror, [k8s, hub]));
    });
    it("TLS with CA, auth, and a rewrite for a prefixed upstream", function () {
      assertGolden(
        "registries.yaml-tls-auth",
        renderRegistriesYaml({ ...tlsMirror, auth: { username: "puller", password: "s3cret" } }, [
          k8s,
          prefixedHub,
        ]),
      );
    });
    it("the no-fallback drop-in", function () {
      assertGolden("k3s-config-no-fallback.yaml", renderRancherNoFallbackConfig());
    });

    it("parses back (YAML 1.1, as k3s reads it) to mirrors, endpoints and configs", function () {
      fc.assert(
        fc.property(
          fc.uniqueArray(upstreamArb, { selector: (u) => u.registry, minLength: 1, maxLength: 4 }),
          mirrorArb,
          fc.option(fc.record({ username: hostLabel, password: fc.string({ minLength: 1 }) })),
          (upstreams, mirror, auth) => {
            const withAuth = { ...mirror, auth: auth ?? undefined };
            const parsed = YAML.parse(renderRegistriesYaml(withAuth, upstreams), {
              version: "1.1",
            });
            assert.deepEqual(Object.keys(parsed.mirrors), [
              mirror.endpoint,
              ...upstreams.map((u) => u.registry),
            ]);
            // The mirror's own name is pulled from itself, with its scheme.
            assert.deepEqual(parsed.mirrors[mirror.endpoint], {
              endpoint: [`${mirror.scheme}://${mirror.endpoint}`],
            });
            for (const upstream of upstreams) {
              const entry = parsed.mirrors[upstream.registry];
              assert.deepEqual(entry.endpoint, [`${mirror.scheme}://${mirror.endpoint}`]);
              assert.deepEqual(
                entry.rewrite,
                upstream.pathPrefix ? { "^(.*)$": `${upstream.pathPrefix}/$1` } : undefined,
              );
            }
            const config = parsed.configs?.[mirror.endpoint];
            assert.equal(config?.tls?.ca_file, mirror.caFile);
            assert.equal(config?.tls?.insecure_skip_verify, mirror.skipVerify);
            assert.deepEqual(config?.auth, auth ? { ...auth } : undefined);
          },
        ),
      );
    });
  });

  describe("containers-registries.conf drop-in", function () {
    it("plain http: insecure, pull-from-mirror all", function () {
      assertGolden(
        "registries.conf-http",
        renderRegistriesConfDropIn(httpMirror, [k8s, prefixedHub]),
      );
    });
    it("TLS with a CA: not insecure", function () {
      assertGolden("registries.conf-tls", renderRegistriesConfDropIn(tlsMirror, [k8s]));
    });
    it("forbidden fallback remaps each prefix to the mirror", function () {
      assertGolden(
        "registries.conf-no-fallback",
        renderRegistriesConfDropIn(httpMirror, [k8s, prefixedHub], { forbidFallback: true }),
      );
    });

    it("the mirror's own registry plus one per upstream with one mirror, insecure only for http or skipVerify", function () {
      fc.assert(
        fc.property(
          fc.uniqueArray(upstreamArb, { selector: (u) => u.registry, minLength: 1, maxLength: 4 }),
          mirrorArb,
          fc.boolean(),
          (upstreams, mirror, forbidFallback) => {
            const text = renderRegistriesConfDropIn(mirror, upstreams, { forbidFallback });
            const parsed = parseToml(text) as unknown as {
              registry: Array<{
                location: string;
                prefix?: string;
                insecure?: boolean;
                mirror?: Array<{ location: string; insecure?: boolean }>;
              }>;
            };
            const insecure = mirror.scheme === "http" || mirror.skipVerify === true;
            assert.equal(parsed.registry.length, upstreams.length + 1);
            const own = parsed.registry[0];
            assert.deepEqual(own, {
              location: mirror.endpoint,
              ...(insecure ? { insecure: true } : {}),
            });
            if (!forbidFallback) {
              assert.equal(text.match(/^\[\[registry\.mirror\]\]$/gm)?.length, upstreams.length);
              assert.equal(text.match(/^pull-from-mirror = "all"$/gm)?.length, upstreams.length);
            }
            assert.equal(
              text.match(/^insecure = true$/gm)?.length ?? 0,
              insecure ? upstreams.length + 1 : 0,
            );
            assert.ok(!text.includes("mirror-by-digest-only"));
          },
        ),
      );
    });
  });

  describe("/etc/hosts spoofing", function () {
    it("maps each upstream (Docker Hub under both names) to the mirror's IP", function () {
      assertGolden(
        "hosts-block",
        renderHostsBlock({ endpoint: "10.0.0.5:443", scheme: "https" }, [k8s, hub]),
      );
      assert.match(
        renderHostsBlock({ endpoint: "10.0.0.5", scheme: "https" }, [k8s]),
        /^10\.0\.0\.5 registry\.k8s\.io$/m,
      );
    });

    it("refuses plain http: runtimes reach upstream names over https only", function () {
      assert.throws(
        () => renderHostsBlock({ endpoint: "10.0.0.5:80", scheme: "http" }, [k8s]),
        /mirror\.scheme: hosts spoofing .* over https on port 443 only/,
      );
    });

    it("refuses any port but 443, naming mirror.endpoint", function () {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 65535 }), (port) => {
          fc.pre(port !== 443);
          assert.throws(
            () => renderHostsBlock({ endpoint: `10.0.0.5:${port}`, scheme: "https" }, [k8s]),
            (error: Error) =>
              error instanceof NodeConfigError &&
              error.arg === "mirror.endpoint" &&
              error.message.includes(`must listen on port 443 (https); '10.0.0.5:${port}'`),
          );
        }),
      );
    });

    it("refuses a host name (needs an IP) and path prefixes", function () {
      assert.throws(
        () => renderHostsBlock({ endpoint: "registry.lab:443", scheme: "https" }, [k8s]),
        /mirror\.endpoint: hosts spoofing needs the mirror's IP address/,
      );
      assert.throws(
        () => renderHostsBlock({ endpoint: "10.0.0.5:443", scheme: "https" }, [prefixedHub]),
        /upstreams: docker\.io has pathPrefix 'dockerhub'/,
      );
    });
  });

  describe("KEP-1755 local-registry-hosting", function () {
    it("is a kube-public ConfigMap with localRegistryHosting.v1", function () {
      const configMap = renderLocalRegistryHosting({
        host: "localhost:5001",
        hostFromContainerRuntime: "registry:5000",
        hostFromClusterNetwork: "registry:5000",
        help: "https://kind.sigs.k8s.io/docs/user/local-registry/",
      });
      assert.deepEqual(configMap.metadata, {
        name: "local-registry-hosting",
        namespace: "kube-public",
      });
      assertGolden("local-registry-hosting.v1.yaml", configMap.data["localRegistryHosting.v1"]);
      assert.deepEqual(YAML.parse(configMap.data["localRegistryHosting.v1"]), {
        host: "localhost:5001",
        hostFromContainerRuntime: "registry:5000",
        hostFromClusterNetwork: "registry:5000",
        help: "https://kind.sigs.k8s.io/docs/user/local-registry/",
      });
    });
    it("refuses a host with a scheme", function () {
      assert.throws(
        () => renderLocalRegistryHosting({ host: "http://localhost:5001" }),
        /localRegistryHosting\.host: 'http:\/\/localhost:5001' must be host\[:port\]/,
      );
    });
  });
});
