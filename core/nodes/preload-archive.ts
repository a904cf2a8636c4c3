/**
 * Preloading from the archive: one tarball (a docker-archive of the image set, built on the
 * machine running Pulumi) is put on each node and imported into its image store under the
 * upstream names, with no registry at all. containerd nodes import it with
 * `ctr -n k8s.io images import`, CRI-O/podman nodes with `podman load`; k3s/rke2 nodes get it in
 * `agent/images/`, which k3s/rke2 import into their containerd at start, and, when their
 * containerd is running, it is imported into it at once.
 *
 * The node records every name it adds and `delete` removes exactly those, the tarball and the
 * agent/images file. A name the node already had keeps pointing at what it pointed at: it is
 * held under a temporary alias across the import and put back.
 *
 * Pure: no I/O.
 */

import {
  applyOrDelete,
  checkPreloadNode,
  checkPreloadReference,
  removeRecordedImages,
} from "./preload";
import { shellQuote } from "./script";
import { NodeConfigError } from "./settings";

/** Image stores a node can be preloaded into from the archive. */
export const archivePreloadStores = ["containerd", "podman", "k3s", "rke2"] as const;
export type ArchivePreloadStore = (typeof archivePreloadStores)[number];

/** Which store a node's runtime flavour takes the archive's tarball into. */
export function archivePreloadStoreFor(runtime: string): ArchivePreloadStore | undefined {
  if (runtime === "containerd" || runtime === "containerd2") return "containerd";
  if (runtime === "podman" || runtime === "crio") return "podman";
  if (runtime === "k3s" || runtime === "rke2") return runtime;
  return undefined;
}

/** Where k3s/rke2 look for image tarballs to import at start (their air-gap documentation). */
export function rancherAgentImagesDir(store: "k3s" | "rke2"): string {
  return `/var/lib/rancher/${store}/agent/images`;
}

/** The file k3s/rke2 find in agent/images. */
export const rancherAgentImagesFile = "airgap-conformance-preload.tar";

/** k3s and rke2 run their own containerd here. */
export const rancherContainerdSocket = "/run/k3s/containerd/containerd.sock";

/** Where the tarball is put on a node before the script takes it (writable over SFTP too). */
export const preloadIncomingDir = "/var/tmp/airgap-conformance-preload";

/** The tarball's path as it arrives on a node (its sha256 in the name: versions never collide). */
export function preloadIncomingPath(sha256: string): string {
  return `${preloadIncomingDir}/images-${sha256.slice(0, 16)}.tar`;
}

/**
 * The create command of a `docker exec` node: the tarball copied in with `docker cp` to where
 * the script takes it from, then the script (on stdin) run in the node.
 */
export function archivePreloadDockerCreate(
  container: string,
  file: string,
  sha256: string,
): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new NodeConfigError("tarball.sha256", `'${sha256}' is not a sha256 (hex)`);
  }
  const name = shellQuote(container);
  return [
    `docker exec ${name} mkdir -p ${shellQuote(preloadIncomingDir)}`,
    `docker cp ${shellQuote(file)} ${name}:${shellQuote(preloadIncomingPath(sha256))}`,
    `docker exec -i ${name} sh -s apply`,
  ].join(" && ");
}

export interface ArchivePreloadInput {
  readonly store: ArchivePreloadStore;
  /** The tarball: its sha256 (hex) and the names it carries. */
  readonly tarball: { readonly sha256: string; readonly images: readonly string[] };
  readonly nodeName: string;
  /** Where the node keeps the tarball and records what it imported. */
  readonly stateDir: string;
}

function checkInput(input: ArchivePreloadInput): void {
  if (!(archivePreloadStores as readonly string[]).includes(input.store)) {
    throw new NodeConfigError(
      "store",
      `'${String(input.store)}' cannot be preloaded from the archive; use one of ${archivePreloadStores.join(", ")}`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(input.tarball.sha256)) {
    throw new NodeConfigError("tarball.sha256", `'${input.tarball.sha256}' is not a sha256 (hex)`);
  }
  checkPreloadNode(input.nodeName, input.stateDir);
  if (input.tarball.images.length === 0) {
    throw new NodeConfigError("tarball.images", "nothing to preload");
  }
  for (const [index, image] of input.tarball.images.entries()) {
    checkPreloadReference(image, `tarball.images[${index}]`);
  }
}

/** A temporary name that holds an image the node had, across the import. */
function keptAlias(index: number): string {
  return `airgap-conformance.invalid/preload-kept:${index}`;
}

/** Shell lines for one store. `$ctr` is set by the script for containerd-based stores. */
function storeCommands(store: ArchivePreloadStore) {
  if (store === "podman") {
    return {
      tools: ["podman"],
      has: (ref: string) => `podman image exists ${ref}`,
      importTarball: 'podman load --quiet --input "$import_from" >/dev/null',
      alias: (from: string, to: string) => `podman tag ${from} ${to}`,
      // Puts the name back on the image it was on; the imported image, left with no name, goes.
      restore: (alias: string, name: string) =>
        [
          `imported=$(podman image inspect --format '{{.Id}}' ${name})`,
          `podman tag ${alias} ${name} && podman untag ${alias} ${alias}`,
          `if [ "$imported" != "$(podman image inspect --format '{{.Id}}' ${name})" ] && [ -z "$(podman image inspect --format '{{range .RepoTags}}x{{end}}' "$imported")" ]; then podman rmi "$imported" >/dev/null; fi`,
        ].join("\n      "),
      remove: (ref: string) => `podman rmi ${ref} >/dev/null`,
    };
  }
  return {
    tools: [],
    has: (ref: string) => `$ctr images ls -q | grep -qxF ${ref}`,
    importTarball: '$ctr images import "$import_from" >/dev/null',
    alias: (from: string, to: string) => `$ctr images tag --force ${from} ${to} >/dev/null`,
    restore: (alias: string, name: string) =>
      `$ctr images tag --force ${alias} ${name} >/dev/null && $ctr images rm ${alias} >/dev/null`,
    remove: (ref: string) => `$ctr images rm ${ref} >/dev/null`,
  };
}

/** How the script finds ctr and whether the store can be written now. */
function ctrSetup(store: ArchivePreloadStore): string[] {
  if (store === "containerd") {
    return [
      'command -v ctr >/dev/null 2>&1 || fail "ctr is not installed; this node cannot be preloaded with containerd"',
      'ctr="ctr -n k8s.io"',
      "live=1",
    ];
  }
  if (store === "podman") return ["live=1"];
  const bundled = store === "k3s" ? "k3s ctr" : "/var/lib/rancher/rke2/bin/ctr";
  const probe = store === "k3s" ? "command -v k3s" : "[ -x /var/lib/rancher/rke2/bin/ctr ]";
  return [
    `# ${store} runs its own containerd; its agent/images tarballs are imported when it starts.`,
    `socket=${shellQuote(rancherContainerdSocket)}`,
    "live=0",
    'if [ -S "$socket" ]; then',
    `  if command -v ctr >/dev/null 2>&1; then ctr="ctr --address $socket -n k8s.io"; live=1`,
    `  elif ${probe} >/dev/null 2>&1; then ctr="${bundled} --address $socket -n k8s.io"; live=1`,
    "  fi",
    "fi",
  ];
}

/**
 * The node script: `sh -s apply` takes the tarball from where it arrived (checking its sha256),
 * imports it and records each name it added; `sh -s delete` removes the recorded names, the
 * tarball and, on k3s/rke2, the agent/images file. Both are idempotent.
 */
export function renderArchivePreloadScript(input: ArchivePreloadInput): string {
  checkInput(input);
  const store = storeCommands(input.store);
  const state = `${input.stateDir}/preload-${input.store}`;
  const sha256 = input.tarball.sha256;
  const rancher = input.store === "k3s" || input.store === "rke2";
  const images = input.tarball.images;
  const lines = [
    "#!/bin/sh",
    `# airgap-conformance image preload from the archive for node ${input.nodeName} (${input.store}).`,
    "# Generated; run with this script on stdin: `sh -s apply` or `sh -s delete`.",
    "set -eu",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "export PATH",
    `node=${shellQuote(input.nodeName)}`,
    `record=${shellQuote(`${state}/imported`)}`,
    `incoming=${shellQuote(preloadIncomingPath(sha256))}`,
    `tarball=${shellQuote(`${state}/images-${sha256.slice(0, 16)}.tar`)}`,
    `sha256=${shellQuote(sha256)}`,
    // k3s/rke2 nodes import the agent/images file itself, as k3s/rke2 do at start.
    `import_from=${rancher ? shellQuote(`${rancherAgentImagesDir(input.store as "k3s" | "rke2")}/${rancherAgentImagesFile}`) : '"$tarball"'}`,
    `say() { printf 'airgap-conformance: node %s: %s\\n' "$node" "$*"; }`,
    `fail() { printf 'airgap-conformance: node %s: error: %s\\n' "$node" "$*" >&2; exit 1; }`,
    `for tool in ${[...store.tools, "grep", "mkdir", "sha256sum"].join(" ")}; do`,
    `  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed; this node cannot be preloaded with ${input.store}"`,
    "done",
    ...ctrSetup(input.store),
    `mkdir -p ${shellQuote(state)}`,
    'touch "$record"',
    "# Names are recorded before they are created, so a run cut short is still undone.",
    'remember() { grep -qxF "$1" "$record" || printf \'%s\\n\' "$1" >>"$record"; }',
    "",
    "take_tarball() {",
    '  if [ -f "$incoming" ] && [ ! -L "$incoming" ]; then',
    '    [ "$(sha256sum <"$incoming" | cut -c1-64)" = "$sha256" ] || fail "$incoming is not the tarball that was sent (sha256 differs); run the update again"',
    '    mv -f "$incoming" "$tarball.tmp" && mv -f "$tarball.tmp" "$tarball"',
    '    rmdir "$(dirname "$incoming")" 2>/dev/null || true',
    "  fi",
    '  [ -f "$tarball" ] || fail "the preload tarball is not on the node ($incoming); run the update again"',
    "}",
    "",
    "# Every name the node had before points where it pointed (also after a run cut short).",
    "restore_kept() {",
    "  :",
  ];
  images.forEach((image, index) => {
    const alias = shellQuote(keptAlias(index));
    lines.push(
      `  if ${store.has(alias)}; then`,
      `      ${store.restore(alias, shellQuote(image))}`,
      "  fi",
    );
  });
  lines.push("}", "", "apply() {", "  take_tarball");
  if (rancher) {
    const dir = rancherAgentImagesDir(input.store as "k3s" | "rke2");
    lines.push(
      `  mkdir -p ${shellQuote(dir)}`,
      `  cp "$tarball" ${shellQuote(`${dir}/.${rancherAgentImagesFile}.tmp`)}`,
      `  mv -f ${shellQuote(`${dir}/.${rancherAgentImagesFile}.tmp`)} ${shellQuote(`${dir}/${rancherAgentImagesFile}`)}`,
      '  if [ "$live" = 0 ]; then',
      `    say "placed ${dir}/${rancherAgentImagesFile} (${images.length} images); ${input.store} imports it when it starts"`,
      "    return 0",
      "  fi",
    );
  }
  lines.push("  restore_kept", "  added=0");
  images.forEach((image, index) => {
    const name = shellQuote(image);
    const alias = shellQuote(keptAlias(index));
    lines.push(
      `  # ${image}`,
      `  if ${store.has(name)}; then`,
      `    remember ${alias}`,
      `    ${store.alias(name, alias)}`,
      "  else",
      `    remember ${name}`,
      "    added=$((added + 1))",
      "  fi",
    );
  });
  lines.push(
    '  if [ "$added" -gt 0 ]; then',
    `    ${store.importTarball} || fail "cannot import $import_from"`,
    "  fi",
    "  restore_kept",
    `  say "preloaded $added of ${images.length} images from the archive (the others were there already)"`,
    "}",
    "",
    "delete() {",
  );
  if (rancher) {
    const dir = rancherAgentImagesDir(input.store as "k3s" | "rke2");
    lines.push(
      `  rm -f ${shellQuote(`${dir}/${rancherAgentImagesFile}`)} ${shellQuote(`${dir}/.${rancherAgentImagesFile}.tmp`)}`,
      '  if [ "$live" = 0 ]; then',
      '    if [ -s "$record" ]; then',
      `      say "${input.store}'s containerd is not running: the images imported from the tarball stay in it"`,
      "    fi",
      '    rm -f "$record" "$tarball" "$incoming"',
      `    rmdir ${shellQuote(state)} ${shellQuote(preloadIncomingDir)} 2>/dev/null || true`,
      `    say "removed ${rancherAgentImagesDir(input.store as "k3s" | "rke2")}/${rancherAgentImagesFile}"`,
      "    return 0",
      "  fi",
    );
  }
  lines.push(
    "  restore_kept",
    ...removeRecordedImages(store),
    '  rm -f "$record" "$tarball" "$tarball.tmp" "$incoming"',
    `  rmdir ${shellQuote(state)} ${shellQuote(preloadIncomingDir)} 2>/dev/null || true`,
    '  say "removed $removed images it had preloaded, and its tarball"',
    "}",
    "",
    ...applyOrDelete,
  );
  return lines.join("\n");
}
