"""Fixtures of the bundle tests (module_utils and modules): a small but real offline bundle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_write import write_manifest

_BUILDER = Path(__file__).parent / "module_utils" / "bundle_builder.py"
_spec = importlib.util.spec_from_file_location("bundle_builder", _BUILDER)
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


@pytest.fixture
def bundle(tmp_path):
    """A bundle directory with every component and its manifest.json and SHA256SUMS written."""
    root = bb.make_bundle(tmp_path / "bundle")
    write_manifest(str(root), bb.META, bb.IMAGES)
    return root
