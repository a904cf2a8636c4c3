import { loadStackConfig } from "./config";
import { defineProgram } from "./program";

const outputs = defineProgram(loadStackConfig());

export const registryEndpoint = outputs.registryEndpoint;
export const registryUrl = outputs.registryUrl;
export const registryContainerId = outputs.registryContainerId;
export const registryAuthEnabled = outputs.registryAuthEnabled;
export const registryTlsEnabled = outputs.registryTlsEnabled;
export const imageCount = outputs.imageCount;
export const imageMapping = outputs.imageMapping;
export const imageLock = outputs.imageLock;
export const repoList = outputs.repoList;
export const upstreamRegistries = outputs.upstreamRegistries;
export const unmirrorableImages = outputs.unmirrorableImages;
export const imageCatalog = outputs.imageCatalog;
