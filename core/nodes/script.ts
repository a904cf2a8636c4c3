/**
 * The action that runs on a node: one POSIX sh script per node, generated from its NodePlan and
 * read by `sh -s` from stdin (so no file content is ever spliced into a command line).
 *
 *   sh -s apply    writes every planned file atomically (temp file beside it, then rename),
 *                  backing up what was there first (once: a backup is never replaced), puts
 *                  back files an earlier configuration wrote that this one no longer does,
 *                  restarts or reloads only what changed, then verifies. When anything fails,
 *                  every file this run changed is put back as it was before the run (byte for
 *                  byte, and the record under `stateDir` too), what it touched is restarted
 *                  again if it already had been, and each restored path is named: a failed
 *                  create is not in Pulumi's state, so destroy would never undo it.
 *   sh -s delete   puts every backed-up file back byte for byte, removes files and directories
 *                  that did not exist before, and restarts or reloads what that touched.
 *
 * The on-node record under `stateDir` (one entry per touched path) is what delete and later
 * applies work from, so delete needs no file contents and survives configuration changes.
 *
 * Pure: no I/O.
 */

import { createHash } from "node:crypto";
import {
  type NodeFile,
  type NodePlan,
  registriesConfDropInPath,
  systemCaPath,
  systemCaPathRhel,
} from "./plan";
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
mode=''
system_ca=''
actions_ran=''
rolling_back=''
state_existed=''
tab=$(printf '\t')
cleanup() {
  if [ -n "$pending" ]; then rm -f "$pending"; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
on_exit() {
  oe_status=$?
  if [ "$oe_status" -ne 0 ] && [ "$mode" = apply ] && [ -z "$rolling_back" ]; then
    rolling_back=yes
    rollback
  fi
  cleanup
  exit "$oe_status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

# The run's journal: what each path was before this run first changed it (a byte copy, or
# nothing there), so a failed apply can put back exactly that. Different from the backups under
# $state, which hold what was there before the first apply ever.
journal_file() {
  if [ -z "$work" ] || grep -Fxq -e "$1" "$work/journal-paths" 2>/dev/null; then return 0; fi
  printf '%s\n' "$1" >>"$work/journal-paths"
  jf_n=$(wc -l <"$work/journal-paths")
  if [ -e "$1" ] || [ -L "$1" ]; then
    jf_err=$(cp -pP "$1" "$work/before/$jf_n" 2>&1) || fail "cannot keep a copy of $1: $jf_err"
    printf 'file\t%s\t%s\t%s\n' "$jf_n" "$2" "$1" >>"$work/journal"
  else
    printf 'absent\t%s\t%s\t%s\n' "$jf_n" "$2" "$1" >>"$work/journal"
  fi
}
journal_dir() {
  if [ -n "$work" ]; then printf 'dir\t-\tnone\t%s\n' "$1" >>"$work/journal"; fi
}

# Puts copy $1 back at $2 without failing the script (it runs while a failure is handled).
put_back() {
  if is_mountpoint "$2"; then
    cat "$1" >"$2"
  else
    pb_tmp="$(dirname "$2")/.$(basename "$2").airgap-restore"
    cp -pP "$1" "$pb_tmp" && mv -f "$pb_tmp" "$2"
  fi
}

# Undoes this run after a failure: newest change first, then the record under $state, then the
# restarts the restored files need (only if this run had already restarted anything).
rollback() {
  if [ -z "$work" ] || [ ! -d "$work" ]; then return 0; fi
  rb_failed=''
  rb_actions=''
  if [ -s "$work/journal" ]; then
    printf 'airgap-conformance: node %s: apply failed; putting back what this run changed\n' "$node" >&2
    tac "$work/journal" >"$work/journal.reverse"
    while IFS="$tab" read -r rb_kind rb_n rb_after rb_path; do
      case $rb_kind in
        file)
          if put_back "$work/before/$rb_n" "$rb_path"; then
            printf 'airgap-conformance: node %s: restored %s\n' "$node" "$rb_path" >&2
          else
            rb_failed="$rb_failed $rb_path"
          fi
          ;;
        absent)
          if [ ! -e "$rb_path" ] && [ ! -L "$rb_path" ]; then
            :
          elif rm -f "$rb_path"; then
            printf 'airgap-conformance: node %s: removed %s (it did not exist before)\n' "$node" "$rb_path" >&2
          else
            rb_failed="$rb_failed $rb_path"
          fi
          ;;
        dir)
          if rmdir "$rb_path" 2>/dev/null; then
            printf 'airgap-conformance: node %s: removed directory %s\n' "$node" "$rb_path" >&2
          fi
          ;;
      esac
      case " $rb_actions " in *" $rb_after "*) ;; *) rb_actions="$rb_actions $rb_after" ;; esac
    done <"$work/journal.reverse"
  fi
  rm -rf "$state"
  if [ -n "$state_existed" ]; then
    cp -pPR "$work/state-before" "$state" || rb_failed="$rb_failed $state"
  else
    rmdir "$(dirname "$state")" 2>/dev/null || true
  fi
  if [ -n "$actions_ran" ]; then
    for rb_action in $rb_actions; do
      if [ "$rb_action" != none ]; then (run_action "$rb_action") >&2 || rb_failed="$rb_failed $rb_action"; fi
    done
  fi
  if [ -n "$rb_failed" ]; then
    printf 'airgap-conformance: node %s: error: could not put back:%s\n' "$node" "$rb_failed" >&2
  else
    printf 'airgap-conformance: node %s: every file is as it was before this run\n' "$node" >&2
  fi
}

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
  journal_dir "$1"
}

# Decodes content $1 (base64 on stdin) into the work directory and checks its sha256 ($2).
# Messages never print a checksum: a file may hold the mirror's credentials.
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
  journal_file "$2" "$4"
  pending="$(dirname "$2")/.$(basename "$2").airgap-new"
  pf_err=$({ cp "$work/$1" "$pending" && chmod "$3" "$pending"; } 2>&1) ||
    fail "cannot write $pending: $pf_err"
  replace "$pending" "$2"
  after_change "$4"
  say "wrote $2"
}

# containerd: makes the CRI plugin read hosts.toml files from a directory.
#
# Where the TOML is parsed: by containerd itself. The node has only sh, so the script never
# interprets the operator's TOML; it reads 'containerd config dump' (the effective configuration
# with every 'imports' drop-in merged, printed by containerd's TOML encoder in one canonical
# form: one '[table]' header per table, one 'key = value' per line) and has containerd load
# every edit it proposes ('containerd --config CANDIDATE config dump'). An edit is installed only
# when containerd loads it and its effective configuration differs from today's in nothing but
# config_path; otherwise the run stops naming the file. So dotted keys, inline tables and
# drop-ins can never produce a file containerd refuses, and CRI always loads.

# The CRI registry table for an effective config version (what 'config dump' prints).
cri_registry_table() {
  case $1 in
    2) printf '%s' 'plugins."io.containerd.grpc.v1.cri".registry' ;;
    3) printf '%s' 'plugins."io.containerd.cri.v1.images".registry' ;;
    *) return 1 ;;
  esac
}

# Canonical dump on stdin -> "table<TAB>key = value" lines; 'imports' (which names the file
# the dump was made from) is left out so dumps of two candidates compare.
flatten_dump() {
  awk '
    /^[[:space:]]*\[/ { t = $0; sub(/^[[:space:]]*\[+/, "", t); sub(/\]+[[:space:]]*$/, "", t); next }
    /^[[:space:]]*$/ { next }
    { l = $0; sub(/^[[:space:]]+/, "", l); if (t == "" && l ~ /^imports = /) next; print t "\t" l }'
}

# The files an effective config was read from, one a line (the dump's 'imports').
dump_files() {
  sed -n -e 's/^imports = \[\(.*\)\]$/\1/p' "$1" | tr ',' '\n' | sed -e 's/^[[:space:]]*"//' -e 's/"[[:space:]]*$//' | grep -v '^$' || true
}

# Names the files among the dump's sources that mention $2 (for messages only).
files_mentioning() {
  fm_found=$(dump_files "$1" | while read -r fm_file; do
    if [ -f "$fm_file" ] && grep -Fq -e "$2" "$fm_file"; then printf '%s ' "$fm_file"; fi
  done)
  printf '%s' "$fm_found" | sed -e 's/ $//'
}

# Dumps the effective config of main config file $1 (containerd's defaults when it is absent).
dump_config() {
  if [ -f "$1" ]; then containerd --config "$1" config dump; else containerd config dump; fi
}

# True when candidate $1 (a whole main config file) loads and differs from the current
# effective config ($work/flat-before) only in $cc_table's config_path, which it sets to $2.
candidate_loads() {
  cl_err=$(containerd --config "$1" config dump 2>&1 >"$work/dump-candidate") || {
    cc_last_error=$(printf '%s' "$cl_err" | tail -n 1)
    return 1
  }
  flatten_dump <"$work/dump-candidate" >"$work/flat-candidate"
  for cl_flat in flat-before flat-candidate; do
    awk -F '\t' -v t="$cc_table" '!($1 == t && $2 ~ /^config_path = /)' "$work/$cl_flat" >"$work/$cl_flat.rest"
  done
  if ! cmp -s "$work/flat-before.rest" "$work/flat-candidate.rest"; then
    cc_last_error="the edit would change more than config_path"
    return 1
  fi
  cl_value=$(awk -F '\t' -v t="$cc_table" '$1 == t && $2 ~ /^config_path = / { sub(/^config_path = /, "", $2); print $2 }' "$work/flat-candidate")
  if [ "$cl_value" != "\"$2\"" ]; then
    cc_last_error="config_path would be '$cl_value'"
    return 1
  fi
}

# $1: main config file; $2: hosts directory; $3..$5: staged new file, version 2 and version 3
# tables to append.
containerd_config_path() {
  command -v containerd >/dev/null 2>&1 || fail "containerd is not installed on this node"
  cc_err=$(dump_config "$1" 2>&1 >"$work/dump-before") ||
    fail "containerd cannot load its configuration $1 as it is ($(printf '%s' "$cc_err" | tail -n 1)); fix it first"
  flatten_dump <"$work/dump-before" >"$work/flat-before"
  cc_version=$(awk -F '\t' '$1 == "" && $2 ~ /^version = / { sub(/^version = /, "", $2); print $2 }' "$work/flat-before")
  cc_table=$(cri_registry_table "$cc_version") ||
    fail "containerd reports config version '$cc_version'; version 2 (containerd 1.x) or 3 (2.x) is needed"

  # A config_path already set: accepted when its list holds ours, refused otherwise.
  cc_current=$(awk -F '\t' -v t="$cc_table" '$1 == t && $2 ~ /^config_path = / { sub(/^config_path = /, "", $2); print $2 }' "$work/flat-before" | sed -e 's/^"\(.*\)"$/\1/')
  if [ -n "$cc_current" ]; then
    if printf '%s\n' "$cc_current" | tr ':' '\n' | grep -Fqx -e "$2"; then
      say "unchanged $1 (config_path $cc_current holds $2)"
      return 0
    fi
    fail "$(files_mentioning "$work/dump-before" config_path) sets config_path to $cc_current ($cc_table.config_path); this configuration writes hosts.toml files to $2: add it to that list (config_path = \"$2:$cc_current\") or remove the key"
  fi

  # Legacy keys containerd refuses (mirrors) or stops applying (configs.<host>.tls) once
  # config_path is set. They are the operator's: named, never moved silently.
  cc_legacy=$(awk -F '\t' -v t="$cc_table" '
    index($1, t ".mirrors.") == 1 && $2 ~ /^endpoint = / { k[$1] = 1 }
    index($1, t ".configs.") == 1 && $1 ~ /\.tls$/ && ($2 ~ /^(ca_file|cert_file|key_file) = "./ || $2 ~ /^insecure_skip_verify = true/) { k[$1] = 1 }
    END { for (key in k) print key }' "$work/flat-before" | sort)
  if [ -n "$cc_legacy" ]; then
    cc_keys=$(printf '%s\n' "$cc_legacy" | sed -e "s/^$(printf '%s' "$cc_table" | sed -e 's/[].[*^$\\/"]/\\&/g')\.//" | tr '\n' ' ' | sed -e 's/ $//')
    cc_where=$(files_mentioning "$work/dump-before" mirrors)
    case $cc_legacy in *.tls*) cc_where=$(printf '%s %s' "$cc_where" "$(files_mentioning "$work/dump-before" configs)" | tr ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ' | sed -e 's/ $//') ;; esac
    fail "$cc_where sets $cc_keys under $cc_table, which containerd refuses (mirrors) or ignores (configs.<host>.tls) together with config_path: move each to a hosts.toml file under $2 (see containerd's docs/hosts.md) or remove it, then apply again"
  fi

  # The file to edit: the last source that defines the CRI plugin (a drop-in defining it
  # replaces the main file's table in containerd 1.x), else the main file.
  cc_target=$1
  for cc_file in $(dump_files "$work/dump-before"); do
    if [ -f "$cc_file" ] && grep -Eq 'io\.containerd\.(grpc\.v1\.cri|cri\.v1\.images)' "$cc_file"; then
      cc_target=$cc_file
    fi
  done
  if [ "$cc_target" != "$1" ]; then
    fail "$cc_target defines the CRI plugin's settings (imported by $1); set config_path = \"$2\" in its registry table ($cc_table) by hand, then apply again"
  fi

  if [ ! -f "$1" ]; then
    cp "$work/$3" "$work/candidate-1"
  else
    # Candidates, in order: fill an empty config_path (table or dotted form); add the key
    # under an existing registry table, or dotted under the plugin's table; append the table.
    sed -E -e "s#^([[:space:]]*([^=[:space:]]+\.)?config_path[[:space:]]*=[[:space:]]*)(\"\"|'')#\1\"$2\"#" "$1" >"$work/candidate-1"
    for cc_v in 2 3; do
      cc_t=$(cri_registry_table "$cc_v")
      awk -v h="[$cc_t]" -v line="config_path = \"$2\"" '
        { print; t = $0; gsub(/^[[:space:]]+|[[:space:]]+$/, "", t); if (t == h) { match($0, /^[[:space:]]*/); print substr($0, 1, RLENGTH) "  " line } }' "$1" >"$work/candidate-table-$cc_v"
      awk -v h="[$(printf '%s' "$cc_t" | sed -e 's/\.registry$//')]" -v line="registry.config_path = \"$2\"" '
        { print; t = $0; gsub(/^[[:space:]]+|[[:space:]]+$/, "", t); if (t == h) { match($0, /^[[:space:]]*/); print substr($0, 1, RLENGTH) "  " line } }' "$1" >"$work/candidate-dotted-$cc_v"
    done
    { cat "$1" && printf '\n' && cat "$work/$4"; } >"$work/candidate-append-2"
    { cat "$1" && printf '\n' && cat "$work/$5"; } >"$work/candidate-append-3"
  fi
  cc_last_error='no edit applies'
  cc_chosen=''
  cc_probe="$(dirname "$1")/.$(basename "$1").airgap-candidate"
  for cc_candidate in candidate-1 candidate-table-2 candidate-table-3 candidate-dotted-2 candidate-dotted-3 candidate-append-2 candidate-append-3; do
    if [ ! -f "$work/$cc_candidate" ]; then continue; fi
    if [ -f "$1" ] && cmp -s "$1" "$work/$cc_candidate"; then continue; fi
    # Beside the original, so imports relative to its directory resolve the same.
    pending=$cc_probe
    cp "$work/$cc_candidate" "$cc_probe" || fail "cannot write $cc_probe"
    if candidate_loads "$cc_probe" "$2"; then
      cc_chosen=$cc_candidate
      rm -f "$cc_probe"
      pending=''
      break
    fi
    rm -f "$cc_probe"
    pending=''
  done
  if [ -z "$cc_chosen" ]; then
    fail "cannot set config_path in $1 so that containerd still loads it ($cc_last_error); set $cc_table.config_path = \"$2\" there by hand, then apply again"
  fi
  cc_mode=0644
  if [ -f "$1" ]; then cc_mode=$(stat -c '%a' "$1"); fi
  put_file "$cc_chosen" "$1" "$cc_mode" restart-containerd
}

# k3s/rke2 registries.yaml: our mirrors and configs merged into the operator's file.
#
# Where the YAML is handled: the node has no YAML parser, so the merge works line by line, and
# only on files whose shape makes that exact: top-level block mappings 'mirrors:' and 'configs:'
# (keys at one indentation, no flow style, no tabs, anchors, merge keys or more than one
# document). Our own entries are the renderer's output (known shape) moved to the file's
# indentation and added at the end of each block; every other line of the operator's file is
# kept as it is. A key both files set, or a file of another shape, stops the run naming the file
# and the key: nothing is guessed. The merge always starts from the file as it was before our
# first apply (its backup), so applying again never meets our own entries.
merge_registries_yaml() {
  my_entry=$(entry_of "$2")
  # Edits made to the merged file since our last apply would be lost: stop instead.
  if [ -f "$my_entry/merged-sha256" ] && [ -f "$2" ] &&
    [ "$(sha256sum <"$2" | cut -c1-64)" != "$(cat "$my_entry/merged-sha256")" ]; then
    fail "$2 changed since the last apply; make the change in the original too (delete, edit, apply) or put back what was applied"
  fi
  if [ -f "$my_entry/original" ]; then
    cp "$my_entry/original" "$work/yaml-base"
  elif [ -d "$my_entry" ] || [ ! -f "$2" ]; then
    : >"$work/yaml-base"
  else
    cp "$2" "$work/yaml-base"
  fi
  my_err=$(awk -v ours="$work/$1" -v file="$2" '
    function key_of(line,   k) {
      sub(/^ +/, "", line)
      if (line ~ /^"/) { k = substr(line, 2); sub(/".*$/, "", k); return k }
      if (line ~ /^'"'"'/) { k = substr(line, 2); sub(/'"'"'.*$/, "", k); return k }
      k = line; sub(/[ ]*:([ ]+.*)?$/, "", k); return k
    }
    function indent_of(line) { match(line, /^ */); return RLENGTH }
    function refuse(msg) { print file ": " msg > "/dev/stderr"; failed = 1; exit 3 }
    BEGIN {
      # Our entries, by block: lines under "mirrors:" / "configs:" in the rendered file.
      while ((getline l < ours) > 0) {
        if (l ~ /^#/ || l == "") continue
        if (l ~ /^[^ ]/) { block = l; sub(/:.*$/, "", block); continue }
        our[block] = our[block] l "\n"
        if (indent_of(l) == 2) ourkey[block, key_of(l)] = 1
      }
    }
    { lines[NR] = $0 }
    END {
      if (failed) exit 3
      cur = ""
      for (i = 1; i <= NR; i++) {
        l = lines[i]
        if (l ~ /\t/) refuse("line " i " holds a tab; it cannot be merged safely")
        if (l ~ /^(---|\.\.\.)/) refuse("line " i ": more than one YAML document")
        if (l ~ /^[ ]*#/ || l ~ /^[ ]*$/) continue
        if (l ~ /<<[ ]*:/ || l ~ /:[ ]+[&*!]/ || l ~ /^[ ]*-[ ]+[&*!]/) refuse("line " i " uses anchors, aliases, tags or merge keys; it cannot be merged safely")
        if (l ~ /^[^ ]/) {
          cur = key_of(l)
          if (cur == "mirrors" || cur == "configs") {
            rest = l; sub(/^[^:]*:[ ]*/, "", rest)
            if (rest != "" && rest !~ /^#/) refuse("line " i ": " cur " is not a block mapping (write it one key a line to merge)")
            seen[cur] = 1; last[cur] = i
          }
          continue
        }
        if (cur != "mirrors" && cur != "configs") continue
        last[cur] = i
        ind = indent_of(l)
        if (!(cur in child)) child[cur] = ind
        if (ind < child[cur]) refuse("line " i ": the entries under " cur " are not at one indentation")
        if (ind == child[cur] && ((cur, key_of(l)) in ourkey))
          refuse(cur ".\"" key_of(l) "\" is set there already; this configuration sets it too: remove one of them")
      }
      for (i = 1; i <= NR; i++) {
        print lines[i]
        for (b in seen) if (last[b] == i && (b in our)) emit(b)
      }
      for (b in our) if (!(b in seen)) { print b ":"; emit2(b, 2) }
    }
    function emit(b) { emit2(b, child[b] == "" ? 2 : child[b]) }
    function emit2(b, ind,   n, parts, j, pad) {
      pad = ""
      n = split(our[b], parts, "\n")
      for (j = 1; j < n; j++) {
        if (ind >= 2) { pad = sprintf("%" (ind - 2) "s", ""); print pad parts[j] }
        else print substr(parts[j], 3 - ind)
      }
    }
  ' "$work/yaml-base" 2>&1 >"$work/yaml-merged") || my_err=$(printf '%s\n%s' "$my_err" "$2: cannot be merged")
  if [ -n "$my_err" ]; then fail "cannot merge into $(printf '%s' "$my_err" | head -n 1)"; fi
  put_file yaml-merged "$2" "$3" "$4"
  if [ -d "$my_entry" ]; then sha256sum <"$2" | cut -c1-64 >"$my_entry/merged-sha256"; fi
}

# containers-registries.conf: one [[registry]] per prefix wins, and a drop-in's entry replaces
# any earlier one for the same prefix (containers-registries.conf.d(5)), silently. So before our
# drop-in ($1, staged as $2) is written, every other file is searched for a [[registry]] with a
# prefix ours sets, and the run stops naming it. The search reads only the keys that decide a
# table's prefix (prefix, else location) of top-level [[registry]] tables; a file it cannot read
# that way is still loaded by podman, which the verification runs when it is installed.
registry_prefixes() {
  awk '
    function value(line) {
      sub(/^[^=]*=[ \t]*/, "", line)
      if (line ~ /^"/) { line = substr(line, 2); sub(/".*$/, "", line) }
      else if (line ~ /^'"'"'/) { line = substr(line, 2); sub(/'"'"'.*$/, "", line) }
      return line
    }
    function flush() { if (inreg) print (prefix != "" ? prefix : location) "\t" FILENAME; inreg = 0; prefix = ""; location = "" }
    FNR == 1 { flush() }
    /^[ \t]*\[/ {
      h = $0; sub(/[ \t]*(#.*)?$/, "", h); sub(/^[ \t]*/, "", h)
      if (h == "[[registry]]") { flush(); inreg = 1; sub_table = 0 }
      else if (h ~ /^\[\[?registry\./) { sub_table = 1 }
      else { flush() }
      next
    }
    inreg && !sub_table && /^[ \t]*prefix[ \t]*=/ { prefix = value($0) }
    inreg && !sub_table && /^[ \t]*location[ \t]*=/ { location = value($0) }
    END { flush() }
  ' "$@"
}

check_registry_prefixes() {
  registry_prefixes "$work/$2" | cut -f1 | sort -u >"$work/our-prefixes"
  for cp_file in /etc/containers/registries.conf /etc/containers/registries.conf.d/*.conf; do
    if [ "$cp_file" = "$1" ] || [ ! -f "$cp_file" ]; then continue; fi
    registry_prefixes "$cp_file"
  done >"$work/other-prefixes"
  cp_conflicts=$(awk -F '\t' 'NR == FNR { ours[$1] = 1; next } ($1 in ours) { print $2 " has a [[registry]] for " $1 }' "$work/our-prefixes" "$work/other-prefixes" | sort -u)
  if [ -n "$cp_conflicts" ]; then
    fail "$(printf '%s' "$cp_conflicts" | tr '\n' ';' | sed -e 's/;$//; s/;/; /g'), which this configuration's $1 sets too (only one entry per prefix counts): remove or change that entry, then apply again"
  fi
}

verify_registries_conf() {
  if command -v podman >/dev/null 2>&1; then
    # podman parses every registries.conf file on start; only its verdict on them counts here.
    if ! vr_err=$(podman info 2>&1 >/dev/null); then
      case $vr_err in
        *registries* | *toml* | *TOML*)
          fail "podman cannot load the registries configuration: $(printf '%s' "$vr_err" | tail -n 1)"
          ;;
        *) say "podman info failed for another reason ($(printf '%s' "$vr_err" | tail -n 1)); the files were not checked by podman" ;;
      esac
    fi
  fi
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
  journal_file "$re_path" "$(cat "$1/after")"
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

run_action() {
  case $1 in
    update-ca-trust)
      if command -v update-ca-certificates >/dev/null 2>&1; then
        update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates failed"
      elif command -v update-ca-trust >/dev/null 2>&1; then
        update-ca-trust extract >/dev/null 2>&1 || fail "update-ca-trust extract failed"
      else
        fail "neither update-ca-certificates nor update-ca-trust is installed: install ca-certificates"
      fi
      say "updated the system CA store"
      # Go programs (containerd, CRI-O, k3s, rke2) read the system roots once per process.
      restart_runtimes
      ;;
    restart-containerd) restart_running containerd containerd && wait_for_containerd ;;
    restart-k3s) restart_running k3s k3s k3s-agent ;;
    restart-rke2) restart_running rke2 rke2-server rke2-agent ;;
    reload-crio) reload_crio ;;
    *) fail "unknown action $1" ;;
  esac
}

# Restarts whichever container runtime runs, so it reads the system CA store again.
restart_runtimes() {
  if pidof k3s >/dev/null 2>&1; then
    restart_running k3s k3s k3s-agent
  elif pidof rke2 >/dev/null 2>&1; then
    restart_running rke2 rke2-server rke2-agent
  elif pidof containerd >/dev/null 2>&1; then
    restart_running containerd containerd && wait_for_containerd
  fi
  if pidof crio >/dev/null 2>&1; then restart_running crio crio; fi
}

# The system CA store's directory differs by family: the CA goes where this node's tool reads.
put_system_ca() {
  if command -v update-ca-certificates >/dev/null 2>&1; then
    system_ca=$2
  elif command -v update-ca-trust >/dev/null 2>&1; then
    system_ca=$3
  else
    fail "neither update-ca-certificates nor update-ca-trust is installed: install ca-certificates"
  fi
  put_file "$1" "$system_ca" "$4" "$5"
}

# Runs the queued actions, then forgets them.
run_actions() {
  for ra_action in $actions; do
    actions_ran=yes
    run_action "$ra_action"
  done
  rm -f "$state/pending-actions"
  actions=''
}

verify_file() {
  vf_sum=$(sha256sum <"$1" | cut -c1-64)
  if [ "$vf_sum" != "$2" ]; then fail "$1 does not hold what was written (its checksum differs: something else changed it)"; fi
}

# After the restart: the effective config has our directory, and the CRI plugin loaded.
verify_containerd_config_path() {
  command -v containerd >/dev/null 2>&1 || fail "containerd is not installed on this node"
  containerd config dump 2>/dev/null | flatten_dump >"$work/flat-after" ||
    fail "containerd config dump fails after the change"
  vc_version=$(awk -F '\t' '$1 == "" && $2 ~ /^version = / { sub(/^version = /, "", $2); print $2 }' "$work/flat-after")
  vc_table=$(cri_registry_table "$vc_version") || fail "containerd reports config version '$vc_version'"
  vc_value=$(awk -F '\t' -v t="$vc_table" '$1 == t && $2 ~ /^config_path = / { sub(/^config_path = /, "", $2); print $2 }' "$work/flat-after" | sed -e 's/^"\(.*\)"$/\1/')
  if ! printf '%s\n' "$vc_value" | tr ':' '\n' | grep -Fqx -e "$1"; then
    fail "containerd config dump shows config_path '$vc_value', not $1: the CRI plugin would ignore the hosts.toml files"
  fi
  if pidof containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1; then
    vc_cri=$(ctr plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $NF }')
    if [ "$vc_cri" != ok ]; then
      fail "containerd's CRI plugin is not loaded (ctr plugins ls shows '$vc_cri'); see containerd's log"
    fi
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
  for tool in base64 sha256sum cmp awk sed grep cp mv mktemp tac stat tr; do
    command -v "$tool" >/dev/null 2>&1 || fail "needs '$tool' on the node"
  done
  umask 077
  work=$(mktemp -d) || fail "cannot create a work directory"
  mkdir "$work/before"
  if [ -d "$state" ]; then
    state_existed=yes
    ma_err=$(cp -pPR "$state" "$work/state-before" 2>&1) || fail "cannot keep a copy of $state: $ma_err"
  fi
  mode=$1
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

/**
 * k3s/rke2 registries.yaml is shared with the operator: our entries are merged into theirs on
 * the node (merge_registries_yaml), so its bytes are not the plan's and are not checked by sum.
 */
export function isMergedFile(path: string): boolean {
  return /^\/etc\/rancher\/(k3s|rke2)\/registries\.yaml$/.test(path);
}

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
        ...(file.path === registriesConfDropInPath
          ? [`  check_registry_prefixes ${shellQuote(file.path)} ${id}`]
          : []),
        isMergedFile(file.path)
          ? `  merge_registries_yaml ${id} ${shellQuote(file.path)} ${file.mode} ${file.afterChange}`
          : file.path === systemCaPath
            ? `  put_system_ca ${id} ${shellQuote(systemCaPath)} ${shellQuote(systemCaPathRhel)} ${file.mode} ${file.afterChange}`
            : `  put_file ${id} ${shellQuote(file.path)} ${file.mode} ${file.afterChange}`,
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
    if (file.kind === "file" && file.path === systemCaPath) {
      lines.push(`  verify_file "$system_ca" ${sha256Hex(file.content)}`);
    } else if (file.kind === "file" && !isMergedFile(file.path)) {
      lines.push(`  verify_file ${shellQuote(file.path)} ${sha256Hex(file.content)}`);
    }
  }
  if (plan.verify.containerdConfigPath !== undefined) {
    lines.push(`  verify_containerd_config_path ${shellQuote(plan.verify.containerdConfigPath)}`);
  }
  if (plan.files.some((file) => file.path === registriesConfDropInPath)) {
    lines.push("  verify_registries_conf");
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
  const managed = plan.files
    .flatMap((file) =>
      file.path === systemCaPath ? [systemCaPath, systemCaPathRhel] : [file.path],
    )
    .join("\n");
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
  | { readonly kind: "docker-exec"; readonly container: string }
  | { readonly kind: "manual" };

/** The file name of a node's script where it is written for review or for an operator. */
export const nodeScriptFileName = "node-script.sh";

/**
 * The command lines that run the script (which travels on stdin). They hold no content and no
 * secret: over SSH the line is what the remote shell runs; for kind nodes it runs locally; for
 * manual nodes it is what the operator runs as root on the node, beside the written script.
 */
export function nodeCommands(access: NodeAccessKind): { create: string; delete: string } {
  if (access.kind === "manual") {
    return {
      create: `sh -s apply < ${nodeScriptFileName}`,
      delete: `sh -s delete < ${nodeScriptFileName}`,
    };
  }
  const shell =
    access.kind === "ssh"
      ? access.sudo
        ? "sudo -n sh -s"
        : "sh -s"
      : `docker exec -i ${shellQuote(access.container)} sh -s`;
  return { create: `${shell} apply`, delete: `${shell} delete` };
}
