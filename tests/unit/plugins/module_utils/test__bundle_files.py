"""Unit tests of plugins/module_utils/_bundle_files.py, the bundle code a node gets (real `docker save` archives)."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_files as BF
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import ModuleError

_spec = importlib.util.spec_from_file_location("bundle_builder", Path(__file__).with_name("bundle_builder.py"))
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


def test_bundle_error_lists_each_problem_and_is_a_module_error():
    err = BundleError("bundle x failed verification:", ["a: missing", "b: size mismatch"])
    assert str(err) == err.msg == "bundle x failed verification:\n- a: missing\n- b: size mismatch"
    assert (err.headline, err.problems) == ("bundle x failed verification:", ["a: missing", "b: size mismatch"])
    assert err.details == {"problems": ["a: missing", "b: size mismatch"]}
    assert isinstance(err, ModuleError)
    assert str(BundleError("plain")) == "plain"


def test_normalize_ref():
    assert BF.normalize_ref("docker.io/library/busybox:1") == "busybox:1"
    assert BF.normalize_ref("docker.io/flannel/flannel:v1") == "flannel/flannel:v1"
    assert BF.normalize_ref("library/busybox:1") == "busybox:1"
    assert BF.normalize_ref("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"


def test_sha256_file_in_chunks(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    expected = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert BF.sha256_file(str(path), chunk_size=7) == expected


def test_read_docker_archive_legacy_fixture():
    found = BF.read_docker_archive(str(bb.IMAGE_FIXTURE))
    assert found == {"config_digest": bb.IMAGE_ID, "repo_tags": [bb.IMAGE_REF]}


def _docker_archive(path: Path, manifest) -> Path:
    with tarfile.open(path, "w") as archive:
        if manifest is not None:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_read_docker_archive_oci_layout_and_errors(tmp_path):
    hexd = "ab" * 32
    oci = _docker_archive(tmp_path / "oci.tar", [{"Config": f"blobs/sha256/{hexd}", "RepoTags": ["x:1"]}])
    assert BF.read_docker_archive(str(oci)) == {"config_digest": f"sha256:{hexd}", "repo_tags": ["x:1"]}
    untagged = _docker_archive(tmp_path / "u.tar", [{"Config": f"{hexd}.json", "RepoTags": None}])
    assert BF.read_docker_archive(str(untagged))["repo_tags"] == []
    with pytest.raises(BundleError, match=r"has no manifest\.json"):
        BF.read_docker_archive(str(_docker_archive(tmp_path / "n.tar", None)))
    with pytest.raises(BundleError, match="exactly one image"):
        BF.read_docker_archive(str(_docker_archive(tmp_path / "2.tar", [{"Config": "a"}, {"Config": "b"}])))
    with pytest.raises(BundleError, match="cannot read the image config digest"):
        BF.read_docker_archive(str(_docker_archive(tmp_path / "c.tar", [{"Config": "nothex.json"}])))
    (tmp_path / "t.tar").write_text("plain text")
    with pytest.raises(BundleError, match="not a readable `docker save` archive"):
        BF.read_docker_archive(str(tmp_path / "t.tar"))
