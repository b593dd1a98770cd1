#!/usr/bin/env bash
# Run `ansible-test sanity` offline-safe: ansible-test wants the collection at
# .../ansible_collections/kubelab/kubeadm, so the tracked (and untracked, not ignored) files
# are copied there first. Its --venv mode downloads a get-pip bootstrap from a host we cannot
# reach (ansible/ansible#77304); the stand-in below uses ensurepip + pip from PyPI instead.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
# Outside the checkout: inside it, ansible-test would ask git which files exist, and git
# ignores build/, so every target would be skipped.
top=$(mktemp -d "${TMPDIR:-/tmp}/kubelab-sanity.XXXXXX")
trap 'rm -rf "$top"' EXIT
dest=$top/ansible_collections/kubelab/kubeadm
mkdir -p "$dest"
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dest")

cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
cat >"$cache/get_pip_24_2.py" <<'PY'
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
PY

cd "$dest"
"$venv/bin/ansible-test" sanity --venv --python 3.11 --requirements --color no "$@"
