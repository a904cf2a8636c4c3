import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  ACTION_ENV,
  ConformanceArgsError,
  actionEnvironment,
  actionScript,
  conformanceObjects,
  dockerConfigJson,
  parseReportOutput,
  planConformanceRun,
  planJson,
  resolveKubeContext,
  withSpecPodName,
  type ConformanceObjects,
  type ConformanceRunInput,
  type ConformanceRunPlan,
  type MirrorAccess,
  type Toleration,
  type Verdict,
} from "../../core/conformance";
import { withoutPropertyStackTraces } from "../../core/runtime/stack-traces";
import { detectKubernetesVersion } from "./detect-version";

export {
  ConformanceArgsError,
  planConformanceRun,
  conformanceObjects,
} from "../../core/conformance";
export type { ConformanceRunPlan, Toleration, Verdict } from "../../core/conformance";

/** Arguments of {@link ConformanceRun}. Structural values are plain so they are checked at preview. */
export interface ConformanceRunArgs {
  /** Kubeconfig file. Default: the first path in $KUBECONFIG, else `~/.kube/config`. */
  readonly kubeconfig?: string;
  /** Context in the kubeconfig. Default: its current-context. */
  readonly context?: string;
  /**
   * The cluster's Kubernetes version, e.g. "1.31.4" (prerelease and build suffixes are dropped),
   * or "auto" to ask the cluster with `kubectl version` at preview. Picks the conformance image
   * tag and the suite's image list.
   */
  readonly kubernetesVersion: string;
  /** The internal mirror the cluster pulls from. */
  readonly mirror: {
    /** `host[:port]` as nodes reach it: the pod's images are named with it. */
    readonly endpoint: string;
    /** Per-upstream path prefixes in the mirror, exactly as given to ImageMirror. */
    readonly upstreamPrefixes?: Record<string, string>;
    /** How the machine running Pulumi reaches the mirror for preflight. Default: endpoint over https. */
    readonly access?: {
      readonly host?: string;
      readonly scheme?: "http" | "https";
      /** PEM CA that signed the mirror's certificate. */
      readonly caFile?: string;
      readonly insecureSkipVerify?: boolean;
    };
    /** User of an authenticated mirror; with `password`, a pull secret is created. */
    readonly username?: string;
    /** Password of an authenticated mirror; kept as a Pulumi secret. */
    readonly password?: pulumi.Input<string>;
  };
  /** The KUBE_TEST_REPO_LIST document (core/images renderRepoList over ImageMirror's mapping). */
  readonly repoList: pulumi.Input<string>;
  /**
   * Digest the mirror holds for each image, keyed by canonical upstream reference (ImageMirror's
   * record). Preflight requires these digests; without an entry any digest is accepted.
   */
  readonly imageDigests?: pulumi.Input<Record<string, string>>;
  /** Namespace of the run. Default `conformance`; it must not exist yet. */
  readonly namespace?: string;
  /** Change to run the suite again on the next `up` (only the run's pod and commands are replaced). Default "1". */
  readonly runId?: string;
  /** Ginkgo focus (Go regular expression). Default `\[Conformance\]`. */
  readonly focus?: string;
  /** Ginkgo skip (Go regular expression). Default none. */
  readonly skip?: string;
  /** Ginkgo processes (`--procs`). Default 1. */
  readonly parallelism?: number;
  /** List the specs without running them. Default false. */
  readonly dryRun?: boolean;
  /** Further e2e.test flags, one item per flag, e.g. `["--allowed-not-ready-nodes=1"]`. */
  readonly extraArgs?: string[];
  /** Further ginkgo flags, one item per flag, e.g. `["--flake-attempts=2"]`. */
  readonly ginkgoArgs?: string[];
  /** e2e.test klog verbosity (`--v`), 0-10. Default: the image's. */
  readonly verbosity?: number;
  /** Tolerations of the run pod. Default: every taint (conformance must land on any node). */
  readonly tolerations?: Toleration[];
  /** Conformance image (upstream name). Default `registry.k8s.io/conformance:v<version>`. */
  readonly conformanceImage?: string;
  /** Image of the container that keeps results readable. Default the e2e busybox. */
  readonly resultsImage?: string;
  /** Images the tests use beyond the catalog list; preflight checks them too. */
  readonly extraImages?: string[];
  /** `e2e.test --list-images` outputs to use with or instead of the shipped catalog. */
  readonly imageListFiles?: string[];
  /**
   * The suite's images as the conformance image's own `e2e.test --list-images` printed them;
   * when given, the shipped catalog is not used.
   */
  readonly e2eImages?: string[];
  /** Where results go: `<resultsDirectory>/<stack>/<runId>/`. Default `./conformance-results`. */
  readonly resultsDirectory?: string;
  /** Fail `pulumi up` when a spec or a suite node fails. Default true; results are kept either way. */
  readonly failOnTestFailures?: boolean;
  /** Fail `pulumi up` when no spec ran (a focus that matches nothing). Default true. */
  readonly failOnNoTests?: boolean;
  /** The whole run's limit. Default 360 minutes. */
  readonly timeoutMinutes?: number;
  /** Limit for the pod to start (scheduling, image pulls). Default 10 minutes. */
  readonly startupTimeoutMinutes?: number;
  /** How often progress is reported. Default 30 seconds. */
  readonly progressIntervalSeconds?: number;
  /** How often the pod is polled. Default 10 seconds. */
  readonly pollIntervalSeconds?: number;
  /** kubectl binary. Default `kubectl` from PATH. */
  readonly kubectl?: string;
}

/** The kubeconfig kubectl would pick: first of $KUBECONFIG, else ~/.kube/config. */
export function defaultKubeconfig(): string {
  const fromEnv = (process.env.KUBECONFIG ?? "").split(path.delimiter).find((entry) => entry);
  return fromEnv ?? path.join(os.homedir(), ".kube", "config");
}

function readArgFile(arg: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new ConformanceArgsError(arg, `cannot read '${file}': ${(error as Error).message}`);
  }
}

/** Fails at preview when the results cannot be written (the nearest existing parent decides). */
function assertWritableDirectory(directory: string): void {
  let existing = directory;
  while (!existsSync(existing) && path.dirname(existing) !== existing) {
    existing = path.dirname(existing);
  }
  let problem: string | undefined;
  try {
    if (!statSync(existing).isDirectory()) problem = `${existing} is not a directory`;
    else accessSync(existing, constants.W_OK);
  } catch {
    problem = `${existing} is not writable`;
  }
  if (problem !== undefined) {
    throw new ConformanceArgsError(
      "resultsDirectory",
      `${directory} cannot be created: ${problem}; choose a writable directory`,
    );
  }
}

function sha256(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex");
}

/**
 * How the actions are started, without any absolute path into the project or node_modules (the
 * environment is stored in state, and destroy runs `cleanup` from it). Pulumi starts the
 * command provider in the same working directory as the program, so the action is named
 * relative to it, node comes from PATH (Pulumi's Node.js host needs it there too) and ts-node is
 * resolved from the project: destroy works after the project directory has moved.
 */
export function actionLocation(
  workingDirectory = process.cwd(),
  moduleFile = __filename,
): { nodeBinary: string; actionEntry: string; loader?: string } {
  const extension = path.extname(moduleFile);
  const entry = path.join(path.dirname(moduleFile), "actions", `main${extension}`);
  const relative = path.relative(workingDirectory, entry);
  const actionEntry = relative.startsWith("..") ? relative : `./${relative}`;
  return extension === ".ts"
    ? { nodeBinary: "node", actionEntry, loader: "ts-node/register/transpile-only" }
    : { nodeBinary: "node", actionEntry };
}

/** Arguments checked and files read: what the plan and the actions need besides the args. */
interface RunSettings {
  readonly kubeconfig: string;
  readonly context: string | undefined;
  readonly authenticated: boolean;
  readonly resultsRoot: string;
  readonly imageListFiles: Array<{ name: string; text: string }>;
  readonly mirrorAccess: MirrorAccess;
}

/** Reads and checks what the arguments point at, so bad input fails before anything is declared. */
function resolveSettings(args: ConformanceRunArgs): RunSettings {
  const kubeconfig = path.resolve(args.kubeconfig ?? defaultKubeconfig());
  const context = resolveKubeContext(
    readArgFile("kubeconfig", kubeconfig),
    kubeconfig,
    args.context,
  );
  if (args.mirror.password !== undefined && args.mirror.username === undefined) {
    throw new ConformanceArgsError("mirror.username", "a password was given without a username");
  }
  if (args.mirror.username !== undefined && args.mirror.password === undefined) {
    throw new ConformanceArgsError(
      "mirror.password",
      `user ${args.mirror.username} needs a password`,
    );
  }
  const authenticated = args.mirror.password !== undefined;
  const resultsRoot = path.resolve(args.resultsDirectory ?? "conformance-results");
  assertWritableDirectory(resultsRoot);
  const imageListFiles = (args.imageListFiles ?? []).map((file, index) => ({
    name: file,
    text: readArgFile(`imageListFiles[${index}]`, file),
  }));
  const access = args.mirror.access ?? {};
  if (access.caFile !== undefined) readArgFile("mirror.access.caFile", access.caFile);
  const mirrorAccess: MirrorAccess = {
    host: access.host ?? args.mirror.endpoint,
    scheme: access.scheme ?? "https",
    ...(access.caFile === undefined ? {} : { caFile: path.resolve(access.caFile) }),
    ...(access.insecureSkipVerify ? { insecureSkipVerify: true } : {}),
    ...(args.mirror.username === undefined ? {} : { username: args.mirror.username }),
  };

  return { kubeconfig, context, authenticated, resultsRoot, imageListFiles, mirrorAccess };
}

/** The action's environment: the plan and how to reach the mirror, plus per-action values. */
function actionEnvironmentFor(
  plan: pulumi.Output<ConformanceRunPlan>,
  mirrorAccess: MirrorAccess,
  extra: Record<string, pulumi.Input<string>>,
) {
  return {
    ...actionEnvironment<pulumi.Input<string>>({
      planJson: plan.apply(planJson),
      mirror: mirrorAccess,
      ...actionLocation(),
    }),
    ...extra,
  };
}

/**
 * A Kubernetes conformance run inside an air gap: the suite runs in the cluster from the mirror,
 * `pulumi up` waits for it and brings back the verdict; the results stay on disk.
 *
 * Declares a namespace (Pod Security "restricted"), a service account with a cluster role, the
 * KUBE_TEST_REPO_LIST config map, an optional pull secret, and the run pod; a preflight command
 * checks every image in the mirror before the pod exists, and a run command waits for the pod,
 * reports progress and downloads `e2e.log` and `junit_01.xml`.
 */
export class ConformanceRun extends pulumi.ComponentResource {
  /** passed, failed, no-tests, dry-run; "unknown" before the run has reported (preview). */
  public readonly verdict: pulumi.Output<Verdict | "unknown">;
  public readonly passed: pulumi.Output<number>;
  public readonly failed: pulumi.Output<number>;
  public readonly skipped: pulumi.Output<number>;
  public readonly total: pulumi.Output<number>;
  public readonly durationSeconds: pulumi.Output<number>;
  public readonly failedTests: pulumi.Output<string[]>;
  /**
   * Each failed spec and failed suite node with the first lines of its failure message
   * (`state` is Ginkgo's: failed, timedout, panicked, ...).
   */
  public readonly failures: pulumi.Output<Array<{ name: string; state: string; message: string }>>;
  /** Directory holding e2e.log, junit_01.xml and report.json of this run. */
  public readonly resultsDirectory: pulumi.Output<string>;
  /** The conformance image as the pod pulls it (from the mirror). */
  public readonly conformanceImage: pulumi.Output<string>;
  public readonly kubernetesVersion: pulumi.Output<string>;
  public readonly namespace: pulumi.Output<string>;
  public readonly podName: pulumi.Output<string>;

  constructor(name: string, args: ConformanceRunArgs, opts?: pulumi.ComponentResourceOptions) {
    super("airgap:conformance:ConformanceRun", name, {}, opts);

    const settings = resolveSettings(args);
    const plan = this.planRun(name, args, settings);
    // Actions and objects in the order they run: preflight, the objects with the pod last, the run.
    const { objects, run } = withoutPropertyStackTraces(() => {
      const preflight = this.declarePreflight(name, args, plan, settings, opts);
      const objects = this.declareObjects(name, args, plan, settings, preflight);
      return { objects, run: this.declareRun(name, args, plan, settings, objects) };
    });
    const outputs = runOutputs(plan, objects, run);

    this.verdict = outputs.verdict;
    this.passed = outputs.passed;
    this.failed = outputs.failed;
    this.skipped = outputs.skipped;
    this.total = outputs.total;
    this.durationSeconds = outputs.durationSeconds;
    this.failedTests = outputs.failedTests;
    this.failures = outputs.failures;
    this.resultsDirectory = outputs.resultsDirectory;
    this.conformanceImage = outputs.conformanceImage;
    this.kubernetesVersion = outputs.kubernetesVersion;
    this.namespace = outputs.namespace;
    this.podName = outputs.podName;
    this.registerOutputs(outputs);
  }

  /**
   * Every decision about the run (core/conformance). An explicit version is planned right here,
   * so bad input fails before anything is declared; "auto" asks the cluster first.
   */
  private planRun(
    name: string,
    args: ConformanceRunArgs,
    settings: RunSettings,
  ): pulumi.Output<ConformanceRunPlan> {
    const { kubeconfig, context, authenticated, resultsRoot, imageListFiles } = settings;
    const planInput = (kubernetesVersion: string, detected: boolean): ConformanceRunInput => ({
      kubernetesVersion,
      kubernetesVersionSource: detected ? "kubernetesVersion (auto)" : "kubernetesVersion",
      mirror: {
        endpoint: args.mirror.endpoint,
        upstreamPrefixes: args.mirror.upstreamPrefixes,
        authenticated,
      },
      namespace: args.namespace,
      runId: args.runId,
      focus: args.focus,
      skip: args.skip,
      parallelism: args.parallelism,
      dryRun: args.dryRun,
      extraArgs: args.extraArgs,
      ginkgoArgs: args.ginkgoArgs,
      verbosity: args.verbosity,
      tolerations: args.tolerations,
      conformanceImage: args.conformanceImage,
      resultsImage: args.resultsImage,
      extraImages: args.extraImages,
      imageListFiles,
      e2eImages: args.e2eImages,
      kubeconfig,
      context,
      kubectl: args.kubectl,
      resultsDirectory: resultsRoot,
      stack: pulumi.getStack(),
      timeoutMinutes: args.timeoutMinutes,
      startupTimeoutMinutes: args.startupTimeoutMinutes,
      progressIntervalSeconds: args.progressIntervalSeconds,
      pollIntervalSeconds: args.pollIntervalSeconds,
      failOnTestFailures: args.failOnTestFailures,
      failOnNoTests: args.failOnNoTests,
    });
    const warnAbout = (plan: ConformanceRunPlan) => {
      for (const warning of plan.warnings)
        pulumi.log.warn(`ConformanceRun ${name}: ${warning}`, this);
      return plan;
    };
    // The pod is named after its spec, so a replaced pod never meets its terminating predecessor.
    return args.kubernetesVersion === "auto"
      ? pulumi
          .output(detectKubernetesVersion(args.kubectl ?? "kubectl", { kubeconfig, context }))
          .apply((version) =>
            withSpecPodName(warnAbout(planConformanceRun(planInput(version, true)))),
          )
      : pulumi.output(
          withSpecPodName(warnAbout(planConformanceRun(planInput(args.kubernetesVersion, false)))),
        );
  }

  /** The preflight action: every image of the plan in the mirror before anything runs. */
  private declarePreflight(
    name: string,
    args: ConformanceRunArgs,
    plan: pulumi.Output<ConformanceRunPlan>,
    settings: RunSettings,
    opts: pulumi.ComponentResourceOptions | undefined,
  ): command.local.Command {
    const password = args.mirror.password;
    return new command.local.Command(
      `${name}-preflight`,
      {
        create: actionScript("preflight"),
        environment: actionEnvironmentFor(plan, settings.mirrorAccess, {
          [ACTION_ENV.digests]: pulumi
            .output(args.imageDigests ?? {})
            .apply((d) => JSON.stringify(d)),
          ...(password === undefined ? {} : { [ACTION_ENV.password]: pulumi.secret(password) }),
        }),
        // Checked again for every run and whenever the set of images changes.
        triggers: [plan.apply((p) => p.runId), plan.apply((p) => sha256(p.images))],
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
  }

  /**
   * The run's objects in the cluster: namespace, service account and role, repo list, pull
   * secret, and the run pod once preflight has passed.
   */
  private declareObjects(
    name: string,
    args: ConformanceRunArgs,
    plan: pulumi.Output<ConformanceRunPlan>,
    settings: RunSettings,
    preflight: command.local.Command,
  ): RunObjects {
    const { kubeconfig, context } = settings;
    const objects = plan.apply((p) =>
      // Data fields are placeholders here: the real values are Inputs set on the resources below.
      conformanceObjects<string>(p, { repoList: "", dockerConfigJson: "" }),
    );

    const provider = new k8s.Provider(
      `${name}-k8s`,
      { kubeconfig, context, enableServerSideApply: true },
      { parent: this },
    );
    const childOpts = { parent: this, provider };

    const namespace = new k8s.core.v1.Namespace(
      `${name}-namespace`,
      { metadata: objects.apply((o) => o.namespace.metadata) },
      childOpts,
    );
    // Namespaced objects take the namespace from the resource, so they are created after it.
    const inNamespace = <T extends { namespace?: string }>(metadata: pulumi.Output<T>) =>
      pulumi
        .all([metadata, namespace.metadata.name])
        .apply(([meta, ns]) => ({ ...meta, namespace: ns }));

    const serviceAccount = new k8s.core.v1.ServiceAccount(
      `${name}-service-account`,
      { metadata: inNamespace(objects.apply((o) => o.serviceAccount.metadata)) },
      childOpts,
    );
    const clusterRole = new k8s.rbac.v1.ClusterRole(
      `${name}-cluster-role`,
      {
        metadata: objects.apply((o) => o.clusterRole.metadata),
        rules: objects.apply((o) => o.clusterRole.rules),
      },
      childOpts,
    );
    const clusterRoleBinding = new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-cluster-role-binding`,
      {
        metadata: objects.apply((o) => o.clusterRoleBinding.metadata),
        roleRef: pulumi
          .all([objects, clusterRole.metadata.name])
          .apply(([o, roleName]) => ({ ...o.clusterRoleBinding.roleRef, name: roleName })),
        subjects: pulumi
          .all([objects, serviceAccount.metadata.name])
          .apply(([o, account]) =>
            o.clusterRoleBinding.subjects.map((subject) => ({ ...subject, name: account })),
          ),
      },
      childOpts,
    );
    const repoListConfigMap = new k8s.core.v1.ConfigMap(
      `${name}-repo-list`,
      {
        metadata: inNamespace(objects.apply((o) => o.repoListConfigMap.metadata)),
        data: { "repo-list.yaml": args.repoList },
      },
      childOpts,
    );
    const password = args.mirror.password;
    const pullSecret =
      password === undefined
        ? undefined
        : new k8s.core.v1.Secret(
            `${name}-pull-secret`,
            {
              metadata: inNamespace(objects.apply((o) => o.pullSecret!.metadata)),
              type: "kubernetes.io/dockerconfigjson",
              stringData: {
                ".dockerconfigjson": pulumi.secret(
                  pulumi
                    .output(password)
                    .apply((pw) =>
                      dockerConfigJson(args.mirror.endpoint, args.mirror.username!, pw),
                    ),
                ),
              },
            },
            childOpts,
          );

    const pod = new k8s.core.v1.Pod(
      `${name}-pod`,
      {
        metadata: inNamespace(objects.apply((o) => o.pod.metadata)),
        spec: objects.apply((o) => o.pod.spec),
      },
      {
        ...childOpts,
        dependsOn: [
          preflight,
          repoListConfigMap,
          clusterRoleBinding,
          serviceAccount,
          ...(pullSecret ? [pullSecret] : []),
        ],
      },
    );

    return {
      manifests: objects,
      namespace,
      serviceAccount,
      clusterRole,
      clusterRoleBinding,
      repoListConfigMap,
      pullSecret,
      pod,
    };
  }

  /** The run action: waits for the pod, reports progress, collects the results; cleans up on destroy. */
  private declareRun(
    name: string,
    args: ConformanceRunArgs,
    plan: pulumi.Output<ConformanceRunPlan>,
    settings: RunSettings,
    { manifests: objects, pod }: RunObjects,
  ): command.local.Command {
    return new command.local.Command(
      `${name}-run`,
      {
        create: actionScript("run"),
        delete: actionScript("cleanup"),
        environment: actionEnvironmentFor(plan, settings.mirrorAccess, {}),
        // A new pod (run id, spec or repo list changed) is a new run; anything else re-collects.
        triggers: [
          plan.apply((p) => p.runId),
          pulumi
            .all([objects, args.repoList])
            .apply(([o, repoList]) => sha256({ pod: o.pod, repoList })),
        ],
      },
      { parent: this, dependsOn: [pod] },
    );
  }
}

/** The objects of a run as declared. */
interface RunObjects {
  /** The manifests the objects were declared from (core/conformance conformanceObjects). */
  readonly manifests: pulumi.Output<ConformanceObjects<string>>;
  readonly namespace: k8s.core.v1.Namespace;
  readonly serviceAccount: k8s.core.v1.ServiceAccount;
  readonly clusterRole: k8s.rbac.v1.ClusterRole;
  readonly clusterRoleBinding: k8s.rbac.v1.ClusterRoleBinding;
  readonly repoListConfigMap: k8s.core.v1.ConfigMap;
  readonly pullSecret: k8s.core.v1.Secret | undefined;
  readonly pod: k8s.core.v1.Pod;
}

/** The component's outputs: the run's report (once it has reported) and where things are. */
function runOutputs(
  plan: pulumi.Output<ConformanceRunPlan>,
  objects: RunObjects,
  run: command.local.Command,
) {
  const report = run.stdout.apply((stdout) => parseReportOutput(stdout ?? ""));
  return {
    verdict: report.apply((r): Verdict | "unknown" => r?.verdict ?? "unknown"),
    passed: report.apply((r) => r?.passed ?? 0),
    failed: report.apply((r) => r?.failed ?? 0),
    skipped: report.apply((r) => r?.skipped ?? 0),
    total: report.apply((r) => r?.total ?? 0),
    durationSeconds: report.apply((r) => r?.durationSeconds ?? 0),
    failedTests: report.apply((r) => [...(r?.failedTests ?? [])]),
    failures: report.apply((r) =>
      [...(r?.suiteFailures ?? []), ...(r?.failures ?? [])].map((f) => ({ ...f })),
    ),
    resultsDirectory: plan.apply((p) => p.resultsDirectory),
    conformanceImage: plan.apply((p) => p.conformanceImage.mirrorReference),
    kubernetesVersion: plan.apply((p) => p.kubernetesVersion),
    namespace: objects.namespace.metadata.name,
    podName: objects.pod.metadata.name,
  };
}
