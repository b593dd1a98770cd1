"""The pre-flight's first play against localhost: bad cluster_* values stop the run there, before any
task that reaches a node, with a message naming the variable and the fix; good ones get their defaults.

The hosts are `ansible_connection: local` (nothing is changed: the first play needs no connection at all,
the second only reads facts). The cluster_* values come from the inventories we ship (inventories/lab,
inventories/local) where a test says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK_BIN = Path(sys.executable).parent / "ansible-playbook"
SECOND_PLAY_TASK = "Read the node's architecture and host name"

# The task both playbooks end with: write what the pre-flight handed on, one JSON file per host.
WRITE = """
    - ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        content: "{{{{ dict(names | zip(names | map('extract', hostvars[inventory_hostname]))) | to_json }}}}"
        mode: "0600"
      delegate_to: localhost
      vars:
        names: {names}
"""

DUMP = (
    """
- name: The pre-flight
  ansible.builtin.import_playbook: {preflight}
- name: Write what the pre-flight handed on
  hosts: all
  gather_facts: false
  tasks:"""
    + WRITE
)

CLUSTER_VARS_ONLY = (
    """
- name: Only the cluster_* variables
  hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.import_tasks: {tasks}"""
    + WRITE
)


def make_inventory(tmp_path: Path, group_vars: Path | None = None, **node_vars) -> Path:
    """node1 (control_plane) and node2 (workers) on this machine, optionally with a shipped group_vars/all.yml."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "all": {
            "children": {
                "k8s_cluster": {
                    "children": {
                        "control_plane": {"hosts": {"node1": {"ansible_host": "127.0.0.1", **local, **node_vars}}},
                        "workers": {"hosts": {"node2": {"ansible_host": "127.0.0.2", **local}}},
                    }
                }
            }
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    if group_vars:
        shutil.copy(group_vars, inventory / "group_vars" / "all.yml")
    return inventory


def run(playbook: Path, inventory: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env["PATH"] = f"{PLAYBOOK_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    argv = [str(PLAYBOOK_BIN), "-i", str(inventory), str(playbook), *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=300)


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        pytest.param(
            ["-e", "cluster_kubelet_read_only_port=70000"],
            ["cluster_kubelet_read_only_port must be 0 (off) or 1-65535", "Got 70000"],
            id="port-out-of-range",
        ),
        pytest.param(
            [
                "-e",
                "cluster_pod_network=nope",
                "-e",
                "cluster_kubelet_healthz_port=ten",
                "-e",
                "cluster_ignore_preflight_errors=Swap",
            ],
            [
                "Invalid cluster_* variables on node1 (nothing has been changed on any node)",
                "value of cluster_pod_network must be one of: flannel, none, got: nope",
                'cluster_pod_network (str, one of flannel, none, default "flannel"): The pod network',
                "cluster_kubelet_healthz_port' is of type str and we were unable to convert to int",
                "cluster_kubelet_healthz_port (int, default 10248): The kubelet's healthz port",
                "cluster_ignore_preflight_errors must be a list; got Swap",
                "Every cluster_* variable: docs/cluster-variables.md",
            ],
            id="type-choice-shape",
        ),
        pytest.param(
            ["-e", "cluster_kubelet_readonly_port=10255"],
            ["cluster_kubelet_readonly_port: no such variable in kubelab.kubeadm (a typo?)"],
            id="unknown-name",
        ),
        pytest.param(
            ["-e", "cluster_kubelet_read_only_port=10248"],
            ["neither 10250 (the kubelet's API port) nor the healthz port 10248"],
            id="ports-collide",
        ),
        pytest.param(
            ["-e", "cluster_install_source=bundle"],
            ["cluster_install_source is bundle but cluster_bundle_dir is empty"],
            id="bundle-without-dir",
        ),
        pytest.param(
            ["-e", "cluster_install_source=bundle", "-e", "cluster_bundle_dir=/srv/bundle"],
            [
                "cluster_install_source is bundle but cluster_bundle_trusted_keys is empty",
                "cluster_bundle_allow_unsigned",
            ],
            id="bundle-without-trusted-keys",
        ),
        pytest.param(
            [
                "-e",
                "cluster_install_source=bundle",
                "-e",
                "cluster_bundle_dir=/srv/bundle",
                "-e",
                '{"cluster_bundle_trusted_keys": ["builder@host"]}',
            ],
            ["cluster_bundle_trusted_keys holds 1 entries that are not OpenSSH public key lines", "builder@host"],
            id="bundle-trusted-key-not-a-key",
        ),
    ],
)
def test_bad_value_stops_the_first_play(tmp_path: Path, extra: list[str], wanted: list[str]) -> None:
    inventory = make_inventory(tmp_path, REPO / "inventories" / "lab" / "group_vars" / "all.yml")
    res = run(REPO / "playbooks" / "preflight.yml", inventory, *extra)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-4000:]
    for text in wanted:
        assert text in " ".join(out.split()), f"{text!r} not in:\n{out[-4000:]}"
    assert SECOND_PLAY_TASK not in out, "the play that reaches the nodes ran"
    assert "changed=0" in out


def test_site_yml_stops_before_any_node_task(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    bad = ["-e", "cluster_kubelet_read_only_port=70000", "-e", "cluster_pod_network=nope"]
    res = run(REPO / "site.yml", inventory, *bad)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "value of cluster_pod_network must be one of" in out
    assert SECOND_PLAY_TASK not in out
    assert "Prepare the operating system" not in out


NAMES = [
    "cluster_kubernetes_version",
    "cluster_pod_network",
    "cluster_kubelet_read_only_port",
    "cluster_kubelet_healthz_port",
    "cluster_kubelet_configuration_extra",
    "cluster_ignore_preflight_errors",
    "cluster_pause_image",
    "cluster_node_address",
    "__cluster_pause_image",
]


def test_defaults_filled_inventory_kept_and_extra_vars_win(tmp_path: Path) -> None:
    inventory = make_inventory(
        tmp_path, REPO / "inventories" / "lab" / "group_vars" / "all.yml", cluster_node_address="10.0.0.1"
    )
    (inventory / "group_vars" / "all.yml").open("a").write("cluster_pause_image: null\n")
    playbook = tmp_path / "dump.yml"
    playbook.write_text(DUMP.format(preflight=REPO / "playbooks" / "preflight.yml", out=tmp_path, names=NAMES))
    res = run(playbook, inventory, "-e", "cluster_kubelet_healthz_port=10249")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    node1 = json.loads((tmp_path / "node1.json").read_text())
    node2 = json.loads((tmp_path / "node2.json").read_text())
    assert node1["cluster_kubernetes_version"] == "1.36.3"  # the spec's default
    assert node1["cluster_pod_network"] == "flannel"
    assert node1["cluster_kubelet_configuration_extra"] == {}
    assert node1["cluster_ignore_preflight_errors"] == []
    assert node1["cluster_kubelet_read_only_port"] == 10255  # inventories/lab sets it
    assert node1["cluster_kubelet_healthz_port"] == "10249"  # -e wins (a string, as -e gives it)
    assert node1["cluster_pause_image"] == ""  # null = the default
    assert node1["__cluster_pause_image"] == "registry.k8s.io/pause:3.10.2"
    assert node1["cluster_node_address"] == "10.0.0.1"  # set for the host
    assert node2["cluster_node_address"] == "127.0.0.2"  # its ansible_host


def test_lab_inventory_values_survive(tmp_path: Path) -> None:
    """inventories/local (the e2e's) passes the checks and keeps its values; its bundle is not read here."""
    inventory = make_inventory(tmp_path, REPO / "inventories" / "local" / "group_vars" / "all.yml")
    names = ["cluster_install_source", "cluster_bundle_dir", "cluster_load_test_images", "cluster_pod_subnet"]
    names += ["cluster_kubelet_configuration_extra", "cluster_ignore_preflight_errors", "cluster_node_address"]
    playbook = tmp_path / "only.yml"
    playbook.write_text(
        CLUSTER_VARS_ONLY.format(tasks=REPO / "playbooks" / "tasks" / "cluster_vars.yml", out=tmp_path, names=names)
    )
    res = run(playbook, inventory)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    node1 = json.loads((tmp_path / "node1.json").read_text())
    assert node1["cluster_install_source"] == "bundle"
    assert node1["cluster_bundle_dir"].endswith("/bundle")
    assert node1["cluster_load_test_images"] is True
    assert node1["cluster_pod_subnet"] == "10.244.0.0/16"
    assert node1["cluster_kubelet_configuration_extra"]["cgroupRoot"] == "/kubelet"
    assert node1["cluster_ignore_preflight_errors"] == ["Swap"]
    assert node1["cluster_node_address"] == "127.0.0.1"
