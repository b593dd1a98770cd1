"""Unit tests of plugins/module_utils/_bundle_write.py: writing manifest.json and SHA256SUMS of real bundles."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_write as BW
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import COMPONENTS
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_verify import verify_bundle

_spec = importlib.util.spec_from_file_location("bundle_builder", Path(__file__).with_name("bundle_builder.py"))
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


def test_utc_now_format():
    assert len(BW.utc_now()) == 20
    assert BW.utc_now().endswith("Z")


def test_compute_file_entries_rejects_off_layout_and_symlinks(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    entries = BW.compute_file_entries(str(root))
    assert [e["path"] for e in entries] == sorted(e["path"] for e in entries)
    assert {e["component"] for e in entries} == set(COMPONENTS)
    (root / "bin/kubeadm.sha256").write_text("x")
    (root / "bin/link").symlink_to(root / "bin/kubeadm")
    with pytest.raises(BundleError) as info:
        BW.compute_file_entries(str(root))
    assert "bin/kubeadm.sha256: not part of the bundle layout (docs/bundle.md): remove it" in info.value.problems
    assert "bin/link: a symlink or special file; put the real file in the bundle" in info.value.problems
    with pytest.raises(BundleError, match="does not exist"):
        BW.compute_file_entries(str(tmp_path / "none"))


def test_write_manifest_is_idempotent_and_sums_pass_sha256sum(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    first = BW.write_manifest(str(root), bb.META, bb.IMAGES, check_mode=True)
    assert first["changed"] is True
    assert not (root / "manifest.json").exists()
    first = BW.write_manifest(str(root), bb.META, bb.IMAGES)
    assert first["changed"] is True
    assert first["before"] is None
    image = first["manifest"]["images"][0]
    assert image == {
        "ref": bb.IMAGE_REF,
        "archive": bb.IMAGE_ARCHIVE,
        "id": bb.IMAGE_ID,
        "config_digest": bb.IMAGE_ID,
        "group": "kubeadm",
    }
    assert (root / "manifest.json").stat().st_mode & 0o777 == 0o644
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=root, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 10
    second = BW.write_manifest(str(root), bb.META, bb.IMAGES)
    assert second["changed"] is False
    assert second["manifest"]["created"] == first["manifest"]["created"]
    # a changed file changes the manifest
    (root / "bin/kubectl").write_bytes(b"new kubectl")
    third = BW.write_manifest(str(root), bb.META, bb.IMAGES)
    assert third["changed"] is True
    assert third["before"] == first["after"]
    # an explicit creation time is recorded as given
    fourth = BW.write_manifest(str(root), dict(bb.META, created="2026-01-01T00:00:00Z"), bb.IMAGES)
    assert fourth["manifest"]["created"] == "2026-01-01T00:00:00Z"
    assert fourth["changed"] is True
    # a damaged SHA256SUMS alone is rewritten
    (root / "SHA256SUMS").write_text("x\n")
    assert BW.write_manifest(str(root), bb.META, bb.IMAGES, created="2026-01-01T00:00:00Z")["changed"] is True
    assert verify_bundle(str(root))["verified_files"] == 9


def test_write_manifest_replaces_an_unparsable_manifest(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    (root / "manifest.json").write_text("{broken")
    assert BW.write_manifest(str(root), bb.META, bb.IMAGES)["changed"] is True
    assert verify_bundle(str(root))["verified_files"] == 9


@pytest.mark.parametrize(
    ("meta", "images", "fragment"),
    [
        (dict(bb.META, colour="blue"), bb.IMAGES, "unknown manifest keys colour"),
        ({"architecture": "amd64"}, bb.IMAGES, "needs kubernetes_version"),
        (bb.META, [{"group": "kubeadm", "id": bb.IMAGE_ID}], "has no ref"),
        (bb.META, [dict(bb.IMAGES[0], ref="registry.k8s.io/pause:3.10.1")], "does not exist: export it"),
        (bb.META, [dict(bb.IMAGES[0], config_digest="sha256:" + "0" * 64)], "export the image again"),
        (
            bb.META,
            [dict(bb.IMAGES[0], ref="kubelab.invalid/other:1", archive=bb.IMAGE_ARCHIVE)],
            "not kubelab.invalid/other:1",
        ),
        (bb.META, [dict(bb.IMAGES[0], group="addons")], "group 'addons' is not one of"),
        (bb.META, [], "no entry of 'images' refers to"),
    ],
)
def test_write_manifest_refuses_bad_input(tmp_path, meta, images, fragment):
    root = bb.make_bundle(tmp_path / "b")
    with pytest.raises(BundleError) as info:
        BW.write_manifest(str(root), meta, images)
    assert fragment in str(info.value)
    assert not (root / "manifest.json").exists()


def test_write_manifest_unreadable_image_archive(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    (root / bb.IMAGE_ARCHIVE).write_text("not a tar")
    with pytest.raises(BundleError, match="not a readable `docker save` archive"):
        BW.write_manifest(str(root), bb.META, bb.IMAGES)


def test_write_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    root = bb.make_bundle(tmp_path / "b")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(BW.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        BW.write_manifest(str(root), bb.META, bb.IMAGES)
    assert sorted(p.name for p in root.iterdir()) == ["archives", "bin", "images", "manifests"]
