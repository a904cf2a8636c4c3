import { loadStackConfig } from "./config";
import { defineProgram } from "./program";

const outputs = defineProgram(loadStackConfig());

export const registryEndpoint = outputs.registryEndpoint;
export const registryUrl = outputs.registryUrl;
export const registryContainerId = outputs.registryContainerId;
export const registryAuthEnabled = outputs.registryAuthEnabled;
export const registryTlsEnabled = outputs.registryTlsEnabled;
