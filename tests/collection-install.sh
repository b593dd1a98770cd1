#!/usr/bin/env bash
# Build the collection tarball, install it with no network into an empty directory, and show
# each module's documentation from that install: what a user on an air-gapped controller does.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${VENV:-$repo/.venv}/bin
work=$(mktemp -d "${TMPDIR:-/tmp}/kubelab-collection.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$bin/ansible-galaxy" collection build "$repo" --output-path "$work/dist"
tarball=$(ls "$work"/dist/kubelab-kubeadm-*.tar.gz)
# From an empty directory without ansible.cfg: the checkout's own collections path must not
# make the install a no-op.
cd "$work"
env -u ANSIBLE_CONFIG "$bin/ansible-galaxy" collection install --offline -p "$work/install" "$tarball"
for module in "$repo"/plugins/modules/*.py; do
  name=$(basename "$module" .py)
  out=$(env -u ANSIBLE_CONFIG ANSIBLE_NOCOLOR=1 ANSIBLE_COLLECTIONS_PATH="$work/install" "$bin/ansible-doc" "kubelab.kubeadm.$name")
  grep -q "^> MODULE kubelab.kubeadm.$name" <<<"$out" || { echo "ansible-doc kubelab.kubeadm.$name: no documentation" >&2; exit 1; }
  grep -q "RETURN VALUES" <<<"$out" || { echo "ansible-doc kubelab.kubeadm.$name: no RETURN values" >&2; exit 1; }
  echo "ansible-doc kubelab.kubeadm.$name: $(grep -c . <<<"$out") lines"
done
