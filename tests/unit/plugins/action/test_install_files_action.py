"""The action side of install_files, run by the real ansible-playbook (local connection, so the copy to the
"node" is Ansible's own put_file into the task's temporary directory): a source is copied only when the node
lacks it, a node that has everything needs no source at all, check mode copies and changes nothing, and a
source that does not match its sha256 fails the task with nothing installed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]

PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Install
      kubelab.kubeadm.install_files:
        state_dir: {state}
        items:
          - name: kubelet
            src: {src}
            sha256: {sha}
            dest: {dest}
            mode: "0755"
          - name: unit
            content: "[Unit]\\nDescription=test\\n"
            dest: {unit}
      register: out
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{{{ out | to_json }}}}"
        dest: {out}
      check_mode: false
"""


def play(tmp_path: Path, src: Path, sha: str, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out.json"
    out.unlink(missing_ok=True)
    book = tmp_path / "play.yml"
    book.write_text(
        PLAY.format(
            state=tmp_path / "state",
            src=src,
            sha=sha,
            dest=tmp_path / "bin" / "kubelet",
            unit=tmp_path / "kubelet.service",
            out=out,
        )
    )
    env = dict(
        os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1"
    )
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", *options]
    argv += ["-e", f"ansible_python_interpreter={sys.executable}", str(book)]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=300)
    return res, (json.loads(out.read_text()) if out.exists() else {})


def test_copies_what_the_node_lacks_and_nothing_once_it_has_it(tmp_path):
    body = b"\x7fELF kubelet " * 1000
    src = tmp_path / "bundle-kubelet"
    src.write_bytes(body)
    sha = hashlib.sha256(body).hexdigest()

    res, out = play(tmp_path, src, sha, "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert out["changed"] is True and [i["status"] for i in out["items"]] == ["would install", "would install"]
    assert not (tmp_path / "bin").exists() and not (tmp_path / "kubelet.service").exists()

    res, out = play(tmp_path, src, sha)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [i["status"] for i in out["items"]] == ["installed", "installed"]
    assert (tmp_path / "bin" / "kubelet").read_bytes() == body

    src.unlink()  # the node has it: the controller's source is not even opened
    res, out = play(tmp_path, src, sha)
    assert res.returncode == 0, res.stdout + res.stderr
    assert out["changed"] is False and [i["status"] for i in out["items"]] == ["up to date", "up to date"]


def test_a_source_that_does_not_match_fails_with_nothing_installed(tmp_path):
    src = tmp_path / "bundle-kubelet"
    src.write_bytes(b"changed after the manifest was signed")
    sha = hashlib.sha256(b"what the manifest says").hexdigest()
    res, out = play(tmp_path, src, sha)
    assert res.returncode != 0 and not out
    assert "expected " + sha in res.stdout and "nothing of it was installed" in res.stdout
    assert not (tmp_path / "bin" / "kubelet").exists()
