import * as path from "node:path";
import { defaultKubeconfig } from "../components/conformance";
import { detectKubernetesVersion } from "../components/conformance/detect-version";
import { loadStackConfig } from "./config";
import { e2eImagesForStack } from "./e2e-images";
import { asUserError } from "./errors";
import { defineProgram } from "./program";

/**
 * The program. Async for what is asked before anything is declared: the cluster's version for
 * `kubernetesVersion: auto` (it picks the conformance tag), and the suite's image list from the
 * conformance image's own e2e.test. Config errors
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
    // The suite's exact image list, read from the conformance image before anything is declared.
    const e2eImages = await e2eImagesForStack(config);
    return defineProgram(config, undefined, e2eImages);
  } catch (error) {
    throw asUserError(error);
  }
};
