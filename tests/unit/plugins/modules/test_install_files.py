"""install_files on this machine's file system (as root, like on a node): files, archives and content are
installed only when they differ, each source's sha256 is checked before anything of it is used, and what
was installed is recorded so that a node that has everything is answered from the record alone. Runs as root
(root-owned files, as on a node), like the rest of the unit tier."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.modules import install_files


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tgz(path: Path, members: dict[str, bytes | str], modes: dict[str, int] | None = None) -> str:
    """A gzip tar of `members` (bytes: a file; str: a symbolic link's target); its sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(body, str):
                info.type, info.linkname = tarfile.SYMTYPE, body
                tar.addfile(info)
            else:
                info.size, info.mode = len(body), (modes or {}).get(name, 0o755)
                tar.addfile(info, io.BytesIO(body))
    path.write_bytes(buf.getvalue())
    return sha(buf.getvalue())


@pytest.fixture
def node(tmp_path, run_module):
    """run(items, check_mode=False, phase='install') against a state directory of this test."""
    state = tmp_path / "state"

    def run(items, check_mode=False, phase="install"):
        items = [{"remote_src": True, **i} for i in items]
        return run_module(install_files.main, {"items": items, "state_dir": str(state), "_phase": phase}, check_mode)

    run.state = state
    return run


def test_a_file_is_installed_once_then_answered_from_the_record(tmp_path, node):
    body = b"#!/bin/sh\necho kubeadm\n"
    src = tmp_path / "kubeadm"
    src.write_bytes(body)
    dest = tmp_path / "bin" / "kubeadm"
    item = {"name": "kubeadm", "src": str(src), "sha256": sha(body), "dest": str(dest), "mode": "0755"}

    result, failed = node([item])
    assert not failed and result["changed"] is True
    assert result["items"] == [
        {"name": "kubeadm", "status": "installed", "reason": "not installed yet", "changed_files": [str(dest)]}
    ]
    assert dest.read_bytes() == body and oct(dest.stat().st_mode & 0o7777) == "0o755"
    record = json.loads((node.state / "kubeadm.json").read_text())
    assert record["identity"]["sha256"] == sha(body) and str(dest) in record["files"]

    src.unlink()  # the no-op must not need the source at all
    result, failed = node([item])
    assert not failed and result["changed"] is False
    assert result["items"][0]["status"] == "up to date" and result["changed_files"] == []


def test_a_copy_that_does_not_match_its_sha256_installs_nothing(tmp_path, node):
    src = tmp_path / "kubelet"
    src.write_bytes(b"tampered")
    dest = tmp_path / "bin" / "kubelet"
    result, failed = node([{"name": "kubelet", "src": str(src), "sha256": sha(b"original"), "dest": str(dest)}])
    assert failed
    assert f"has sha256 {sha(b'tampered')}, expected {sha(b'original')}" in result["msg"]
    assert "nothing of it was installed" in result["msg"]
    assert not dest.exists() and not (node.state / "kubelet.json").exists()


def test_an_archive_is_unpacked_and_a_file_changed_on_the_node_is_put_back(tmp_path, node):
    archive = tmp_path / "docker.tgz"
    digest = make_tgz(archive, {"docker/dockerd": b"dockerd v1", "docker/docker": b"docker v1", "docker/": b""})
    dest = tmp_path / "bin"
    item = {
        "name": "docker",
        "src": str(archive),
        "sha256": digest,
        "dest": str(dest),
        "unpack": True,
        "strip_components": 1,
    }

    result, failed = node([item])
    assert not failed and sorted(result["changed_files"]) == [str(dest / "docker"), str(dest / "dockerd")]
    assert (dest / "dockerd").read_bytes() == b"dockerd v1"

    (dest / "dockerd").write_bytes(b"someone else's dockerd")
    result, failed = node([item])
    assert not failed and result["changed"] is True
    assert result["items"][0]["reason"] == f"{dest / 'dockerd'} changed since it was installed"
    assert result["changed_files"] == [str(dest / "dockerd")]  # the other file is left as it is
    assert (dest / "dockerd").read_bytes() == b"dockerd v1"

    assert node([item])[0]["changed"] is False


def test_another_version_is_installed_over_the_old(tmp_path, node):
    dest = tmp_path / "opt" / "cni"
    old, new = tmp_path / "cni-1.tgz", tmp_path / "cni-2.tgz"
    item = {"name": "cni", "dest": str(dest), "unpack": True}
    node([{**item, "src": str(old), "sha256": make_tgz(old, {"./bridge": b"bridge 1", "./loopback": b"lo 1"})}])
    digest = make_tgz(
        new, {"./bridge": b"bridge 2", "./loopback": b"lo 1", "./portmap": b"portmap", "./lo": "loopback"}
    )
    result, failed = node([{**item, "src": str(new), "sha256": digest}])
    assert not failed and result["items"][0]["reason"] == "another version or destination"
    assert sorted(result["changed_files"]) == sorted(str(dest / n) for n in ("bridge", "portmap", "lo"))
    assert os.readlink(dest / "lo") == "loopback"


def test_an_archive_member_outside_its_directory_is_refused_before_anything_is_written(tmp_path, node):
    archive = tmp_path / "evil.tgz"
    digest = make_tgz(archive, {"bin/ok": b"fine", "bin/../../etc/evil": b"boom"})
    dest = tmp_path / "dest"
    result, failed = node([{"name": "evil", "src": str(archive), "sha256": digest, "dest": str(dest), "unpack": True}])
    assert failed and "points outside its directory" in result["msg"]
    assert not dest.exists()


def test_content_is_written_when_it_or_its_mode_differs(tmp_path, node):
    dest = tmp_path / "units" / "kubelet.service"
    item = {"name": "kubelet.service", "content": "[Unit]\nDescription=kubelet\n", "dest": str(dest)}
    assert node([item])[0]["changed_files"] == [str(dest)]
    assert node([item])[0]["changed"] is False
    dest.chmod(0o600)
    result = node([item])[0]
    assert result["items"][0]["reason"] == "mode or owner differs" and oct(dest.stat().st_mode & 0o777) == "0o644"
    result = node([{**item, "content": "[Unit]\nDescription=other\n"}])[0]
    assert result["items"][0]["reason"] == "content differs" and "other" in dest.read_text()


def test_check_mode_says_what_would_be_installed_and_writes_nothing(tmp_path, node):
    src = tmp_path / "kubectl"
    src.write_bytes(b"kubectl")
    dest = tmp_path / "bin" / "kubectl"
    items = [
        {"name": "kubectl", "src": str(src), "sha256": sha(b"kubectl"), "dest": str(dest)},
        {"name": "unit", "content": "x\n", "dest": str(tmp_path / "unit")},
    ]
    result, failed = node(items, check_mode=True)
    assert not failed and result["changed"] is True
    assert [i["status"] for i in result["items"]] == ["would install", "would install"]
    assert not dest.exists() and not (tmp_path / "unit").exists() and not node.state.exists()


def test_the_plan_phase_only_reads(tmp_path, node):
    src = tmp_path / "crictl"
    src.write_bytes(b"crictl")
    result, failed = node(
        [{"name": "crictl", "src": str(src), "sha256": sha(b"crictl"), "dest": str(tmp_path / "c")}], phase="plan"
    )
    assert not failed and result["changed"] is False and result["items"][0]["status"] == "needed"
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "a/b", "content": "x", "dest": "/tmp/x"}, "must be a plain file name"),
        ({"name": "a", "dest": "/tmp/x"}, "give either src (with sha256) or content"),
        ({"name": "a", "src": "/tmp/a", "sha256": "abc", "dest": "/tmp/x"}, "64 hex digits"),
        ({"name": "a", "content": "x", "dest": "/tmp/x", "unpack": True}, "unpack needs src"),
        ({"name": "a", "content": "x", "dest": "/tmp/x", "mode": "rwx"}, "not an octal mode"),
    ],
)
def test_bad_items_are_refused(node, item, message):
    result, failed = node([item])
    assert failed and message in result["msg"]


def test_names_must_be_unique(node):
    result, failed = node(
        [{"name": "a", "content": "1", "dest": "/tmp/1"}, {"name": "a", "content": "2", "dest": "/tmp/2"}]
    )
    assert failed and "given more than once: a" in result["msg"]


def test_an_item_without_record_is_always_checked_and_leaves_no_record(tmp_path, node):
    src = tmp_path / "pause.tar"
    src.write_bytes(b"image archive")
    dest = tmp_path / "cache" / "images" / "pause.tar"
    item = {"name": "pause", "src": str(src), "sha256": sha(b"image archive"), "dest": str(dest), "record": False}
    assert node([item], phase="plan")[0]["items"][0]["status"] == "needed"
    assert node([item])[0]["changed_files"] == [str(dest)]
    assert node([item], phase="plan")[0]["items"][0]["reason"] == "not recorded (always copied)"
    assert node([item])[0]["changed"] is False  # the same file: checked, not written again
    assert not node.state.exists()
