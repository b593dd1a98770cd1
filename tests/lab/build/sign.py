# SPDX-License-Identifier: GPL-3.0-or-later
"""Sign the lab bundle's manifest.json with the lab's own key (docs/bundle.md, "Signing").

    python3 tests/lab/build/sign.py [--bundle DIR]

The key is made once (ssh-keygen -t ed25519, no passphrase: a lab key, trusted by the lab's
inventory only) at ${KUBELAB_SIGNING_KEY:-/var/tmp/kubelab/signing/bundle_ed25519}, next to the
lab's SSH key; inventories/local trusts its .pub line (cluster_bundle_trusted_keys). The signature
is written by the collection's own signer (plugins/module_utils/_bundle.py: sign_bundle) and only
when manifest.json.sig is missing or does not verify with this key, so an up-to-date bundle is left
alone. It runs after build.py's cache check (a reassembled bundle has no signature yet) and before
the lab uses the bundle (tests/lab/conftest.py), also with --lab-skip-build.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import bundle_manifest

KEY = Path(os.environ.get("KUBELAB_SIGNING_KEY", "/var/tmp/kubelab/signing/bundle_ed25519"))
CACHE = Path(os.environ.get("KUBELAB_CACHE", "/var/tmp/kubelab/cache"))


def ensure_key(key: Path = KEY) -> bool:
    """Make the lab's signing key once. Returns True when it was made now."""
    if key.is_file() and key.with_name(key.name + ".pub").is_file():
        return False
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in (key, key.with_name(key.name + ".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubelab-lab-bundle", "-f", str(key)],
        check=True,
        timeout=60,
    )
    return True


def sign(bundle_dir: Path, key: Path = KEY) -> str:
    """Sign bundle_dir (when its signature is missing or not this key's). Returns a one-line note."""
    made = ensure_key(key)
    result = bundle_manifest.bundle.sign_bundle(str(bundle_dir), str(key))
    what = "signed" if result["changed"] else "signature current"
    return f"{what}: {bundle_dir}/manifest.json.sig by {result['fingerprint']}" + (f" (new key {key})" if made else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default=os.environ.get("KUBELAB_K8S_VERSION", "1.36.3"))
    parser.add_argument("--bundle", type=Path, help="the bundle directory (default: <cache>/<version>/bundle)")
    args = parser.parse_args(argv)
    bundle_dir = args.bundle or CACHE / args.version / "bundle"
    try:
        print(sign(bundle_dir))
    except (bundle_manifest.bundle.BundleError, OSError, subprocess.SubprocessError) as exc:
        print(f"sign: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
