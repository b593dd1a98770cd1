"""Fixtures of the bundle tests (module_utils and modules): a small but real offline bundle."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_trust import sign_bundle
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_write import write_manifest

_BUILDER = Path(__file__).parent / "module_utils" / "bundle_builder.py"
_spec = importlib.util.spec_from_file_location("bundle_builder", _BUILDER)
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


def make_key(directory: Path, name: str) -> Path:
    """A real ed25519 key pair (no passphrase) made by ssh-keygen: directory/name and name.pub."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)], check=True, timeout=30
    )
    return key


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory) -> Path:
    """The builder's signing key of the test bundles."""
    return make_key(tmp_path_factory.mktemp("keys"), "builder")


@pytest.fixture(scope="session")
def trusted_keys(signing_key) -> list:
    """The trusted_keys that accept the test bundles: the signing key's public line."""
    return [(signing_key.parent / "builder.pub").read_text().strip()]


@pytest.fixture
def bundle(tmp_path, signing_key):
    """A bundle directory with every component, its manifest.json and SHA256SUMS written, signed."""
    root = bb.make_bundle(tmp_path / "bundle")
    write_manifest(str(root), bb.META, bb.IMAGES)
    sign_bundle(str(root), str(signing_key))
    return root
