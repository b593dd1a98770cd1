"""kubeadm_cluster_info through AnsibleModule on a node tree built here (kubeconfigs, CA, kubeadm's static pod
manifests), and the membership judgement the pre-flight makes from its results (membership_problems)."""

from __future__ import annotations

import copy
import json
import os
import sys

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils._cluster_info import membership_problems
from ansible_collections.kubelab.kubeadm.plugins.modules import kubeadm_cluster_info

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from certs import make_ca, openssl_pin
from cluster_tree import CLIENT_KEY, control_plane, kubeconfig, node


@pytest.fixture(scope="module")
def cas():
    return {"ours": make_ca("ec256"), "theirs": make_ca("ec256")}


def test_fresh_node(run_module, tmp_path):
    result, failed = run_module(kubeadm_cluster_info.main, node(tmp_path, "fresh"), check_mode=True)
    assert not failed, result
    assert result["changed"] is False
    assert result["member"] is False
    assert result["kubelet"] is None
    assert result["control_plane"] == {
        "initialised": False, "admin": None, "ca_cert_hashes": [], "cluster_configuration": None
    }


@pytest.mark.parametrize("check_mode", [False, True])
def test_control_plane(run_module, tmp_path, cas, check_mode):
    paths = control_plane(tmp_path, cas["ours"])
    result, failed = run_module(kubeadm_cluster_info.main, paths, check_mode=check_mode)
    assert not failed, result
    pin = openssl_pin(cas["ours"])
    assert result["changed"] is False
    assert result["member"] is True
    assert result["kubelet"]["endpoint"] == "10.0.2.8:6443"
    assert result["kubelet"]["ca_cert_hashes"] == [pin]
    cp = result["control_plane"]
    assert cp["initialised"] is True
    assert cp["ca_cert_hashes"] == [pin]
    assert cp["admin"] == {
        "path": paths["admin_kubeconfig"], "cluster_name": "kubernetes", "server": "https://10.0.2.8:6443",
        "endpoint": "10.0.2.8:6443", "ca_cert_hashes": [pin],
    }
    assert cp["cluster_configuration"] == {
        "clusterName": "kubernetes",
        "controlPlaneEndpoint": "10.0.2.8:6443",
        "kubernetesVersion": "v1.36.3",
        "networking": {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"},
        "advertiseAddress": "10.0.2.8",
        "bindPort": 6443,
    }
    # no secret of the kubeconfigs in the result
    assert CLIENT_KEY not in json.dumps(result)
    assert "THE-CLIENT-KEY" not in json.dumps(result)


def test_worker_with_ca_file_relative_to_the_kubeconfig(run_module, tmp_path, cas):
    paths = node(tmp_path, "worker")
    open(os.path.join(os.path.dirname(paths["kubelet_kubeconfig"]), "pki", "ca.crt"), "wb").write(cas["theirs"])
    open(paths["kubelet_kubeconfig"], "w").write(kubeconfig("https://lb.example:8443", ca_file="pki/ca.crt"))
    result, failed = run_module(kubeadm_cluster_info.main, paths)
    assert not failed, result
    assert result["member"] is True
    assert result["kubelet"]["endpoint"] == "lb.example:8443"
    assert result["kubelet"]["ca_cert_hashes"] == [openssl_pin(cas["theirs"])]
    # a ca.crt without admin.conf and manifests is no initialised control plane
    assert result["control_plane"]["initialised"] is False


def test_kubelet_conf_without_ca_and_with_a_plain_http_server(run_module, tmp_path):
    paths = node(tmp_path, "odd")
    open(paths["kubelet_kubeconfig"], "w").write(kubeconfig("http://127.0.0.1:8080"))
    result, failed = run_module(kubeadm_cluster_info.main, paths)
    assert not failed, result
    assert result["kubelet"]["endpoint"] == "http://127.0.0.1:8080"
    assert result["kubelet"]["ca_cert_hashes"] == []


def test_control_plane_without_ca_file_and_manifests_of_an_older_layout(run_module, tmp_path, cas):
    paths = control_plane(tmp_path, cas["ours"])
    os.remove(paths["ca_cert_path"])
    os.remove(os.path.join(paths["manifests_dir"], "kube-controller-manager.yaml"))
    open(os.path.join(paths["manifests_dir"], "kube-apiserver.yaml"), "w").write("kind: Pod\n")
    result, failed = run_module(kubeadm_cluster_info.main, paths)
    assert not failed, result
    cp = result["control_plane"]
    assert cp["ca_cert_hashes"] == [openssl_pin(cas["ours"])]  # the admin kubeconfig's
    config = cp["cluster_configuration"]
    assert config["networking"] == {"podSubnet": None, "serviceSubnet": None}
    assert config["kubernetesVersion"] is None
    assert config["bindPort"] is None
    assert config["clusterName"] == "kubernetes"


@pytest.mark.parametrize(
    ("content", "wanted"),
    [
        ("clusters: [\n", "is not valid YAML"),
        (kubeconfig("https://10.0.2.8:6443").replace("server: https://10.0.2.8:6443", "server: ''"), "has no server"),
        (kubeconfig("https://10.0.2.8:6443", b"x").replace("certificate-authority-data: eA==",
                                                           "certificate-authority-data: '!!'"), "is not base64"),
        (kubeconfig("https://10.0.2.8:6443", b"no pem here"), "holds no PEM certificate"),
    ],
    ids=["yaml", "no-server", "ca-not-base64", "ca-not-pem"],
)
def test_damaged_kubelet_conf_fails_naming_file_and_fix(run_module, tmp_path, content, wanted):
    paths = node(tmp_path, "damaged")
    open(paths["kubelet_kubeconfig"], "w").write(content)
    result, failed = run_module(kubeadm_cluster_info.main, paths)
    assert failed, result
    assert wanted in result["msg"]
    assert "cannot tell which cluster this node belongs to" in result["msg"]
    assert "playbooks/reset.yml" in result["msg"]


def test_broken_ca_file_fails(run_module, tmp_path, cas):
    paths = control_plane(tmp_path, cas["ours"])
    open(paths["ca_cert_path"], "wb").write(b"not a certificate\n")
    result, failed = run_module(kubeadm_cluster_info.main, paths)
    assert failed, result
    assert "cannot tell which cluster this control plane runs" in result["msg"]
    assert paths["ca_cert_path"] in result["msg"]


# membership_problems: results shaped like the module's.
EXPECTED = {"endpoint": "10.0.2.8:6443", "pod_subnet": "10.244.0.0/16", "service_subnet": "10.96.0.0/12"}
PIN_OURS = "sha256:" + "a" * 64
PIN_THEIRS = "sha256:" + "b" * 64
FRESH = {"changed": False, "member": False, "kubelet": None,
         "control_plane": {"initialised": False, "admin": None, "ca_cert_hashes": [], "cluster_configuration": None}}


def kubelet(endpoint="10.0.2.8:6443", pin=PIN_OURS):
    return {"path": "/etc/kubernetes/kubelet.conf", "cluster_name": "default-cluster", "server": f"https://{endpoint}",
            "endpoint": endpoint, "ca_cert_hashes": [pin]}


def cp_result(endpoint="10.0.2.8:6443", pod="10.244.0.0/16", service="10.96.0.0/12"):
    return {
        "changed": False, "member": True, "kubelet": kubelet(),
        "control_plane": {
            "initialised": True,
            "admin": {**kubelet(endpoint), "path": "/etc/kubernetes/admin.conf", "cluster_name": "kubernetes"},
            "ca_cert_hashes": [PIN_OURS],
            "cluster_configuration": {
                "clusterName": "kubernetes", "controlPlaneEndpoint": endpoint, "kubernetesVersion": "v1.36.3",
                "networking": {"podSubnet": pod, "serviceSubnet": service}, "advertiseAddress": "10.0.2.8",
                "bindPort": 6443,
            },
        },
    }


def member(**kwargs):
    return {**copy.deepcopy(FRESH), "member": True, "kubelet": kubelet(**kwargs)}


def judge(cp, **workers):
    return membership_problems({"node1": cp, **workers}, "node1", list(workers), EXPECTED)


def test_fresh_cluster_and_our_own_cluster_pass():
    assert judge(FRESH, node2=FRESH, node3=FRESH) == []
    # the re-run: every node joined; and a new worker weeks later beside joined ones
    assert judge(cp_result(), node2=member(), node3=FRESH) == []
    # a CA bundle in rotation: one pin in common is enough
    rotating = member()
    rotating["kubelet"]["ca_cert_hashes"] = [PIN_THEIRS, PIN_OURS]
    assert judge(cp_result(), node2=rotating) == []


@pytest.mark.parametrize(
    ("worker", "differs"),
    [
        (member(endpoint="10.9.9.9:6443"), "the server differs"),
        (member(pin=PIN_THEIRS), "the CA differs"),
        (member(endpoint="10.9.9.9:6443", pin=PIN_THEIRS), "server and CA differ"),
    ],
    ids=["server", "ca", "both"],
)
def test_worker_of_another_cluster(worker, differs):
    (problem,) = judge(cp_result(), node2=worker, node3=member())
    assert problem.startswith(f"node2 belongs to another cluster ({differs})")
    kc = worker["kubelet"]
    assert f"names server {kc['endpoint']} with CA {kc['ca_cert_hashes'][0]}" in problem
    assert f"control plane node1 serves 10.0.2.8:6443 with CA {PIN_OURS}" in problem
    assert "playbooks/reset.yml -e reset_confirm=yes --limit node2" in problem
    assert "take node2 out of this inventory" in problem


def test_worker_joined_while_the_control_plane_has_no_cluster():
    (problem,) = judge(FRESH, node2=member(endpoint="10.9.9.9:6443", pin=PIN_THEIRS), node3=FRESH)
    assert "node2 is a node of the cluster at 10.9.9.9:6443" in problem
    assert PIN_THEIRS in problem
    assert "the control plane node1 has no cluster yet" in problem
    assert "--limit node2" in problem


def test_control_plane_host_that_is_a_worker_elsewhere():
    (problem,) = judge(member(endpoint="10.9.9.9:6443"))
    assert "The control plane node1 is not initialised but its /etc/kubernetes/kubelet.conf names" in problem
    assert "--limit node1" in problem


@pytest.mark.parametrize(
    ("cp", "wanted"),
    [
        (cp_result(pod="10.32.0.0/16"), ["networking.podSubnet (kube-controller-manager --cluster-cidr) is"
                                         " 10.32.0.0/16, the inventory's (cluster_pod_subnet) 10.244.0.0/16"]),
        (cp_result(service="10.100.0.0/16"), ["networking.serviceSubnet", "10.100.0.0/16", "cluster_service_subnet"]),
        (cp_result(endpoint="lb.example:6443", pod="10.32.0.0/16"),
         ["controlPlaneEndpoint (admin.conf's server) is lb.example:6443, the inventory's"
          " (cluster_control_plane_endpoint) 10.0.2.8:6443", "cluster_pod_subnet",
          "set cluster_control_plane_endpoint, cluster_pod_subnet to the values it runs with"]),
    ],
    ids=["pod-subnet", "service-subnet", "endpoint-and-pod-subnet"],
)
def test_control_plane_of_another_cluster(cp, wanted):
    # node2 joined that control plane: only the control plane is refused
    (problem,) = judge(cp, node2=member(endpoint=cp["control_plane"]["admin"]["endpoint"]))
    assert problem.startswith("The control plane node1 already runs a cluster (kubernetes, Kubernetes v1.36.3, CA")
    for text in wanted:
        assert text in problem
    assert "playbooks/reset.yml -e reset_confirm=yes --limit node1" in problem


def test_unknown_subnets_are_not_held_against_the_control_plane():
    cp = cp_result(pod=None, service=None)
    assert judge(cp, node2=member()) == []
