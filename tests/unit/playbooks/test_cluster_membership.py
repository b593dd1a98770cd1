"""playbooks/tasks/cluster_membership.yml (the pre-flight's other-cluster check) against node trees built here:
node1 (control plane) and node2 (worker) are local hosts whose /etc/kubernetes is a temporary directory each
(module_defaults point kubeadm_cluster_info there). The inventory's values reach the check as the pre-flight
gives them (tasks/cluster_vars.yml first), so the expected endpoint, pod and service subnets are the real ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .test_preflight import REPO, make_inventory, run

sys.path.insert(0, str(REPO / "tests" / "unit" / "fixtures" / "kubeadm"))
from certs import make_ca, openssl_pin
from cluster_tree import CLIENT_KEY, control_plane, kubeconfig, node

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.import_tasks: {repo}/playbooks/tasks/cluster_vars.yml
- hosts: k8s_cluster
  gather_facts: false
  module_defaults:
    kubelab.kubeadm.kubeadm_cluster_info:
      kubelet_kubeconfig: "{tree}/{{{{ inventory_hostname }}}}/kubelet.conf"
      admin_kubeconfig: "{tree}/{{{{ inventory_hostname }}}}/admin.conf"
      ca_cert_path: "{tree}/{{{{ inventory_hostname }}}}/pki/ca.crt"
      manifests_dir: "{tree}/{{{{ inventory_hostname }}}}/manifests"
  tasks:
    - ansible.builtin.import_tasks: {repo}/playbooks/tasks/cluster_membership.yml
    - ansible.builtin.debug:
        msg: MEMBERSHIP PASSED
"""


@pytest.fixture(scope="module")
def cas():
    return {"ours": make_ca("ec256"), "theirs": make_ca("rsa2048")}


def setup(tmp_path: Path, cp_ca: bytes | None, worker_server: str | None = None, worker_ca: bytes | None = None,
          **cp_kwargs) -> tuple[Path, Path]:
    """node1's and node2's trees under tmp_path/tree (node1 initialised when cp_ca is given), and the playbook."""
    tree = tmp_path / "tree"
    if cp_ca is not None:
        control_plane(tree, cp_ca, name="node1", **cp_kwargs)
    else:
        node(tree, "node1")
    worker = node(tree, "node2")
    if worker_server:
        Path(worker["kubelet_kubeconfig"]).write_text(kubeconfig(worker_server, worker_ca))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(repo=REPO, tree=tree))
    return make_inventory(tmp_path), playbook


def passed(res) -> bool:
    return res.returncode == 0 and "MEMBERSHIP PASSED" in res.stdout


def flat(res) -> str:
    return " ".join((res.stdout + res.stderr).split())


def test_fresh_nodes_and_our_own_cluster_pass(tmp_path, cas):
    inventory, playbook = setup(tmp_path / "fresh", None)
    res = run(playbook, inventory)
    assert passed(res), res.stdout[-3000:]
    # node1 runs the cluster the inventory describes (node1 is 127.0.0.1), node2 joined it
    inventory, playbook = setup(tmp_path / "ours", cas["ours"], "https://127.0.0.1:6443", cas["ours"],
                                server="https://127.0.0.1:6443")
    res = run(playbook, inventory)
    assert passed(res), res.stdout[-3000:]
    assert "changed=0" in res.stdout
    assert CLIENT_KEY not in res.stdout + res.stderr


def test_worker_of_another_cluster_is_refused_naming_both(tmp_path, cas):
    inventory, playbook = setup(tmp_path, cas["ours"], "https://10.9.9.9:6443", cas["theirs"],
                                server="https://127.0.0.1:6443")
    res = run(playbook, inventory)
    out = flat(res)
    assert res.returncode != 0 and "MEMBERSHIP PASSED" not in res.stdout, out[-3000:]
    assert "node2 belongs to another cluster (server and CA differ)" in out
    assert f"names server 10.9.9.9:6443 with CA {openssl_pin(cas['theirs'])}" in out
    assert f"control plane node1 serves 127.0.0.1:6443 with CA {openssl_pin(cas['ours'])}" in out
    assert "playbooks/reset.yml -e reset_confirm=yes --limit node2" in out


def test_worker_joined_but_control_plane_fresh_is_refused(tmp_path, cas):
    inventory, playbook = setup(tmp_path, None, "https://10.9.9.9:6443", cas["theirs"])
    res = run(playbook, inventory)
    out = flat(res)
    assert not passed(res), out[-3000:]
    assert "node2 is a node of the cluster at 10.9.9.9:6443" in out
    assert "the control plane node1 has no cluster yet" in out


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        (["-e", "cluster_pod_subnet=10.32.0.0/16"],
         "its networking.podSubnet (kube-controller-manager --cluster-cidr) is 10.244.0.0/16, the inventory's"
         " (cluster_pod_subnet) 10.32.0.0/16"),
        (["-e", "cluster_service_subnet=10.100.0.0/16"], "(cluster_service_subnet) 10.100.0.0/16"),
        (["-e", "cluster_control_plane_endpoint=lb.example:6443"],
         "its controlPlaneEndpoint (admin.conf's server) is 127.0.0.1:6443, the inventory's"
         " (cluster_control_plane_endpoint) lb.example:6443"),
    ],
    ids=["pod-subnet", "service-subnet", "endpoint"],
)
def test_control_plane_of_another_cluster_is_refused(tmp_path, cas, extra, wanted):
    inventory, playbook = setup(tmp_path, cas["ours"], server="https://127.0.0.1:6443")
    res = run(playbook, inventory, *extra)
    out = flat(res)
    assert not passed(res), out[-3000:]
    assert "The control plane node1 already runs a cluster (kubernetes, Kubernetes v1.36.3" in out
    assert wanted in out
