"""kubelab.kubeadm.bundle_manifest on a real bundle directory."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.modules import bundle_manifest

_spec = importlib.util.spec_from_file_location(
    "bundle_builder", Path(__file__).resolve().parents[1] / "module_utils" / "bundle_builder.py"
)
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)
KEY = {"path": ""}  # the session signing key, set by the fixture below


@pytest.fixture
def root(tmp_path):
    return bb.make_bundle(tmp_path / "bundle")


@pytest.fixture(autouse=True)
def _key(signing_key, monkeypatch):
    monkeypatch.setitem(KEY, "path", str(signing_key))


def args(root, **extra):
    base = {
        "path": str(root),
        "signing_key": KEY["path"],
        "kubernetes_version": "v1.36.3",
        "architecture": "amd64",
        "versions": {"docker": "29.7.2", "cri_dockerd": "v0.4.3"},
        "images": [{"ref": bb.IMAGE_REF, "group": "kubeadm", "id": bb.IMAGE_ID}],
    }
    base.update(extra)
    return base


def test_writes_then_is_idempotent(run_module, root):
    result, failed = run_module(bundle_manifest.main, args(root), check_mode=True, diff=True)
    assert not failed, result
    assert result["changed"] is True
    assert result["diff"]["before"] == ""
    assert not (root / "manifest.json").exists()

    result, failed = run_module(bundle_manifest.main, args(root))
    assert not failed, result
    assert result["changed"] is True
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest == result["manifest"]
    assert manifest["kubernetes_version"] == "1.36.3"
    assert manifest["builder"] == "playbooks/bundle.yml"
    assert manifest["image_repository"] == "registry.k8s.io"
    assert manifest["versions"] == {"docker": "29.7.2", "cri_dockerd": "0.4.3"}
    assert manifest["images"][0]["config_digest"] == bb.IMAGE_ID
    assert result["sha256sums_path"] == str(root / "SHA256SUMS")
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=root, check=False).returncode == 0

    result, failed = run_module(bundle_manifest.main, args(root), diff=True)
    assert not failed
    assert result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"]


def test_new_file_changes_manifest_and_diff_shows_it(run_module, root):
    run_module(bundle_manifest.main, args(root))
    (root / "manifests/extra-network.yml").write_text("---\n")
    result, failed = run_module(bundle_manifest.main, args(root), diff=True)
    assert not failed
    assert result["changed"] is True
    assert "manifests/extra-network.yml" in result["diff"]["after"]
    assert "manifests/extra-network.yml" not in result["diff"]["before"]


def test_stale_file_fails_without_writing(run_module, root):
    (root / "archives/docker-28.0.0.tgz").write_bytes(b"old")
    result, failed = run_module(bundle_manifest.main, args(root))
    assert failed
    assert "component docker has 2 files" in result["msg"]
    assert any("archives/docker-28.0.0.tgz" in p for p in result["problems"])
    assert not (root / "manifest.json").exists()


def test_bad_group_is_rejected_by_the_argument_spec(run_module, root):
    result, failed = run_module(
        bundle_manifest.main, args(root, images=[{"ref": bb.IMAGE_REF, "group": "x", "id": bb.IMAGE_ID}])
    )
    assert failed
    assert "group" in result["msg"]


def test_unwritable_directory(run_module, root, monkeypatch):
    from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_write

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_bundle_write.tempfile, "mkstemp", denied)
    result, failed = run_module(bundle_manifest.main, args(root))
    assert failed
    assert "cannot write the manifest in" in result["msg"]
