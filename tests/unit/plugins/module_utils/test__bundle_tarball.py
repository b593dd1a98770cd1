"""Unit tests of plugins/module_utils/_bundle_tarball.py: verifying and unpacking real bundle tarballs."""

from __future__ import annotations

import importlib.util
import io
import os
import tarfile
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_tarball as BT
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError

_spec = importlib.util.spec_from_file_location("bundle_builder", Path(__file__).with_name("bundle_builder.py"))
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


@pytest.mark.parametrize("top", ["bundle", None, "."])
def test_verify_tarball_and_unpack(bundle, tmp_path, top):
    tarball = bb.tar_bundle(bundle, tmp_path / "bundle.tar.gz", top=top)
    result = BT.verify_tarball(str(tarball), kubernetes_version="1.36.3", require_components=["image"])
    assert result["verified_files"] == 9
    assert BT.verify_tarball(str(tarball), checksum=False)["verified_files"] == 9
    dest = tmp_path / "unpacked" / "b"
    assert BT.unpack_tarball(str(tarball), str(dest))["verified_files"] == 9
    assert os.access(dest / "bin/kubeadm", os.X_OK)
    assert not os.access(dest / bb.IMAGE_ARCHIVE, os.X_OK)
    assert (dest / "SHA256SUMS").read_text() == (bundle / "SHA256SUMS").read_text()
    assert [p.name for p in (tmp_path / "unpacked").iterdir()] == ["b"]  # no staging directory left
    with pytest.raises(BundleError, match="is not an empty directory"):
        BT.unpack_tarball(str(tarball), str(dest))


def test_unpack_into_an_empty_directory(bundle, tmp_path):
    tarball = bb.tar_bundle(bundle, tmp_path / "bundle.tar", top=None)
    dest = tmp_path / "empty"
    dest.mkdir()
    assert BT.unpack_tarball(str(tarball), str(dest))["manifest"]["kubernetes_version"] == "1.36.3"


def test_corrupt_tarball_is_neither_accepted_nor_unpacked(bundle, tmp_path):
    bb.flip_byte(bundle / "bin/kubectl", 3)
    tarball = bb.tar_bundle(bundle, tmp_path / "bundle.tar.gz")
    with pytest.raises(
        BundleError, match=r"bin/kubectl: sha256 mismatch: expected [0-9a-f]{64}, actual [0-9a-f]{64}"
    ):
        BT.verify_tarball(str(tarball))
    dest = tmp_path / "out"
    with pytest.raises(BundleError, match="nothing was unpacked"):
        BT.unpack_tarball(str(tarball), str(dest))
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle-unpack")] == []


def _tar_with(tmp_path: Path, bundle: Path, extra) -> Path:
    tarball = tmp_path / "odd.tar"
    with tarfile.open(tarball, "w") as archive:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=path.relative_to(bundle).as_posix())
        extra(archive)
    return tarball


def test_tarball_with_links_unsafe_paths_and_missing_files(bundle, tmp_path):
    def extra(archive):
        link = tarfile.TarInfo("bin/evil")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        data = b"x"
        info = tarfile.TarInfo("../escape")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    (bundle / "bin/kubelet").unlink()
    tarball = _tar_with(tmp_path, bundle, extra)
    with pytest.raises(BundleError) as info:
        BT.verify_tarball(str(tarball))
    problems = info.value.problems
    assert any(p.startswith("bin/evil: the tarball holds a link") for p in problems)
    assert any(p.startswith("../escape: unsafe path") for p in problems)
    assert any(p.startswith("bin/kubelet: missing from the tarball") for p in problems)


def test_tarball_without_manifest_or_sums(bundle, tmp_path):
    (bundle / "SHA256SUMS").unlink()
    tarball = _tar_with(tmp_path, bundle, lambda archive: None)
    with pytest.raises(BundleError, match="SHA256SUMS is missing from the tarball"):
        BT.verify_tarball(str(tarball))
    (bundle / "SHA256SUMS").write_text("garbage\n")
    tarball = _tar_with(tmp_path, bundle, lambda archive: None)
    with pytest.raises(BundleError, match="SHA256SUMS line 1"):
        BT.verify_tarball(str(tarball))
    (bundle / "manifest.json").unlink()
    tarball = _tar_with(tmp_path, bundle, lambda archive: None)
    with pytest.raises(BundleError, match=r"holds no manifest\.json"):
        BT.verify_tarball(str(tarball))
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(BundleError, match="not a readable tarball"):
        BT.verify_tarball(str(broken))
