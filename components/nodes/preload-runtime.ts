import type * as pulumi from "@pulumi/pulumi";
import { existsSync, statSync } from "node:fs";
import {
  removePreloadTarball,
  writePreloadTarball,
  type PreloadTarball,
  type PreloadTarballRequest,
} from "./actions/preload-tarball";

/**
 * What the preload tarball's dynamic provider does (preload-provider.ts loads it from the
 * project when the engine calls). The tarball is rewritten only when its inputs change or the
 * file is gone; it is deterministic, so a rewrite of the same archive gives the same sha256
 * and the nodes are left alone.
 */

export type PreloadTarballInputs = PreloadTarballRequest;
export type PreloadTarballOutputs = PreloadTarballInputs & PreloadTarball;

function sameInputs(olds: PreloadTarballInputs, news: PreloadTarballInputs): boolean {
  const key = (inputs: PreloadTarballInputs) =>
    JSON.stringify([
      inputs.archiveDirectory,
      inputs.images.map((image) => [image.source, image.digest]),
      inputs.platform,
      inputs.outputDirectory,
    ]);
  return key(olds) === key(news);
}

/** Whether the tarball recorded in state is still on disk, whole. */
function tarballPresent(outputs: Partial<PreloadTarballOutputs>): boolean {
  return (
    typeof outputs.file === "string" &&
    existsSync(outputs.file) &&
    statSync(outputs.file).size === outputs.size
  );
}

export const preloadTarballRuntime: pulumi.dynamic.ResourceProvider = {
  async create(inputs: PreloadTarballInputs) {
    const tarball = await writePreloadTarball(inputs);
    return { id: "preload-tarball", outs: { ...inputs, ...tarball } };
  },
  async diff(_id, olds: PreloadTarballOutputs, news: PreloadTarballInputs) {
    const changes = !sameInputs(olds, news) || !tarballPresent(olds);
    return { changes, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id, olds: PreloadTarballOutputs, news: PreloadTarballInputs) {
    const tarball = await writePreloadTarball(news);
    // The file name carries the sha256: an unchanged tarball is the same file.
    if (olds.file && olds.file !== tarball.file) removePreloadTarball(olds.file);
    return { outs: { ...news, ...tarball } };
  },
  async delete(_id, outputs: PreloadTarballOutputs) {
    if (outputs.file) removePreloadTarball(outputs.file);
  },
};
