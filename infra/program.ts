import * as pulumi from "@pulumi/pulumi";
import { RegistryArgsError, RegistryContainer } from "../components/registry";
import { ConfigError, configKeyForRegistryArg, type StackConfig } from "./config";

/** Stack outputs of the program. */
export interface ProgramOutputs {
  registryEndpoint?: pulumi.Output<string>;
  registryUrl?: pulumi.Output<string>;
  registryContainerId?: pulumi.Output<string>;
  registryAuthEnabled?: pulumi.Output<boolean>;
  registryTlsEnabled?: pulumi.Output<boolean>;
}

/** Re-raises a component's argument error as a config error naming the stack config key. */
function withRegistryConfigKeys<T>(project: string, declare: () => T): T {
  try {
    return declare();
  } catch (error) {
    if (error instanceof RegistryArgsError) {
      const key = configKeyForRegistryArg(project, error.arg);
      if (key) throw new ConfigError(key, undefined, error.message);
    }
    throw error;
  }
}

/** Declares the environment for one stack. */
export function defineProgram(config: StackConfig, project = pulumi.getProject()): ProgramOutputs {
  if (!config.registry.enabled) return {};
  const registry = withRegistryConfigKeys(
    project,
    () =>
      new RegistryContainer("registry", {
        image: config.registry.image,
        imageTar: config.registry.imageTar,
        containerName: config.registry.containerName,
        hostPort: config.registry.hostPort,
        bindAddress: config.registry.bindAddress,
        advertisedEndpoint: config.registry.advertisedEndpoint,
        networks: config.registry.networks,
        volumeName: config.registry.volumeName,
        hostPath: config.registry.hostPath,
        retainStorage: config.registry.retainStorage,
        deleteEnabled: config.registry.deleteEnabled,
        tls: config.registry.tls,
        auth: config.registry.auth,
        restartPolicy: config.registry.restartPolicy,
        extraSettings: config.registry.extraSettings,
        dockerHost: config.dockerHost,
        checkHostPort: config.registry.checkHostPort,
      }),
  );
  return {
    registryEndpoint: registry.endpoint,
    registryUrl: pulumi.interpolate`${registry.scheme}://${registry.endpoint}`,
    registryContainerId: registry.containerId,
    registryAuthEnabled: registry.authEnabled,
    registryTlsEnabled: registry.tlsEnabled,
  };
}
