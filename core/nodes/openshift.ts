/**
 * OpenShift nodes: the machine-config operator owns every node file, so the mirror is declared
 * to the cluster instead. From OpenShift 4.13 that is an ImageDigestMirrorSet plus an
 * ImageTagMirrorSet (config.openshift.io/v1); older clusters only know ImageContentSourcePolicy
 * (operator.openshift.io/v1alpha1), which mirrors digest pulls only.
 *
 * Pure: no I/O.
 */

import * as YAML from "yaml";
import {
  NodeConfigError,
  type NodeUpstream,
  parseMirrorEndpoint,
  validateNodeUpstreams,
} from "./settings";

/** The node flavour whose registry configuration lives in the cluster, not on the nodes. */
export const openshiftFlavour = "openshift";

/** First OpenShift minor with ImageDigestMirrorSet and ImageTagMirrorSet. */
export const mirrorSetsSinceMinor = 13;

/** Name of every object we declare (cluster-scoped). */
export const openshiftMirrorObjectName = "airgap-conformance-mirror";

/** Why ImageContentSourcePolicy alone does not carry a conformance run. */
export const digestOnlyLimitation =
  "ImageContentSourcePolicy mirrors pulls by digest only (it sets mirror-by-digest-only = true): " +
  "images pulled by tag, as the e2e test images are, skip the mirror and go to the upstream " +
  "registry. On clusters older than 4.13 preload the images onto the nodes, or reference them " +
  "by the mirror's own name.";

export interface OpenShiftMirrorInput {
  /** Mirror `host[:port]` as the nodes reach it. */
  readonly endpoint: string;
  readonly scheme: "http" | "https";
  readonly upstreams: readonly NodeUpstream[];
  /** Never contact the upstream registry (NeverContactSource). */
  readonly forbidFallback?: boolean;
  /** The cluster's OpenShift version `4.N` or `4.N.P`; undefined: 4.13 or later. */
  readonly openshiftVersion?: string;
}

export interface MirrorEntry {
  source: string;
  mirrors: string[];
  mirrorSourcePolicy?: "NeverContactSource";
}

export interface OpenShiftObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, MirrorEntry[]>;
}

export interface OpenShiftMirrorPlan {
  /** "mirror-sets" (4.13+) or "content-source-policy" (older). */
  readonly kind: "mirror-sets" | "content-source-policy";
  readonly objects: readonly OpenShiftObject[];
  /** What the objects cannot do, for the user (empty when nothing is left out). */
  readonly warnings: readonly string[];
}

const versionPattern = /^4\.(\d{1,3})(?:\.\d{1,4})?$/;

/** The minor of an OpenShift 4 version; the error names the argument and the form wanted. */
export function openshiftMinor(version: string, arg = "openshiftVersion"): number {
  const match = versionPattern.exec(version);
  if (!match) {
    throw new NodeConfigError(arg, `'${version}' is not an OpenShift 4 version; use 4.N or 4.N.P`);
  }
  return Number(match[1]);
}

/** Where an upstream's repositories live in the mirror, as OpenShift names a mirror location. */
function mirrorLocation(endpoint: string, upstream: NodeUpstream): string {
  return upstream.pathPrefix === undefined ? endpoint : `${endpoint}/${upstream.pathPrefix}`;
}

const labels = { "app.kubernetes.io/managed-by": "airgap-conformance" };

/**
 * The cluster objects that send each upstream registry to the mirror. Validates the input
 * first; an error names it and says what is allowed.
 */
export function planOpenShiftMirror(input: OpenShiftMirrorInput): OpenShiftMirrorPlan {
  const upstreams = validateNodeUpstreams(input.upstreams);
  parseMirrorEndpoint(input.endpoint, input.scheme);
  const entries: MirrorEntry[] = upstreams.map((upstream) => ({
    source: upstream.registry,
    mirrors: [mirrorLocation(input.endpoint, upstream)],
    ...(input.forbidFallback ? { mirrorSourcePolicy: "NeverContactSource" as const } : {}),
  }));
  const warnings: string[] = [];
  if (input.scheme === "http") {
    warnings.push(
      `the mirror ${input.endpoint} is plain http: OpenShift nodes pull from it only once it is listed in the cluster's image.config.openshift.io/cluster spec.registrySources.insecureRegistries`,
    );
  }
  const minor =
    input.openshiftVersion === undefined ? undefined : openshiftMinor(input.openshiftVersion);
  if (minor !== undefined && minor < mirrorSetsSinceMinor) {
    if (input.forbidFallback) {
      warnings.push(
        "ImageContentSourcePolicy cannot forbid contacting the upstream registry; nodesForbidFallback has no effect before OpenShift 4.13",
      );
    }
    return {
      kind: "content-source-policy",
      objects: [
        {
          apiVersion: "operator.openshift.io/v1alpha1",
          kind: "ImageContentSourcePolicy",
          metadata: { name: openshiftMirrorObjectName, labels },
          spec: {
            repositoryDigestMirrors: entries.map(({ source, mirrors }) => ({ source, mirrors })),
          },
        },
      ],
      warnings: [digestOnlyLimitation, ...warnings],
    };
  }
  return {
    kind: "mirror-sets",
    objects: [
      {
        apiVersion: "config.openshift.io/v1",
        kind: "ImageDigestMirrorSet",
        metadata: { name: openshiftMirrorObjectName, labels },
        spec: { imageDigestMirrors: entries },
      },
      {
        apiVersion: "config.openshift.io/v1",
        kind: "ImageTagMirrorSet",
        metadata: { name: openshiftMirrorObjectName, labels },
        spec: { imageTagMirrors: entries },
      },
    ],
    warnings,
  };
}

/**
 * The plan's objects as one multi-document YAML file for `oc apply -f`, each warning a comment
 * at the top so whoever applies it by hand reads it first.
 */
export function renderOpenShiftManifests(plan: OpenShiftMirrorPlan): string {
  const header = plan.warnings.map((warning) => `# Note: ${warning}\n`).join("");
  return header + plan.objects.map((object) => `---\n${YAML.stringify(object)}`).join("");
}
