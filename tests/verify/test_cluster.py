"""A working kubelab cluster: every expected node Ready and healthy, control plane as static pods, and a
pod that runs on a worker from a preloaded image without any pull. See conftest.py for the options."""

from __future__ import annotations

import json
import secrets
import shlex
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cluster

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"

CONTROL_PLANE_MANIFESTS = ("etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml")


# --------------------------------------------------------------------------- every node


@pytest.mark.parametrize("service", ["docker", "cri-docker", "kubelet"])
def test_service_enabled_and_active(node_host, service: str) -> None:
    svc = node_host.service(service)
    assert svc.is_enabled, f"{service} is not enabled (it would not come back after a reboot)"
    assert svc.is_running, f"{service} is not active: {node_host.run(f'systemctl status {service} --no-pager').stdout}"


def test_kubelet_healthz(cluster: Cluster, node: str, node_host) -> None:
    port = int(cluster.var("cluster_kubelet_healthz_port", node))
    out = node_host.run(f"curl -s --max-time 5 http://localhost:{port}/healthz")
    assert out.stdout.strip() == "ok", f"healthz on :{port} answered {out.stdout!r} (rc {out.rc}) {out.stderr}"


def test_kubelet_read_only_port(cluster: Cluster, node: str, node_host) -> None:
    port = int(cluster.var("cluster_kubelet_read_only_port", node))
    if port == 0:
        # Off: nothing may answer on the well-known read-only port.
        out = node_host.run("curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://localhost:10255/healthz")
        assert out.rc != 0, f"cluster_kubelet_read_only_port is 0 but :10255 answered HTTP {out.stdout}"
        return
    out = node_host.run(f"curl -s --max-time 10 http://localhost:{port}/stats/summary")
    assert out.rc == 0, f"/stats/summary on :{port} failed (rc {out.rc}): {out.stderr}"
    summary = json.loads(out.stdout)
    assert summary["node"]["nodeName"] == node, f"stats/summary names {summary['node'].get('nodeName')!r}"


def test_kubelet_static_pod_path(cluster: Cluster, node: str, node_host) -> None:
    want = cluster.var("cluster_kubelet_static_pod_path", node)
    config = node_host.file("/var/lib/kubelet/config.yaml")
    assert config.exists, "the kubelet has no /var/lib/kubelet/config.yaml"
    lines = [
        ln.split(":", 1)[1].strip() for ln in config.content_string.splitlines() if ln.startswith("staticPodPath:")
    ]
    assert lines == [want], f"staticPodPath in /var/lib/kubelet/config.yaml is {lines}, the inventory says {want!r}"
    assert node_host.file(want).is_directory


# --------------------------------------------------------------------------- the cluster


def test_nodes_ready(cluster: Cluster) -> None:
    items = {n["metadata"]["name"]: n for n in cluster.kubectl_json("get nodes")["items"]}
    missing = sorted(set(cluster.nodes) - set(items))
    assert not missing, f"not registered: {missing} (the cluster has {sorted(items)})"
    not_ready = {}
    for name in cluster.nodes:
        conds = {c["type"]: c for c in items[name]["status"].get("conditions", [])}
        ready = conds.get("Ready", {})
        if ready.get("status") != "True":
            not_ready[name] = f"{ready.get('reason')}: {ready.get('message')}"
    assert not not_ready, f"not Ready: {not_ready}"


def test_no_unexpected_nodes(cluster: Cluster) -> None:
    names = {n["metadata"]["name"] for n in cluster.kubectl_json("get nodes")["items"]}
    extra = sorted(names - set(cluster.nodes))
    assert not extra, f"the cluster still lists nodes that should not be there: {extra}"


def test_node_roles(cluster: Cluster) -> None:
    items = {n["metadata"]["name"]: n for n in cluster.kubectl_json("get nodes")["items"]}
    for name in cluster.control_plane:
        if name in items:
            labels = items[name]["metadata"].get("labels", {})
            taints = {t["key"] for t in items[name]["spec"].get("taints", [])}
            assert "node-role.kubernetes.io/control-plane" in labels, f"{name} lacks the control-plane label"
            assert "node-role.kubernetes.io/control-plane" in taints, f"{name} lacks the control-plane taint"


def test_control_plane_static_pods(cluster: Cluster) -> None:
    path = cluster.var("cluster_kubelet_static_pod_path")
    for name in cluster.control_plane:
        host = cluster.host(name)
        present = sorted(f for f in CONTROL_PLANE_MANIFESTS if host.file(f"{path}/{f}").exists)
        assert present == sorted(CONTROL_PLANE_MANIFESTS), f"{name}:{path} has {present}"
    pods = cluster.kubectl_json("get pods -n kube-system")["items"]
    for name in cluster.control_plane:
        for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            pod = next((p for p in pods if p["metadata"]["name"] == f"{component}-{name}"), None)
            assert pod is not None, f"no mirror pod {component}-{name} in kube-system"
            assert pod["status"].get("phase") == "Running", f"{component}-{name} is {pod['status'].get('phase')}"


def test_system_pods_running(cluster: Cluster) -> None:
    """Every kube-system pod (kube-proxy, CoreDNS, ...) and every pod network pod comes up (bounded wait)."""
    bad: dict[str, str] = {}

    def all_running() -> bool:
        pods = cluster.kubectl_json("get pods -A")["items"]
        bad.clear()
        for p in pods:
            if p["metadata"]["namespace"] not in ("kube-system", "kube-flannel"):
                continue
            phase = p["status"].get("phase")
            waiting = [
                c["state"]["waiting"].get("reason", "")
                for c in p["status"].get("containerStatuses", [])
                if "waiting" in c.get("state", {})
            ]
            if phase not in ("Running", "Succeeded") or waiting:
                bad[f"{p['metadata']['namespace']}/{p['metadata']['name']}"] = f"{phase} {' '.join(waiting)}".strip()
        return not bad

    try:
        cluster.wait("system pods Running", all_running, timeout=180)
    except AssertionError:
        raise AssertionError(f"system pods not running after 180 s: {bad}") from None


def test_pod_runs_on_worker_without_pull(cluster: Cluster) -> None:
    """A pod from an image every node has loaded (the pause image) runs on a worker; nothing is pulled."""
    if not cluster.workers:
        pytest.skip("no worker in this cluster")
    images = cluster.host(cluster.workers[0]).run("docker images --format '{{.Repository}}:{{.Tag}}'").stdout.split()
    pause = next((i for i in images if i.rsplit(":", 1)[0].endswith("/pause")), None)
    assert pause, f"no pause image loaded on {cluster.workers[0]}: {images}"
    name = f"kubelab-verify-{secrets.token_hex(3)}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app.kubernetes.io/name": "kubelab-verify"}},
        "spec": {
            "containers": [{"name": "pause", "image": pause, "imagePullPolicy": "Never"}],
            "terminationGracePeriodSeconds": 0,
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/hostname", "operator": "In", "values": cluster.workers}
                                ]
                            }
                        ]
                    }
                }
            },
        },
    }
    manifest = shlex.quote(json.dumps(pod))
    create = cluster.cp.run(f"echo {manifest} | kubectl --kubeconfig {ADMIN_KUBECONFIG} create -f -")
    assert create.rc == 0, f"kubectl create failed: {create.stderr}"
    try:

        def running():
            status = cluster.kubectl_json(f"get pod -n default {name}")["status"]
            return status if status.get("phase") == "Running" else None

        try:
            status = cluster.wait(f"pod {name} Running", running, timeout=180)
        except AssertionError as exc:
            describe = cluster.kubectl(f"describe pod -n default {name}", check=False)
            raise AssertionError(f"{exc}\n{describe}") from None
        spec = cluster.kubectl_json(f"get pod -n default {name}")["spec"]
        assert spec["nodeName"] in cluster.workers, f"the pod ran on {spec['nodeName']}, not on a worker"
        assert status["containerStatuses"][0]["ready"], status
        events = cluster.kubectl_json(f"get events -n default --field-selector involvedObject.name={name}")["items"]
        pulls = [
            e["message"]
            for e in events
            if e.get("reason") in ("Pulling", "Pulled") and "already present" not in e.get("message", "")
        ]
        assert not pulls, f"the pod pulled an image: {pulls}"
    finally:
        cluster.kubectl(f"delete pod -n default {name} --wait=false --ignore-not-found", check=False)
