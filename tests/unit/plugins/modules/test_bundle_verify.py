"""kubelab.kubeadm.bundle_verify on real bundle directories and tarballs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_verify
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import sha256_file
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_write import write_manifest
from ansible_collections.kubelab.kubeadm.plugins.modules import bundle_verify

_spec = importlib.util.spec_from_file_location(
    "bundle_builder", Path(__file__).resolve().parents[1] / "module_utils" / "bundle_builder.py"
)
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


@pytest.fixture
def verify(run_module, trusted_keys):
    """bundle_verify with the test builder's key trusted (unless the arguments name their own)."""

    def run(args, **kwargs):
        return run_module(bundle_verify.main, {"trusted_keys": trusted_keys, **args}, **kwargs)

    return run


def test_directory_ok(verify, bundle):
    result, failed = verify(
        {
            "path": str(bundle),
            "kubernetes_version": "v1.36.3",
            "architecture": "amd64",
            "require_components": ["kubeadm", "docker", "image"],
            "require_images": [bb.IMAGE_REF],
        },
    )
    assert not failed, result
    assert result["changed"] is False
    assert result["bundle_dir"] == str(bundle)
    assert result["verified_files"] == 9
    assert result["manifest"]["kubernetes_version"] == "1.36.3"
    assert result["files_by_component"]["docker"][0]["abs_path"] == str(bundle / "archives/docker-29.7.2.tgz")
    assert result["images"][0]["archive_path"] == str(bundle / bb.IMAGE_ARCHIVE)
    assert result["images"][0]["id"] == bb.IMAGE_ID
    assert result["unlisted_files"] == []


def test_check_mode_runs_normally(verify, bundle):
    (bundle / "bin/kubeadm").write_bytes(b"replaced!")
    result, failed = verify({"path": str(bundle)}, check_mode=True)
    assert failed
    assert "bin/kubeadm: size mismatch" in result["msg"]


def test_one_changed_byte_in_an_archive_fails_naming_file_expected_actual(verify, bundle):
    archive = bundle / "archives/cri-dockerd-0.4.3.amd64.tgz"
    expected = next(
        f["sha256"]
        for f in json.loads((bundle / "manifest.json").read_text())["files"]
        if f["path"].startswith("archives/cri")
    )
    data = bytearray(archive.read_bytes())
    data[20] ^= 0xFF
    archive.write_bytes(bytes(data))
    actual = sha256_file(str(archive))
    result, failed = verify({"path": str(bundle)})
    assert failed
    line = f"archives/cri-dockerd-0.4.3.amd64.tgz: sha256 mismatch: expected {expected}, actual {actual}"
    assert line in result["msg"]
    assert any(p.startswith(line) for p in result["problems"])


def test_wrong_version_and_missing_component(verify, bundle):
    result, failed = verify({"path": str(bundle), "kubernetes_version": "1.35.1", "require_components": ["kubeadm"]})
    assert failed
    assert "holds Kubernetes 1.36.3 but 1.35.1 is asked for" in result["msg"]


def test_bad_component_choice(verify, bundle):
    result, failed = verify({"path": str(bundle), "require_components": ["helm"]})
    assert failed
    assert "require_components" in result["msg"]


def test_missing_path_and_plain_file(verify, tmp_path):
    result, failed = verify({"path": str(tmp_path / "none")})
    assert failed
    assert "does not exist: build the bundle with playbooks/bundle.yml" in result["msg"]
    (tmp_path / "file.txt").write_text("hello")
    result, failed = verify({"path": str(tmp_path / "file.txt")})
    assert failed
    assert "neither a bundle directory nor a tarball" in result["msg"]


def test_unreadable_file_is_reported(verify, bundle, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_bundle_verify, "sha256_file", denied)
    result, failed = verify({"path": str(bundle)})
    assert failed
    assert "cannot read the bundle at" in result["msg"]
    assert "Permission denied" in result["msg"]


def test_tarball_verified_in_place(verify, bundle, tmp_path):
    tarball = bb.tar_bundle(bundle, tmp_path / "b.tar.gz")
    result, failed = verify({"path": str(tarball), "architecture": "amd64"})
    assert not failed, result
    assert result["changed"] is False
    assert result["bundle_dir"] == ""
    assert result["verified_files"] == 9
    assert result["images"][0]["archive_path"] == ""


def test_tarball_unpacked_once(verify, bundle, tmp_path):
    tarball = bb.tar_bundle(bundle, tmp_path / "b.tar.gz")
    dest = tmp_path / "unpacked"
    result, failed = verify({"path": str(tarball), "unpack_dir": str(dest)}, check_mode=True)
    assert not failed, result
    assert result["changed"] is True
    assert not dest.exists()
    result, failed = verify({"path": str(tarball), "unpack_dir": str(dest)})
    assert not failed, result
    assert result["changed"] is True
    assert result["bundle_dir"] == str(dest)
    assert result["images"][0]["archive_path"] == str(dest / bb.IMAGE_ARCHIVE)
    assert (dest / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()
    result, failed = verify({"path": str(tarball), "unpack_dir": str(dest)})
    assert not failed, result
    assert result["changed"] is False
    assert result["verified_files"] == 9


def test_unpack_dir_with_another_bundle_is_left_alone(verify, bundle, tmp_path):
    tarball = bb.tar_bundle(bundle, tmp_path / "b.tar.gz")
    other = bb.make_bundle(tmp_path / "other")
    write_manifest(str(other), dict(bb.META, created="2020-01-01T00:00:00Z"), bb.IMAGES)
    before = (other / "manifest.json").read_text()
    result, failed = verify({"path": str(tarball), "unpack_dir": str(other)})
    assert failed
    assert "already holds another bundle" in result["msg"]
    assert (other / "manifest.json").read_text() == before


def test_unpack_dir_not_empty(verify, bundle, tmp_path):
    tarball = bb.tar_bundle(bundle, tmp_path / "b.tar.gz")
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result, failed = verify({"path": str(tarball), "unpack_dir": str(dest)})
    assert failed
    assert "is not an empty directory" in result["msg"]
    assert (dest / "keep.txt").read_text() == "mine"
