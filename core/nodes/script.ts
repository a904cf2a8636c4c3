/**
 * The action that runs on a node: one POSIX sh script per node, generated from its NodePlan and
 * read by `sh -s` from stdin (so no file content is ever spliced into a command line).
 *
 *   sh -s apply    writes every planned file atomically (temp file beside it, then rename),
 *                  backing up what was there first (once: a backup is never replaced), puts
 *                  back files an earlier configuration wrote that this one no longer does,
 *                  restarts or reloads only what changed, then verifies.
 *   sh -s delete   puts every backed-up file back byte for byte, removes files and directories
 *                  that did not exist before, and restarts or reloads what that touched.
 *
 * The on-node record under `stateDir` (one entry per touched path) is what delete and later
 * applies work from, so delete needs no file contents and survives configuration changes.
 *
 * Pure: no I/O.
 */

import { createHash } from "node:crypto";
import type { NodeFile, NodePlan } from "./plan";
import { NodeConfigError } from "./settings";

/** Where a node keeps its backups and the record of what it changed. */
export const defaultStateDir = "/var/lib/airgap-conformance/node-registry";

/** Kubernetes node names (RFC 1123 subdomain), also safe in resource names and sh. */
const nodeNamePattern = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export function isValidNodeName(name: string): boolean {
  return nodeNamePattern.test(name);
}

/** Quotes a value for POSIX sh: single quotes, with embedded single quotes spelled '\''. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function sha256Hex(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex");
}

/** The heredoc delimiter; base64 lines can never equal it. */
const contentDelimiter = "AIRGAP_CONTENT";

function base64Lines(content: string): string {
  const encoded = Buffer.from(content, "utf8").toString("base64");
  return encoded.match(/.{1,76}/g)?.join("\n") ?? "";
}

/**
 * The shell functions every node script shares. Kept free of `${`: it is a plain string, and
 * the per-node parts are appended by renderNodeScript.
 */
const library = String.raw`say() { printf 'airgap-conformance: node %s: %s\n' "$node" "$*"; }
fail() { printf 'airgap-conformance: node %s: error: %s\n' "$node" "$*" >&2; exit 1; }

work=''
pending=''
actions=''
cleanup() {
  if [ -n "$pending" ]; then rm -f "$pending"; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Queues what must happen after a file changed or was put back (each action once). The queue
# is kept on the node at once, so a run that stops half-way repeats the actions next time even
# though the files are already in place.
after_change() {
  case " $actions " in
    *" $1 "*) ;;
    *)
      if [ "$1" != none ]; then
        actions="$actions $1"
        printf '%s\n' "$actions" >"$state/pending-actions" || fail "cannot write $state/pending-actions"
      fi
      ;;
  esac
}

entry_of() { printf '%s/entries/%s' "$state" "$(printf '%s' "$1" | sha256sum | cut -c1-16)"; }

# True when $1 is a mount point: a bind-mounted file (/etc/hosts in a container) cannot be
# replaced by a rename, only rewritten in place.
is_mountpoint() {
  awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo 2>/dev/null
}

# Moves temp file $1 over $2: a rename, so readers see the old file or the new one, never a
# partial write.
replace() {
  if is_mountpoint "$2"; then
    rp_err=$(cat "$1" 2>&1 >"$2") || fail "cannot write $2: $rp_err"
    rm -f "$1"
  else
    rp_err=$(mv -f "$1" "$2" 2>&1) || fail "cannot replace $2: $rp_err"
  fi
  pending=''
}

# Records what $1 was before our first change: a byte copy keeping mode and owner, or the fact
# that nothing was there ($2: file or dir; $3: what putting it back needs). Written once and
# never replaced, so the original survives any number of applies.
remember() {
  rm_entry=$(entry_of "$1")
  if [ -d "$rm_entry" ]; then return 0; fi
  rm_err=$(mkdir -p "$state/entries" 2>&1) || fail "cannot create $state/entries: $rm_err"
  rm -rf "$rm_entry.new"
  mkdir "$rm_entry.new" || fail "cannot create $rm_entry.new"
  printf '%s\n' "$1" >"$rm_entry.new/path"
  printf '%s\n' "$3" >"$rm_entry.new/after"
  if [ "$2" = dir ]; then
    : >"$rm_entry.new/created-dir"
  elif [ -e "$1" ] || [ -L "$1" ]; then
    rm_err=$(cp -pP "$1" "$rm_entry.new/original" 2>&1) || fail "cannot back up $1: $rm_err"
    say "backed up $1 to $rm_entry/original"
  else
    : >"$rm_entry.new/absent"
  fi
  mv "$rm_entry.new" "$rm_entry" || fail "cannot record $rm_entry"
}

# Creates directory $1 and its missing parents, recording each one made.
ensure_dir() {
  if [ -d "$1" ]; then return 0; fi
  ensure_dir "$(dirname "$1")"
  remember "$1" dir none
  ed_err=$(mkdir -m 755 "$1" 2>&1) || fail "cannot create directory $1: $ed_err"
}

# Decodes content $1 (base64 on stdin) into the work directory and checks its sha256 ($2).
stage() {
  base64 -d >"$work/$1" || fail "cannot decode content $1"
  st_sum=$(sha256sum <"$work/$1" | cut -c1-64)
  if [ "$st_sum" != "$2" ]; then fail "content $1 arrived damaged (its checksum does not match what was sent)"; fi
}

# Puts staged content $1 at $2 with mode $3 unless it is there already; $4: what a change needs.
put_file() {
  ensure_dir "$(dirname "$2")"
  if [ -f "$2" ] && cmp -s "$work/$1" "$2"; then
    say "unchanged $2"
    return 0
  fi
  remember "$2" file "$4"
  pending="$(dirname "$2")/.$(basename "$2").airgap-new"
  pf_err=$({ cp "$work/$1" "$pending" && chmod "$3" "$pending"; } 2>&1) ||
    fail "cannot write $pending: $pf_err"
  replace "$pending" "$2"
  after_change "$4"
  say "wrote $2"
}

# Makes containerd's CRI plugin read hosts.toml files from $2, keeping the rest of config.toml
# ($1): an empty config_path is filled in, or the registry table for the file's config version
# is appended ($4: version 2, $5: version 3); a node without a config gets $3. containerd
# refuses config_path together with registry.mirrors, and another config_path would hide ours:
# both stop here with the file named.
containerd_config_path() {
  if [ ! -f "$1" ] || ! grep -Eq '^[[:space:]]*[^#[:space:]]' "$1"; then
    put_file "$3" "$1" 0644 restart-containerd
    return 0
  fi
  cc_values=$(sed -n -e "s/^[[:space:]]*config_path[[:space:]]*=[[:space:]]*[\"']\([^\"']*\)[\"'][[:space:]]*$/\1/p" "$1")
  cc_other=$(printf '%s\n' "$cc_values" | grep -Fvx -e "$2" -e '' || true)
  if [ -n "$cc_other" ]; then
    fail "$1 sets config_path to $cc_other; this configuration writes hosts.toml files to $2: point config_path there or remove it"
  fi
  if printf '%s\n' "$cc_values" | grep -Fqx -e "$2"; then
    say "unchanged $1 (config_path is $2)"
    return 0
  fi
  if grep -Eq '^[[:space:]]*\[[^]]*registry\.mirrors\.' "$1"; then
    fail "$1 has registry.mirrors entries, which containerd refuses together with config_path: move them to hosts.toml files under $2 or remove them"
  fi
  if grep -Eq '^[[:space:]]*config_path[[:space:]]*=' "$1"; then
    sed -e "s|^\([[:space:]]*config_path[[:space:]]*=[[:space:]]*\)[\"'][\"']|\1\"$2\"|" "$1" >"$work/config.toml.new"
  elif grep -Eq '^[[:space:]]*\[[^]]*\.registry\][[:space:]]*$' "$1"; then
    fail "$1 has a registry table without config_path; add config_path = \"$2\" to it"
  else
    cc_version=$(sed -n -e 's/^version[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
    case $cc_version in
      2) cc_fragment=$4 ;;
      3) cc_fragment=$5 ;;
      *) fail "$1 declares config version '$cc_version'; version 2 (containerd 1.x) or 3 (2.x) is needed: run 'containerd config migrate'" ;;
    esac
    { cat "$1" && printf '\n' && cat "$work/$cc_fragment"; } >"$work/config.toml.new"
  fi
  put_file config.toml.new "$1" 0644 restart-containerd
}

# Replaces our marked lines in $1 ($3 .. $4) with staged block $2, keeping every other line.
put_block() {
  if [ -f "$1" ]; then
    awk -v b="$3" -v e="$4" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' "$1" >"$work/block.new" ||
      fail "cannot read $1"
  else
    : >"$work/block.new"
  fi
  cat "$work/$2" >>"$work/block.new"
  put_file block.new "$1" 0644 none
}

# Puts back what entry $1 recorded: the original bytes, or no file at all.
restore_entry() {
  re_path=$(cat "$1/path")
  if [ -f "$1/created-dir" ]; then return 0; fi
  if [ -e "$1/original" ] || [ -L "$1/original" ]; then
    pending="$(dirname "$re_path")/.$(basename "$re_path").airgap-restore"
    re_err=$(cp -pP "$1/original" "$pending" 2>&1) || fail "cannot restore $re_path: $re_err"
    replace "$pending" "$re_path"
    say "restored $re_path"
  elif [ -e "$re_path" ] || [ -L "$re_path" ]; then
    re_err=$(rm -f "$re_path" 2>&1) || fail "cannot remove $re_path: $re_err"
    say "removed $re_path"
  fi
  after_change "$(cat "$1/after")"
  rm -rf "$1"
}

# Removes the directories we created once they are empty, deepest first.
remove_created_dirs() {
  for rd_entry in "$state"/entries/*; do
    if [ -f "$rd_entry/created-dir" ]; then cat "$rd_entry/path"; fi
  done | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- >"$work/dirs"
  while read -r rd_dir; do
    if rmdir "$rd_dir" 2>/dev/null; then
      say "removed directory $rd_dir"
    elif [ -d "$rd_dir" ]; then
      say "kept directory $rd_dir: something else is in it now"
    fi
    rm -rf "$(entry_of "$rd_dir")"
  done <"$work/dirs"
}

restore_all() {
  if [ -d "$state/entries" ]; then
    for ra_entry in "$state"/entries/*; do
      case $ra_entry in *.new) rm -rf "$ra_entry" ;; esac
      if [ -f "$ra_entry/path" ]; then restore_entry "$ra_entry"; fi
    done
    remove_created_dirs
  fi
}

# Puts back files an earlier configuration wrote that this one does not.
prune_stale() {
  if [ ! -d "$state/entries" ]; then return 0; fi
  for ps_entry in "$state"/entries/*; do
    if [ ! -f "$ps_entry/path" ] || [ -f "$ps_entry/created-dir" ]; then continue; fi
    ps_path=$(cat "$ps_entry/path")
    case "
$managed
" in
      *"
$ps_path
"*) ;;
      *)
        say "no longer configured: $ps_path"
        restore_entry "$ps_entry"
        ;;
    esac
  done
}

# Restarts the first of the services $2... that runs; $1 is its process name. A service that
# is not running reads the new configuration when it starts.
restart_running() {
  rr_process=$1
  shift
  for rr_unit in "$@"; do
    if [ -d /run/systemd/system ]; then
      if systemctl is-active --quiet "$rr_unit"; then
        systemctl restart "$rr_unit" || fail "systemctl restart $rr_unit failed; see journalctl -u $rr_unit"
        say "restarted $rr_unit"
        return 0
      fi
    elif [ -x "/etc/init.d/$rr_unit" ]; then
      "/etc/init.d/$rr_unit" restart </dev/null >/dev/null || fail "/etc/init.d/$rr_unit restart failed"
      say "restarted $rr_unit"
      return 0
    fi
  done
  if command -v pidof >/dev/null 2>&1 && pidof "$rr_process" >/dev/null 2>&1; then
    fail "$rr_process runs but neither systemd nor /etc/init.d manages it; restart it by hand so it reads the new configuration"
  fi
  say "$rr_process is not running; it reads the new configuration when it starts"
}

wait_for_containerd() {
  if ! command -v ctr >/dev/null 2>&1 || ! pidof containerd >/dev/null 2>&1; then return 0; fi
  wc_tries=0
  until ctr version >/dev/null 2>&1; do
    wc_tries=$((wc_tries + 1))
    if [ "$wc_tries" -ge 30 ]; then fail "containerd did not answer within 30 s of its restart"; fi
    sleep 1
  done
}

reload_crio() {
  if [ -d /run/systemd/system ] && systemctl is-active --quiet crio; then
    systemctl reload crio || fail "systemctl reload crio failed"
    say "reloaded crio"
  elif command -v pidof >/dev/null 2>&1 && rc_pids=$(pidof crio); then
    # shellcheck disable=SC2086
    kill -HUP $rc_pids || fail "cannot send SIGHUP to crio"
    say "sent SIGHUP to crio"
  else
    say "crio is not running; it reads the new configuration when it starts"
  fi
}

# Runs the queued actions, then forgets them.
run_actions() {
  for ra_action in $actions; do
    case $ra_action in
      update-ca-trust)
        command -v update-ca-certificates >/dev/null 2>&1 ||
          fail "update-ca-certificates is missing: install ca-certificates"
        update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates failed"
        say "updated the system CA store"
        ;;
      restart-containerd) restart_running containerd containerd && wait_for_containerd ;;
      restart-k3s) restart_running k3s k3s k3s-agent ;;
      restart-rke2) restart_running rke2 rke2-server rke2-agent ;;
      reload-crio) reload_crio ;;
      *) fail "unknown action $ra_action" ;;
    esac
  done
  rm -f "$state/pending-actions"
  actions=''
}

verify_file() {
  vf_sum=$(sha256sum <"$1" | cut -c1-64)
  if [ "$vf_sum" != "$2" ]; then fail "$1 does not hold what was written (its checksum differs: something else changed it)"; fi
}

verify_containerd_config_path() {
  command -v containerd >/dev/null 2>&1 || fail "containerd is not installed on this node"
  if ! containerd config dump 2>/dev/null | grep -Eq "^[[:space:]]*config_path = [\"']$1[\"']"; then
    fail "containerd config dump does not show config_path = \"$1\": the CRI plugin would ignore the hosts.toml files"
  fi
}

verify_resolves() {
  vr_address=$1
  shift
  for vr_name in "$@"; do
    vr_got=$(getent hosts "$vr_name" | awk '{ print $1; exit }')
    if [ "$vr_got" != "$vr_address" ]; then
      fail "$vr_name resolves to '$vr_got', not the mirror $vr_address: an earlier /etc/hosts line or DNS wins"
    fi
  done
}

main() {
  if [ "$#" -ne 1 ]; then fail "usage: sh -s apply|delete (the script on stdin)"; fi
  if [ "$(id -u)" != 0 ]; then fail "must run as root: connect as root or give the node's access sudo"; fi
  for tool in base64 sha256sum cmp awk sed grep cp mv mktemp; do
    command -v "$tool" >/dev/null 2>&1 || fail "needs '$tool' on the node"
  done
  umask 077
  work=$(mktemp -d) || fail "cannot create a work directory"
  ma_err=$(mkdir -p "$state" 2>&1) || fail "cannot create $state: $ma_err"
  if [ -f "$state/pending-actions" ]; then actions=$(cat "$state/pending-actions"); fi
  case $1 in
    apply)
      configure
      prune_stale
      run_actions
      verify
      say "registry mirror configuration applied"
      ;;
    delete)
      restore_all
      run_actions
      rm -rf "$state"
      rmdir "$(dirname "$state")" 2>/dev/null || true
      say "registry mirror configuration removed; original files restored"
      ;;
    *) fail "unknown mode '$1': use apply or delete" ;;
  esac
}
`;

function stageLines(id: string, content: string): string[] {
  return [
    `  stage ${id} ${sha256Hex(content)} <<'${contentDelimiter}'`,
    base64Lines(content),
    contentDelimiter,
  ];
}

function configureLines(file: NodeFile, index: number): string[] {
  const id = `content-${index + 1}`;
  switch (file.kind) {
    case "file":
      return [
        ...stageLines(id, file.content),
        `  put_file ${id} ${shellQuote(file.path)} ${file.mode} ${file.afterChange}`,
      ];
    case "containerd-config":
      return [
        ...stageLines(`${id}-new`, file.newFile),
        ...stageLines(`${id}-v2`, file.fragments[2]),
        ...stageLines(`${id}-v3`, file.fragments[3]),
        `  containerd_config_path ${shellQuote(file.path)} ${shellQuote(file.hostsDir)} ${id}-new ${id}-v2 ${id}-v3`,
      ];
    case "block":
      return [
        ...stageLines(id, file.block),
        `  put_block ${shellQuote(file.path)} ${id} ${shellQuote(file.begin)} ${shellQuote(file.end)}`,
      ];
  }
}

function verifyLines(plan: NodePlan): string[] {
  const lines: string[] = [];
  for (const file of plan.files) {
    if (file.kind === "file") {
      lines.push(`  verify_file ${shellQuote(file.path)} ${sha256Hex(file.content)}`);
    }
  }
  if (plan.verify.containerdConfigPath !== undefined) {
    lines.push(`  verify_containerd_config_path ${shellQuote(plan.verify.containerdConfigPath)}`);
  }
  if (plan.verify.resolves) {
    const { address, names } = plan.verify.resolves;
    lines.push(`  verify_resolves ${[address, ...names].map(shellQuote).join(" ")}`);
  }
  return lines.length > 0 ? lines : ["  :"];
}

export interface NodeScriptOptions {
  /** The node's name, for messages. */
  readonly nodeName: string;
  /** Where the node keeps backups. Default {@link defaultStateDir}. */
  readonly stateDir?: string;
}

/** The node script for a plan: `sh -s apply` or `sh -s delete` with it on stdin. */
export function renderNodeScript(plan: NodePlan, options: NodeScriptOptions): string {
  if (!isValidNodeName(options.nodeName)) {
    throw new NodeConfigError(
      "nodes[].name",
      `'${options.nodeName}' is not a node name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`,
    );
  }
  const stateDir = options.stateDir ?? defaultStateDir;
  const managed = plan.files.map((file) => file.path).join("\n");
  return [
    "#!/bin/sh",
    `# airgap-conformance NodeRegistryConfig for node ${options.nodeName} (${plan.runtime}).`,
    "# Generated; run with this script on stdin: `sh -s apply` or `sh -s delete`.",
    "set -eu",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "export PATH",
    `node=${shellQuote(options.nodeName)}`,
    `state=${shellQuote(stateDir)}`,
    "# Files this configuration writes; others recorded in $state are from an earlier one.",
    `managed=${shellQuote(managed)}`,
    "",
    library,
    "configure() {",
    ...plan.files.flatMap(configureLines),
    "}",
    "",
    "verify() {",
    ...verifyLines(plan),
    "}",
    "",
    "# stdin is the script itself: nothing the script runs may read from it.",
    'main "$@" </dev/null',
    "exit 0",
    "",
  ].join("\n");
}

/** How a node is reached. */
export type NodeAccessKind =
  | { readonly kind: "ssh"; readonly sudo: boolean }
  | { readonly kind: "docker-exec"; readonly container: string };

/**
 * The command lines that run the script (which travels on stdin). They hold no content and no
 * secret: over SSH the line is what the remote shell runs; for kind nodes it runs locally.
 */
export function nodeCommands(access: NodeAccessKind): { create: string; delete: string } {
  const shell =
    access.kind === "ssh"
      ? access.sudo
        ? "sudo -n sh -s"
        : "sh -s"
      : `docker exec -i ${shellQuote(access.container)} sh -s`;
  return { create: `${shell} apply`, delete: `${shell} delete` };
}
