#!/usr/bin/env bash
# Regenerates an e2e image list from the conformance image itself, on a CONNECTED machine with
# Docker or Podman: the authoritative list for a release (the shipped catalog files were read
# from source snapshots). The result is in the exact `e2e.test --list-images` format, with a
# provenance header naming the image digest, checked with the project's own list parser.
#
#   scripts/regenerate-catalog.sh <kubernetes version> [output file]
#   e.g. scripts/regenerate-catalog.sh 1.31.4 lists/kubernetes-v1.31.4.txt
#
# Use the file as imagesListFiles in a stack (with imagesIncludeCatalog false), or add it to
# core/images/catalog/ with an entry in CATALOG_FILES (core/images/catalog.ts).
# Environment: CONFORMANCE_IMAGE (default registry.k8s.io/conformance:v<version>),
# CONTAINER_ENGINE (default docker; podman works the same).
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:?usage: $0 <kubernetes version, e.g. 1.31.4> [output file]}
version=${version#v}
if [[ ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "kubernetes version must be MAJOR.MINOR.PATCH (e.g. 1.31.4), got '$1'" >&2
  exit 2
fi
image=${CONFORMANCE_IMAGE:-registry.k8s.io/conformance:v$version}
engine=${CONTAINER_ENGINE:-docker}
output=${2:-kubernetes-v$version.txt}

"$engine" pull "$image" >/dev/null
pinned=$("$engine" image inspect --format '{{index .RepoDigests 0}}' "$image")
if [[ ! $pinned =~ @sha256:[0-9a-f]{64}$ ]]; then
  echo "cannot tell the digest of $image (got '$pinned'); pull it from a registry first" >&2
  exit 1
fi
images=$("$engine" run --rm --entrypoint /usr/local/bin/e2e.test "$image" --list-images)

temporary=$(mktemp "${output}.XXXXXX")
trap 'rm -f "$temporary" "$temporary.count"' EXIT
{
  echo "# Kubernetes v$version -- images printed by \`e2e.test --list-images\` (default registries)"
  echo "# SOURCE: image $pinned"
  echo "# generated $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/regenerate-catalog.sh; sorted and de-duplicated"
  echo "# The list excludes the conformance image itself (the image set adds it)."
  printf '%s\n' "$images" | sed 's/[[:space:]]*$//' | grep -v '^$' | LC_ALL=C sort -u
} >"$temporary"

# Every line must be an image reference our parser accepts, or the file is not written.
node -r ts-node/register/transpile-only -e '
  const { readFileSync } = require("node:fs");
  const { parseImageList } = require("./core/images/list-file");
  const refs = parseImageList(readFileSync(process.argv[1], "utf8"), process.argv[2]);
  process.stdout.write(String(refs.length));
' "$temporary" "$output" >"$temporary.count"
count=$(cat "$temporary.count")
mv "$temporary" "$output"
echo "wrote $output: $count images from $pinned"
