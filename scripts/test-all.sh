#!/usr/bin/env bash
# The project's one test command (npm run test:all): installs what the lab needs on a fresh
# Debian machine, then runs typecheck, lint, unit tests, Pulumi mock tests (their own mocha
# process: mocks are process-global) and the integration tests, which start and stop the lab.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
bash scripts/lab-prereqs.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

logs=.lab/test-logs
mkdir -p "$logs"
summary=()

step() {
  local name=$1
  shift
  local t0=$SECONDS
  echo
  echo "=== $name"
  if ! "$@" 2>&1 | tee "$logs/$name.log"; then
    echo "=== $name FAILED (log: $logs/$name.log)" >&2
    exit 1
  fi
  local counts
  counts=$(grep -Eo '[0-9]+ (passing|failing|pending)' "$logs/$name.log" | tr '\n' ' ' || true)
  summary+=("$(printf '%-12s %4ss  %s' "$name" $((SECONDS - t0)) "${counts:-ok}")")
}

step typecheck npm run --silent typecheck
step lint npm run --silent lint
step unit npm run --silent test:unit
step mocks npm run --silent test:mocks
step integration npm run --silent test:integration

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "all green in $((SECONDS - started))s"
