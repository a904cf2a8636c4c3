#!/usr/bin/env bash
# Installs the Debian packages the test lab drives for real. Idempotent; needs root (or sudo).
#   docker.io        Docker engine (dockerd) that runs the registry containers
#   docker-registry  CNCF distribution 2.8, imported as the lab's registry image (nothing is pulled)
#   busybox-static   sh + wget inside that image, as in the upstream Alpine-based registry:2
#   skopeo           the copy engine under test
#   openssl          the per-run certificate authority
#   debootstrap      builds the lab's cluster-node image (containerd, podman, sshd) from Debian packages
#   debian-archive-keyring  lets debootstrap verify what it downloads
#   openssh-client   ssh and ssh-keygen: node configuration is delivered over SSH as remote.Command does
#   kubectl          the conformance actions drive it (against a fake API server in the tests)
#   util-linux       flock, which serialises writers into one OCI archive
set -euo pipefail

packages=(docker.io docker-registry busybox-static skopeo openssl ca-certificates tar debootstrap debian-archive-keyring openssh-client kubectl util-linux)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "lab prerequisites: all installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "lab prerequisites missing (${missing[*]}) and not root: install them as root" >&2; exit 1; }
  sudo=sudo
fi
echo "lab prerequisites: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "lab prerequisites: installed ${missing[*]}"
