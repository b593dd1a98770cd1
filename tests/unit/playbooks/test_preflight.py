"""The pre-flight's first play against localhost: bad cluster_* values stop the run there, before any
task that reaches a node, with a message naming the variable and the fix; good ones get their defaults.

The hosts are `ansible_connection: local` (nothing is changed: the first play needs no connection at all,
the second only reads facts). The cluster_* values come from the inventories we ship (inventories/lab,
inventories/local) where a test says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK_BIN = Path(sys.executable).parent / "ansible-playbook"
SECOND_PLAY_TASK = "Read the node's OS, host name, network interfaces and virtualization"
# What an online install needs pinned (the values are only checked for their form here).
ONLINE_PINS = ["-e", "cri_dockerd_release_sha256=" + "a" * 64]
ONLINE_PINS += ["-e", "kubeadm_init_pod_network_manifest_sha256=" + "b" * 64]

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


def make_inventory(
    tmp_path: Path, group_vars: Path | None = None, worker_vars: dict | None = None, **node_vars
) -> Path:
    """node1 (control_plane) and node2 (workers) on this machine, optionally with a shipped group_vars/all.yml."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    # The tests run as root without sudo: the pre-flight's become (to read who holds a port) is not needed.
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False}
    hosts = {
        "all": {
            "children": {
                "k8s_cluster": {
                    "children": {
                        "control_plane": {"hosts": {"node1": {"ansible_host": "127.0.0.1", **local, **node_vars}}},
                        "workers": {"hosts": {"node2": {"ansible_host": "127.0.0.2", **local, **(worker_vars or {})}}},
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
            ["-e", "cluster_kubelet_healthz_port=10256"],
            ["cluster_kubelet_healthz_port is 10256, kube-proxy's healthz port", "Choose a free port"],
            id="healthz-on-kube-proxy",
        ),
        pytest.param(
            ["-e", "cluster_kubelet_read_only_port=6443"],
            ["cluster_kubelet_read_only_port is 6443, the API server"],
            id="read-only-on-api-server",
        ),
        pytest.param(
            ["-e", "cluster_pod_subnet=10.244.0.1/16"],
            ["cluster_pod_subnet '10.244.0.1/16' is not a network", "did you mean 10.244.0.0/16?"],
            id="pod-subnet-host-bits",
        ),
        pytest.param(
            ["-e", "cluster_service_subnet=10.244.128.0/20"],
            ["cluster_pod_subnet 10.244.0.0/16 and cluster_service_subnet 10.244.128.0/20 overlap"],
            id="subnets-overlap",
        ),
        pytest.param(
            ["-e", "kubeadm_join_token_ttl=15min"],
            [
                "kubeadm_join_token_ttl '15min' has an unknown unit 'min'",
                "roles' defaults are kubeadm_join_token_ttl 15m",
            ],
            id="join-ttl",
        ),
        pytest.param(
            ["-e", "kubeadm_join_token_ttl=5m"],
            ["kubeadm_join_token_min_ttl (10m) is longer than kubeadm_join_token_ttl (5m)"],
            id="join-min-ttl-longer",
        ),
        pytest.param(
            ["-e", json.dumps({"kubeadm_init_bootstrap_token_ttl": "1 hour"})],
            ["kubeadm_init_bootstrap_token_ttl '1 hour' has an unknown unit"],
            id="init-ttl",
        ),
        pytest.param(
            ["-e", "kubeadm_init_pod_network_manifest_sha256=" + "b" * 64],
            [
                "cluster_install_source is online",
                'cri_dockerd_release_sha256 is "": set it to the 64-hex sha256',
                "(0.4.3 for amd64/arm64 under https://github.com/Mirantis/cri-dockerd/releases/download)",
            ],
            id="online-without-cri-dockerd-sha256",
        ),
        pytest.param(
            ["-e", "cri_dockerd_release_sha256=" + "a" * 64],
            ['kubeadm_init_pod_network_manifest_sha256 is "": set it to the sha256 of the kube-flannel.yml'],
            id="online-flannel-without-sha256",
        ),
        pytest.param(
            ["-e", "cluster_kubernetes_version=v1.36.3"],
            ["cluster_kubernetes_version must be an exact release without 'v', 1.31.0 or later", 'got "v1.36.3"'],
            id="version-with-v",
        ),
        pytest.param(
            ["-e", "cluster_kubernetes_version=1.30.9"],
            ["cluster_kubernetes_version must be an exact release without 'v', 1.31.0 or later", 'got "1.30.9"'],
            id="version-too-old",
        ),
        pytest.param(
            ["-e", json.dumps({"cluster_ignore_preflight_errors": ["Swap", "All"]})],
            ['cluster_ignore_preflight_errors contains "all": name the checks to ignore instead'],
            id="ignore-all-preflight-errors",
        ),
        pytest.param(
            ["-e", "cluster_kubernetes_version=1.99.0"],
            ["Kubernetes 1.99.0 is newer than the pause tags in playbooks/vars/versions.yml: set cluster_pause_image"],
            id="online-version-without-pause-tag",
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
    pins = [] if "online" in " ".join(extra) or "_sha256=" in " ".join(extra) else ONLINE_PINS
    res = run(REPO / "playbooks" / "preflight.yml", inventory, *pins, *extra)
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
    res = run(playbook, inventory, "-e", "cluster_kubelet_healthz_port=10348", *ONLINE_PINS)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    node1 = json.loads((tmp_path / "node1.json").read_text())
    node2 = json.loads((tmp_path / "node2.json").read_text())
    assert node1["cluster_kubernetes_version"] == "1.36.3"  # the spec's default
    assert node1["cluster_pod_network"] == "flannel"
    assert node1["cluster_kubelet_configuration_extra"] == {}
    assert node1["cluster_ignore_preflight_errors"] == []
    assert node1["cluster_kubelet_read_only_port"] == 10255  # inventories/lab sets it
    assert node1["cluster_kubelet_healthz_port"] == "10348"  # -e wins (a string, as -e gives it)
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


SECOND_PLAY_DONE = "Choose the pause image"


def refused_on_the_nodes(res: subprocess.CompletedProcess, wanted: list[str]) -> None:
    """Refused in the second play's node checks: the message says each of `wanted`, nothing after ran."""
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-4000:]
    for text in wanted:
        assert text in " ".join(out.split()), f"{text!r} not in:\n{out[-4000:]}"
    assert SECOND_PLAY_TASK in out and SECOND_PLAY_DONE not in out
    assert "changed=0" in out and "changed=1" not in out


def test_port_held_by_another_program_is_refused(tmp_path: Path) -> None:
    """This test listens on a port; asking for it as the read-only port stops the run, naming port, node, pid."""
    inventory = make_inventory(tmp_path, REPO / "inventories" / "lab" / "group_vars" / "all.yml")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        res = run(REPO / "site.yml", inventory, *ONLINE_PINS, "-e", f"cluster_kubelet_read_only_port={port}")
    finally:
        sock.close()
    me = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    refused_on_the_nodes(
        res,
        [
            f"Port {port} (cluster_kubelet_read_only_port) is already in use on node1 by {me} (pid {os.getpid()})",
            "on 127.0.0.1. The kubelet could not listen there",
            "Stop the program (`ss -ltnp` shows it), or choose a free port",
        ],
    )


def test_port_held_by_the_kubelet_is_accepted(tmp_path: Path) -> None:
    """A process named kubelet on the healthz port is our kubelet of an earlier run: not refused."""
    inventory = make_inventory(tmp_path, REPO / "inventories" / "lab" / "group_vars" / "all.yml")
    kubelet = tmp_path / "kubelet"
    kubelet.symlink_to(sys.executable)
    code = (
        "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n"
        "print(s.getsockname()[1], flush=True)\ntime.sleep(120)"
    )
    proc = subprocess.Popen([str(kubelet), "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        playbook = tmp_path / "dump.yml"
        playbook.write_text(DUMP.format(preflight=REPO / "playbooks" / "preflight.yml", out=tmp_path, names=NAMES))
        res = run(playbook, inventory, *ONLINE_PINS, "-e", f"cluster_kubelet_healthz_port={port}")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert json.loads((tmp_path / "node1.json").read_text())["cluster_kubelet_healthz_port"] == str(port)


def test_network_overlapping_the_cluster_address_is_refused(tmp_path: Path) -> None:
    """node1's cluster address 127.0.0.1 lies in a pod network of 127.0.0.0/8: refused naming both."""
    inventory = make_inventory(tmp_path, REPO / "inventories" / "lab" / "group_vars" / "all.yml")
    res = run(REPO / "site.yml", inventory, *ONLINE_PINS, "-e", "cluster_pod_subnet=127.0.0.0/8")
    refused_on_the_nodes(
        res,
        [
            "cluster_pod_subnet 127.0.0.0/8 overlaps 127.0.0.1/32, the network of the cluster address 127.0.0.1 on"
            " node1",
            "Set cluster_pod_subnet to a range that no node uses",
        ],
    )


def test_clock_skew_is_refused(tmp_path: Path) -> None:
    """node2's `date` runs 120 s ahead (a wrapper first on its PATH): refused, naming node2, the skew and NTP."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    real_date = shutil.which("date")
    (fake / "date").write_text(f'#!/bin/sh\nexec {real_date} -d "@$(( $({real_date} +%s) + 120 ))" "$@"\n')
    interpreter = tmp_path / "python-with-fake-date"
    interpreter.write_text(f'#!/bin/sh\nPATH={fake}:$PATH exec {sys.executable} "$@"\n')
    for script in (fake / "date", interpreter):
        script.chmod(0o755)
    inventory = make_inventory(
        tmp_path,
        REPO / "inventories" / "lab" / "group_vars" / "all.yml",
        worker_vars={"ansible_python_interpreter": str(interpreter)},
    )
    res = run(REPO / "site.yml", inventory, *ONLINE_PINS)
    refused_on_the_nodes(res, ["at most 30 s are accepted", "Synchronise the clocks with NTP"])
    out = " ".join((res.stdout + res.stderr).split())
    # The fake date has whole seconds, and each node's answer comes a moment (more on a loaded machine) after
    # the controller's time it is compared with.
    found = re.search(r"The clock of node2 is (\d+) s ahead of the control plane's \(node1\)", out)
    assert found and abs(int(found.group(1)) - 120) <= 5, out[-3000:]
    assert "The clock of node1" not in out


@pytest.mark.parametrize(
    ("control_plane", "workers", "wanted"),
    [
        pytest.param({}, {"node2": {}}, "The inventory has no host in group control_plane", id="no-control-plane"),
        pytest.param(
            {"node1": {}, "node3": {}},
            {"node2": {}},
            "Group control_plane has 2 hosts (node1, node3). More than one control-plane node needs"
            " cluster_control_plane_endpoint",
            id="two-control-planes",
        ),
        pytest.param(
            {"node1": {}},
            {"node1": {}, "node2": {}},
            "no host may be in both control_plane and workers",
            id="host-in-both",
        ),
    ],
)
def test_bad_group_layout_stops_the_first_play(tmp_path: Path, control_plane: dict, workers: dict, wanted: str) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = {
        "control_plane": {"hosts": {h: local for h in control_plane}},
        "workers": {"hosts": {h: local for h in workers}},
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"k8s_cluster": {"children": groups}}}}))
    res = run(REPO / "playbooks" / "preflight.yml", inventory, *ONLINE_PINS)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0 and wanted in out, out[-3000:]
    assert SECOND_PLAY_TASK not in out


@pytest.mark.parametrize(
    ("extra", "node_vars", "wanted"),
    [
        pytest.param(
            ["-e", "cluster_load_test_images=true"],
            {},
            "cluster_load_test_images loads the test images (group test) of the offline bundle, but"
            " cluster_install_source is online",
            id="test-images-without-bundle",
        ),
        pytest.param(
            [],
            {"cluster_node_address": "node1.example"},
            'node1\'s cluster address "node1.example" is not an IP address',
            id="cluster-address-not-ip",
        ),
    ],
)
def test_bad_value_stops_the_second_play(tmp_path: Path, extra: list[str], node_vars: dict, wanted: str) -> None:
    inventory = make_inventory(tmp_path, REPO / "inventories" / "lab" / "group_vars" / "all.yml", **node_vars)
    res = run(REPO / "site.yml", inventory, *ONLINE_PINS, *extra)
    refused_on_the_nodes(res, [wanted])
