import * as path from "node:path";
import { defaultKubeconfig } from "../components/conformance";
import { detectKubernetesVersion } from "../components/conformance/detect-version";
import { loadStackConfig } from "./config";
import { asUserError } from "./errors";
import { defineProgram } from "./program";

/**
 * The program. Async only for `kubernetesVersion: auto`: the version picks the image catalog and
 * the conformance tag, so it is asked of the cluster before anything is declared. Config errors
 * end the run with their message alone (no stack trace).
 */
export = async () => {
  try {
    const config = loadStackConfig();
    if (config.kubernetesVersion === "auto") {
      config.kubernetesVersion = await detectKubernetesVersion("kubectl", {
        kubeconfig: path.resolve(config.cluster.kubeconfig ?? defaultKubeconfig()),
        context: config.cluster.context,
      });
    }
    return defineProgram(config);
  } catch (error) {
    throw asUserError(error);
  }
};
