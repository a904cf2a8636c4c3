import {
  ConformanceArgsError,
  kubectlVersionArgs,
  serverVersionFrom,
  type KubectlTarget,
} from "../../core/conformance";
import { kubectlError, runKubectl } from "./actions/kubectl";

/**
 * The cluster's version as `kubectl version -o json` reports it (`kubernetesVersion: auto`),
 * e.g. "v1.31.4+k3s1". Runs at preview: the image tag and the image list depend on it.
 *
 * @throws ConformanceArgsError naming kubernetesVersion when no API server answers.
 */
export async function detectKubernetesVersion(
  kubectl: string,
  target: KubectlTarget,
): Promise<string> {
  let result;
  try {
    result = await runKubectl(kubectl, kubectlVersionArgs(target));
  } catch (error) {
    throw new ConformanceArgsError(
      "kubernetesVersion",
      `"auto" needs kubectl: ${(error as Error).message}`,
    );
  }
  return serverVersionFrom(result.stdout, result.code === 0 ? "" : kubectlError(result));
}
