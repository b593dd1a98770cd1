"""Unit tests of plugins/module_utils/_bundle_verify.py: verifying a bundle directory on real files."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_verify as BV
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError, sha256_file
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import COMPONENTS

_spec = importlib.util.spec_from_file_location("bundle_builder", Path(__file__).with_name("bundle_builder.py"))
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


def test_verify_bundle_ok(bundle):
    result = BV.verify_bundle(
        str(bundle),
        kubernetes_version="1.36.3",
        architecture="amd64",
        require_components=list(COMPONENTS),
        require_images=[bb.IMAGE_REF],
    )
    assert result["verified_files"] == 9
    assert result["unlisted"] == []
    described = BV.describe(result["manifest"], str(bundle))
    assert described["images"][0]["archive_path"] == str(bundle / bb.IMAGE_ARCHIVE)
    assert described["images"][0]["archive_size"] == bb.IMAGE_FIXTURE.stat().st_size
    assert described["files_by_component"]["kubeadm"][0]["abs_path"] == str(bundle / "bin/kubeadm")
    assert BV.describe(result["manifest"], None)["images"][0]["archive_path"] == ""


def test_one_changed_byte_names_file_expected_and_actual(bundle):
    archive = bundle / "archives/cni-plugins-linux-amd64-v1.9.1.tgz"
    expected = bb.file_entry(bb.manifest_of(bundle), "archives/cni-plugins-linux-amd64-v1.9.1.tgz")["sha256"]
    bb.flip_byte(archive)
    actual = sha256_file(str(archive))
    with pytest.raises(BundleError) as info:
        BV.verify_bundle(str(bundle))
    message = str(info.value)
    assert (
        f"archives/cni-plugins-linux-amd64-v1.9.1.tgz: sha256 mismatch: expected {expected}, actual {actual}" in message
    )
    # without checksums, a same-size change goes unnoticed (sizes only), by design of checksum=false
    assert BV.verify_bundle(str(bundle), checksum=False)["verified_files"] == 9


def test_size_mismatch_missing_not_regular_and_symlink(bundle, tmp_path):
    manifest = bb.manifest_of(bundle)
    with open(bundle / "bin/kubelet", "ab") as handle:
        handle.write(b"x")
    (bundle / "bin/kubectl").unlink()
    (bundle / "archives/crictl-v1.36.0-linux-amd64.tar.gz").unlink()
    (bundle / "archives/crictl-v1.36.0-linux-amd64.tar.gz").mkdir()
    outside = tmp_path / "outside"
    outside.write_bytes(b"x")
    (bundle / "bin/kubeadm").unlink()
    (bundle / "bin/kubeadm").symlink_to(outside)
    with pytest.raises(BundleError) as info:
        BV.verify_bundle(str(bundle))
    problems = info.value.problems
    kubelet = bb.file_entry(manifest, "bin/kubelet")
    assert any(
        p.startswith(f"bin/kubelet: size mismatch: expected {kubelet['size']} bytes, actual {kubelet['size'] + 1}")
        and f"sha256 expected {kubelet['sha256']}, actual {sha256_file(str(bundle / 'bin/kubelet'))}" in p
        for p in problems
    ), problems
    assert any(p.startswith("bin/kubectl: missing (expected sha256") for p in problems)
    assert "archives/crictl-v1.36.0-linux-amd64.tar.gz: not a regular file" in problems
    assert any(p.startswith("bin/kubeadm: resolves outside the bundle directory") for p in problems)
    assert str(info.value).startswith(f"bundle {bundle} failed verification:\n- ")


def test_identity_mismatch_fails_verification(bundle):
    with pytest.raises(BundleError, match=r"holds Kubernetes 1\.36\.3 but 1\.37\.0"):
        BV.verify_bundle(str(bundle), kubernetes_version="1.37.0")


def test_sha256sums_checks(bundle):
    sums = bundle / "SHA256SUMS"
    good = sums.read_text()
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=bundle, check=False).returncode == 0
    sums.unlink()
    with pytest.raises(BundleError, match="SHA256SUMS is missing"):
        BV.verify_bundle(str(bundle))
    sums.write_text("not a line\n")
    with pytest.raises(BundleError, match="line 1 is not"):
        BV.verify_bundle(str(bundle))
    lines = good.splitlines()
    sums.write_text("\n".join(lines[1:]) + "\n" + "0" * 64 + "  extra.txt\n\n")
    with pytest.raises(BundleError) as info:
        BV.verify_bundle(str(bundle))
    assert any("has no line for archives/cni-plugins" in p for p in info.value.problems)
    assert any("lists extra.txt, which the manifest does not" in p for p in info.value.problems)
    wrong = lines[0].replace(lines[0][:64], "f" * 64)
    sums.write_text("\n".join([wrong, *lines[1:]]) + "\n")
    with pytest.raises(BundleError, match="disagrees with the manifest on archives/cni"):
        BV.verify_bundle(str(bundle))


def test_unlisted_files_are_reported(bundle):
    (bundle / "notes.txt").write_text("hello")
    assert BV.verify_bundle(str(bundle))["unlisted"] == ["notes.txt"]


def test_copied_bundle_still_verifies(bundle, tmp_path):
    copy_dir = tmp_path / "copy"
    shutil.copytree(bundle, copy_dir)
    assert BV.verify_bundle(str(copy_dir))["verified_files"] == 9
