/**
 * Preloading: the image set put straight into a node's image store, under the upstream names
 * the pods use, so the node needs no registry configuration at all (OpenShift without mirror
 * objects, nodes whose files may not be touched). The node pulls each image from the mirror by
 * its mirror name and tags it with its upstream name; it records what it added, and `delete`
 * removes exactly that, never an image the node had before.
 *
 * Pure: no I/O.
 */

import { isValidNodeName, shellQuote } from "./script";
import { NodeConfigError, isSafeNodePath, parseMirrorEndpoint } from "./settings";
import { tryParseImageReference } from "../images/reference";

/** Image stores a node can be preloaded into. */
export const preloadStores = ["containerd", "podman"] as const;
export type PreloadStore = (typeof preloadStores)[number];

/** Which store a node's runtime flavour keeps its images in. */
export function preloadStoreFor(runtime: string): PreloadStore | undefined {
  if (runtime === "containerd" || runtime === "containerd2") return "containerd";
  if (runtime === "podman" || runtime === "crio") return "podman";
  return undefined;
}

export interface PreloadImage {
  /** Upstream name the pods use, e.g. registry.k8s.io/pause:3.10. */
  readonly source: string;
  /** The same image in the mirror, e.g. 10.0.0.5:5000/pause:3.10. */
  readonly mirrorReference: string;
}

export interface PreloadInput {
  readonly store: PreloadStore;
  readonly mirror: { readonly endpoint: string; readonly scheme: "http" | "https" };
  readonly images: readonly PreloadImage[];
  readonly nodeName: string;
  /** Where the node records what it imported. */
  readonly stateDir: string;
}

const referenceCharacters = /^[A-Za-z0-9._:/@-]+$/;

/** The node a preload script runs on, and where it records what it imported. */
export function checkPreloadNode(nodeName: string, stateDir: string): void {
  if (!isValidNodeName(nodeName)) {
    throw new NodeConfigError("nodeName", `'${nodeName}' is not a node name`);
  }
  if (!isSafeNodePath(stateDir)) {
    throw new NodeConfigError("stateDir", `'${stateDir}' is not an absolute plain path`);
  }
}

/** An image name a preload script carries: a reference, in characters the shell takes as they are. */
export function checkPreloadReference(value: string, arg: string): void {
  if (!referenceCharacters.test(value) || tryParseImageReference(value) === undefined) {
    throw new NodeConfigError(arg, `'${value}' is not an image reference`);
  }
}

/**
 * Shell lines removing every name recorded in `$record` that the store still has, counted in
 * `$removed`: what a preload script's delete does, whatever the images came from.
 */
export function removeRecordedImages(store: {
  has(ref: string): string;
  remove(ref: string): string;
}): string[] {
  return [
    "  removed=0",
    "  while IFS= read -r name; do",
    '    [ -n "$name" ] || continue',
    `    if ${store.has('"$name"')}; then ${store.remove('"$name"')} && removed=$((removed + 1)); fi`,
    '  done <"$record"',
  ];
}

/** The end of every preload script: `sh -s apply` or `sh -s delete`. */
export const applyOrDelete: readonly string[] = [
  'case "${1:-}" in',
  "  apply) apply ;;",
  "  delete) delete ;;",
  '  *) fail "usage: sh -s apply|delete" ;;',
  "esac",
  "",
];

function checkInput(input: PreloadInput): void {
  if (!(preloadStores as readonly string[]).includes(input.store)) {
    throw new NodeConfigError(
      "store",
      `'${String(input.store)}' cannot be preloaded; use one of ${preloadStores.join(", ")}`,
    );
  }
  parseMirrorEndpoint(input.mirror.endpoint, input.mirror.scheme);
  checkPreloadNode(input.nodeName, input.stateDir);
  if (input.images.length === 0) throw new NodeConfigError("images", "nothing to preload");
  for (const [index, image] of input.images.entries()) {
    checkPreloadReference(image.source, `images[${index}].source`);
    checkPreloadReference(image.mirrorReference, `images[${index}].mirrorReference`);
    if (!image.mirrorReference.startsWith(`${input.mirror.endpoint}/`)) {
      throw new NodeConfigError(
        `images[${index}].mirrorReference`,
        `'${image.mirrorReference}' is not on the mirror ${input.mirror.endpoint}`,
      );
    }
  }
}

/** Shell lines for one store: has, pull, tag, remove. */
function storeCommands(input: PreloadInput) {
  const http = input.mirror.scheme === "http";
  if (input.store === "containerd") {
    const ctr = "ctr -n k8s.io";
    return {
      tools: ["ctr"],
      has: (ref: string) => `${ctr} images ls -q | grep -qxF ${ref}`,
      pull: (ref: string) => `${ctr} images pull${http ? " --plain-http" : ""} ${ref} >/dev/null`,
      tag: (from: string, to: string) => `${ctr} images tag --force ${from} ${to} >/dev/null`,
      remove: (ref: string) => `${ctr} images rm ${ref} >/dev/null`,
    };
  }
  return {
    tools: ["podman"],
    has: (ref: string) => `podman image exists ${ref}`,
    pull: (ref: string) =>
      `podman pull --quiet${http ? " --tls-verify=false" : ""} ${ref} >/dev/null`,
    tag: (from: string, to: string) => `podman tag ${from} ${to}`,
    remove: (ref: string) => `podman rmi ${ref} >/dev/null`,
  };
}

/**
 * The node script: `sh -s apply` pulls and tags every image the node lacks and records each
 * name it added; `sh -s delete` removes the recorded names only. Both are idempotent.
 */
export function renderPreloadScript(input: PreloadInput): string {
  checkInput(input);
  const store = storeCommands(input);
  const state = `${input.stateDir}/preload-${input.store}`;
  const lines = [
    "#!/bin/sh",
    `# airgap-conformance image preload for node ${input.nodeName} (${input.store}).`,
    "# Generated; run with this script on stdin: `sh -s apply` or `sh -s delete`.",
    "set -eu",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "export PATH",
    `node=${shellQuote(input.nodeName)}`,
    `record=${shellQuote(`${state}/imported`)}`,
    `say() { printf 'airgap-conformance: node %s: %s\\n' "$node" "$*"; }`,
    `fail() { printf 'airgap-conformance: node %s: error: %s\\n' "$node" "$*" >&2; exit 1; }`,
    `for tool in ${store.tools.join(" ")} grep mkdir; do`,
    `  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed; this node cannot be preloaded with ${input.store}"`,
    "done",
    `mkdir -p ${shellQuote(state)}`,
    'touch "$record"',
    "# Names are recorded before they are created, so a run cut short is still undone.",
    'remember() { grep -qxF "$1" "$record" || printf \'%s\\n\' "$1" >>"$record"; }',
    "",
    "apply() {",
    "  added=0",
  ];
  for (const image of input.images) {
    const source = shellQuote(image.source);
    const mirrorReference = shellQuote(image.mirrorReference);
    lines.push(
      `  if ! ${store.has(source)}; then`,
      `    if ! ${store.has(mirrorReference)}; then`,
      `      remember ${mirrorReference}`,
      `      ${store.pull(mirrorReference)} || fail ${shellQuote(`cannot pull ${image.mirrorReference} from the mirror`)}`,
      "    fi",
      `    remember ${source}`,
      `    ${store.tag(mirrorReference, source)} || fail ${shellQuote(`cannot tag ${image.source}`)}`,
      "    added=$((added + 1))",
      "  fi",
    );
  }
  lines.push(
    `  say "preloaded $added of ${input.images.length} images (the others were there already)"`,
    "}",
    "",
    "delete() {",
    ...removeRecordedImages(store),
    '  rm -f "$record"',
    '  say "removed $removed images it had preloaded"',
    "}",
    "",
    ...applyOrDelete,
  );
  return lines.join("\n");
}
