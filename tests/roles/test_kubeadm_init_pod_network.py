"""The kubeadm_init role's flannel manifest is checked on the node before anything reads it: its
tasks/pod_network.yml run by the real ansible-core on this machine (connection local), with the
manifest copied from a local file as from a bundle. A wrong sha256 stops the role before the manifest
is patched, written or applied (the kubectl steps that follow run in the lab)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "kubeadm_init"
MANIFEST = """kind: ConfigMap
apiVersion: v1
metadata: {name: kube-flannel-cfg}
data:
  net-conf.json: |
    {"Network": "10.0.0.0/8", "Backend": {"Type": "vxlan"}}
"""

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {defaults}
    - {vars}
  vars:
    ansible_python_interpreter: {python}
  tasks:
    # task vars outrank the role files loaded as vars_files, as the playbooks' role vars do
    - ansible.builtin.import_tasks: {tasks}
      vars:
        kubeadm_init_config_dir: {config_dir}
        kubeadm_init_pod_network_manifest_src: {src}
        kubeadm_init_pod_network_manifest_sha256: "{sha}"
        kubeadm_init_pod_subnet: 10.244.0.0/16
        kubeadm_init_kubectl_path: /nonexistent/kubectl
"""


def run(tmp_path: Path, sha: str) -> subprocess.CompletedProcess:
    src = tmp_path / "kube-flannel.yml"
    src.write_text(MANIFEST)
    play = tmp_path / "play.yml"
    play.write_text(
        PLAY.format(
            defaults=ROLE / "defaults" / "main.yml",
            vars=ROLE / "vars" / "main.yml",
            python=sys.executable,
            config_dir=tmp_path / "etc",
            src=src,
            sha=sha,
            tasks=ROLE / "tasks" / "pod_network.yml",
        )
    )
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(play)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=300)


def test_a_flannel_manifest_with_another_sha256_is_not_read(tmp_path: Path) -> None:
    res = run(tmp_path, "0" * 64)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out[-3000:]
    actual = hashlib.sha256((tmp_path / "kube-flannel.yml").read_bytes()).hexdigest()
    assert f"kube-flannel.upstream.yml on localhost has sha256 {actual}, expected {'0' * 64}" in out, out[-3000:]
    assert "Nothing was applied" in out
    assert "Read the flannel manifest" not in out
    assert not (tmp_path / "etc" / "kube-flannel.yml").exists()


def test_the_pinned_sha256_lets_it_through_to_the_patch(tmp_path: Path) -> None:
    res = run(tmp_path, hashlib.sha256(MANIFEST.encode()).hexdigest())
    out = res.stdout + res.stderr
    # past the check: read, patched to the pod subnet and written; then kubectl (absent here) is next
    written = tmp_path / "etc" / "kube-flannel.yml"
    assert written.is_file(), out[-3000:]
    assert '"Network": "10.244.0.0/16"' in written.read_text()
    assert "Compare the manifest with the cluster" in out
