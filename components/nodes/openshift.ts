import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  NodeConfigError,
  type NodeUpstream,
  type OpenShiftMirrorPlan,
  planOpenShiftMirror,
} from "../../core/nodes";
import { NodeRegistryArgsError } from "./spec";

/** Arguments of {@link OpenShiftMirrorConfig}. */
export interface OpenShiftMirrorConfigArgs {
  /** Path of the cluster's kubeconfig. Default: what kubectl would use. */
  readonly kubeconfig?: string;
  /** Context in the kubeconfig. Default: its current-context. */
  readonly context?: string;
  /** The mirror as the nodes reach it: `host[:port]` without scheme, and its scheme. */
  readonly mirror: { readonly endpoint: string; readonly scheme?: "http" | "https" };
  /** Upstream registries sent to the mirror, each with its path prefix in the mirror if any. */
  readonly upstreams: NodeUpstream[];
  /** Never contact the upstream registry (`mirrorSourcePolicy: NeverContactSource`). */
  readonly forbidFallback?: boolean;
  /**
   * The cluster's OpenShift version (`4.N` or `4.N.P`). Before 4.13 an ImageContentSourcePolicy
   * is declared instead of the mirror sets. Default: 4.13 or later.
   */
  readonly openshiftVersion?: string;
}

/** Plans the objects; an invalid argument raises NodeRegistryArgsError naming it. */
export function planOpenShiftMirrorArgs(args: OpenShiftMirrorConfigArgs): OpenShiftMirrorPlan {
  try {
    return planOpenShiftMirror({
      endpoint: args.mirror?.endpoint,
      scheme: args.mirror?.scheme ?? "http",
      upstreams: args.upstreams ?? [],
      forbidFallback: args.forbidFallback,
      openshiftVersion: args.openshiftVersion,
    });
  } catch (error) {
    if (!(error instanceof NodeConfigError)) throw error;
    throw new NodeRegistryArgsError(error.arg, error.message.slice(error.arg.length + 2));
  }
}

/**
 * Sends an OpenShift cluster's image pulls to the mirror without touching a node file (the
 * machine-config operator owns them): an ImageDigestMirrorSet and an ImageTagMirrorSet, or an
 * ImageContentSourcePolicy before 4.13. The operator rolls the change out to every node.
 */
export class OpenShiftMirrorConfig extends pulumi.ComponentResource {
  /** `apiVersion kind/name` of each object declared. */
  public readonly objects: pulumi.Output<string[]>;
  /** What the objects cannot do (e.g. digest-only mirroring before 4.13). */
  public readonly warnings: pulumi.Output<string[]>;

  constructor(
    name: string,
    args: OpenShiftMirrorConfigArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("airgap:nodes:OpenShiftMirrorConfig", name, {}, opts);
    const plan = planOpenShiftMirrorArgs(args);
    for (const warning of plan.warnings) pulumi.log.warn(`${name}: ${warning}`, this);

    const provider = new k8s.Provider(
      `${name}-k8s`,
      { kubeconfig: args.kubeconfig, context: args.context, enableServerSideApply: true },
      { parent: this },
    );
    const resources = plan.objects.map(
      (object) =>
        new k8s.apiextensions.CustomResource(
          `${name}-${object.kind.toLowerCase()}`,
          {
            apiVersion: object.apiVersion,
            kind: object.kind,
            metadata: object.metadata,
            spec: object.spec,
          },
          // Children do not inherit the component's dependsOn: declare once the images are in.
          { parent: this, provider, dependsOn: opts?.dependsOn },
        ),
    );
    this.objects = pulumi.all(
      resources.map(
        (resource, index) =>
          pulumi.interpolate`${plan.objects[index].apiVersion} ${plan.objects[index].kind}/${resource.metadata.name}`,
      ),
    );
    this.warnings = pulumi.output([...plan.warnings]);
    this.registerOutputs({ objects: this.objects, warnings: this.warnings });
  }
}
