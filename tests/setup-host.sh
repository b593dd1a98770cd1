#!/usr/bin/env bash
# Install what the tests need on a fresh Debian 12 machine: Debian packages, then the
# pinned Python toolchain in .venv. Idempotent; safe to re-run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}

# apt-get install the packages of "$@" that are not installed yet; APT_FLAGS adds options.
install_missing() {
  local need=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
  done
  [ "${#need[@]}" -gt 0 ] || return 0
  echo "setup: apt-get install ${APT_FLAGS:-}${APT_FLAGS:+ }${need[*]}"
  apt-get update -qq
  # shellcheck disable=SC2086 # APT_FLAGS holds separate options
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${APT_FLAGS:-} "${need[@]}" >/dev/null
}

install_missing docker.io debootstrap mmdebstrap shellcheck openssl jq curl rsync openssh-client vagrant vagrant-libvirt nftables
# The VM tier (tests/vm): QEMU, the box's disk tools and libvirt's daemons for vagrant-libvirt,
# without recommends (polkit, firewalld and the rest of a desktop virtualisation host).
APT_FLAGS=--no-install-recommends install_missing qemu-system-x86 qemu-utils extlinux libvirt-daemon \
  libvirt-daemon-driver-qemu libvirt-clients dnsmasq-base

if [ ! -x "$repo/.venv/bin/python" ]; then
  "$python" -m venv "$repo/.venv"
fi
stamp=$repo/.venv/.requirements.sha256
want=$(sha256sum "$repo/requirements-dev.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: pip install -r requirements-dev.txt"
  "$repo/.venv/bin/pip" install -q -r "$repo/requirements-dev.txt"
  "$repo/.venv/bin/pip" check
  echo "$want" >"$stamp"
fi

# Playbooks and unit tests import the collection as kubelab.kubeadm: make the checkout
# itself that collection (ansible.cfg puts build/collections on collections_path).
link=$repo/build/collections/ansible_collections/kubelab/kubeadm
mkdir -p "$(dirname "$link")"
[ -L "$link" ] || ln -sfn "$repo" "$link"

# The intranet-registry test (tests/bundle, docs/registry-mirror.md) runs a real CNCF
# Distribution registry on loopback; no registry image can be pulled here, so build it from
# its Go module once.
registry_bin=${KUBELAB_STATE:-/var/tmp/kubelab}/tools/registry
if [ ! -x "$registry_bin" ] && command -v go >/dev/null 2>&1; then
  echo "setup: go install github.com/distribution/distribution/v3/cmd/registry@v3.0.0"
  GOBIN=$(dirname "$registry_bin") GOTOOLCHAIN=local go install github.com/distribution/distribution/v3/cmd/registry@v3.0.0
fi
