"""The running cluster as the harness sees it: node states, tokens, features, a kubeconfig for the host."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import play
import remote
from common import (
    ADMIN_KUBECONFIG,
    CONTROL_PLANE,
    HOST_KUBECONFIG,
    LAB_DIR,
    T_READY,
    VENV_BIN,
    LabError,
    docker,
    log,
    run,
    wait_until,
)
from remote import kubectl, kubectl_json, ssh


def node_states() -> dict[str, dict[str, Any]]:
    res = kubectl("get nodes -o json", check=False)
    if res.returncode != 0:
        return {}
    states = {}
    for item in json.loads(res.stdout)["items"]:
        conds = {c["type"]: c["status"] for c in item["status"].get("conditions", [])}
        info = item["status"].get("nodeInfo", {})
        labels = item["metadata"].get("labels", {})
        states[item["metadata"]["name"]] = {
            "ready": conds.get("Ready") == "True",
            "roles": sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")),
            "kubelet": info.get("kubeletVersion"),
            "runtime": info.get("containerRuntimeVersion"),
            "os": info.get("osImage"),
            "addresses": [a["address"] for a in item["status"].get("addresses", []) if a["type"] == "InternalIP"],
        }
    return states


def wait_ready(names: Sequence[str], timeout: float = T_READY) -> dict[str, dict[str, Any]]:
    def probe() -> dict[str, dict[str, Any]] | None:
        states = node_states()
        return states if all(states.get(n, {}).get("ready") for n in names) else None

    return wait_until(f"nodes {', '.join(names)} Ready", probe, timeout, interval=5)


def _token_ids() -> list[str]:
    """The IDs of the bootstrap tokens, read with the collection's own parser of kubeadm's output."""
    play.ensure_collection_link()
    from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import iter_json_objects

    text = ssh(CONTROL_PLANE, f"kubeadm token list --kubeconfig {ADMIN_KUBECONFIG} -o json").stdout
    return [obj["token"].split(".", 1)[0] for obj in iter_json_objects(text)]


def delete_bootstrap_tokens() -> list[str]:
    """Delete every bootstrap token; returns their IDs (a token's secret is never printed)."""
    ids = _token_ids()
    for token_id in ids:
        ssh(CONTROL_PLANE, f"kubeadm token delete --kubeconfig {ADMIN_KUBECONFIG} {shlex.quote(token_id)}")
    left = _token_ids()
    if left:
        raise LabError(f"bootstrap tokens {left} still listed after deleting {ids}")
    log(f"tokens: deleted {len(ids)} bootstrap token(s): ids {', '.join(ids) or '-'}; none left")
    return ids


def declared_features() -> dict[str, list[str]]:
    """Node name -> the features its kubelet declares (Node status.declaredFeatures)."""
    items = kubectl_json("get nodes")["items"]
    return {n["metadata"]["name"]: sorted(n["status"].get("declaredFeatures") or []) for n in items}


def wait_declared(feature: str, nodes: Sequence[str], *, declared: bool) -> dict[str, Any]:
    """Wait (bounded) until every node declares `feature`, or none does; report how long it took."""
    start = time.monotonic()

    def settled() -> dict[str, list[str]] | None:
        features = declared_features()
        return features if all((feature in features.get(n, [])) == declared for n in nodes) else None

    features = wait_until(f"every node {'declaring' if declared else 'without'} {feature}", settled, 120)
    return {
        "declared_features": {n: features.get(n, []) for n in nodes},
        "settled_after_s": round(time.monotonic() - start, 1),
    }


def kubelet_started(nodes: Sequence[str]) -> dict[str, int]:
    """When each node's kubelet last started (systemd's monotonic clock is the host's: comparable)."""
    started = {}
    for node in nodes:
        out = ssh(node, "systemctl show kubelet -p ExecMainStartTimestampMonotonic --value").stdout.strip()
        started[node] = int(out or 0)
    return started


def reset_leftovers(node: str) -> dict[str, Any]:
    """What is left of Kubernetes on a node after reset.yml, and whether the cluster still lists it."""
    conf = ssh(node, "test -e /etc/kubernetes/kubelet.conf", check=False).returncode == 0
    active = ssh(node, "systemctl is-active kubelet", check=False).stdout.strip()
    pods = ssh(node, "docker ps -q --filter label=io.kubernetes.pod.name", check=False).stdout.split()
    return {
        "kubelet_conf": "present" if conf else "absent",
        "kubelet": active,
        "pod_containers": len(pods),
        "node_object": "present" if node in node_states() else "absent",
    }


def write_host_kubeconfig(bundle: Path) -> dict[str, str]:
    """The admin kubeconfig for the host (mode 0600, like kind's), checked with the bundle's kubectl."""
    remote.fetch(CONTROL_PLANE, ADMIN_KUBECONFIG, HOST_KUBECONFIG)
    kubectl_bin = bundle / "bin" / "kubectl"
    res = run(
        [str(kubectl_bin), "--kubeconfig", str(HOST_KUBECONFIG), "get", "nodes", "-o", "name"],
        timeout=60,
        check=False,
    )
    if res.returncode != 0:
        raise LabError(f"kubectl on the host with {HOST_KUBECONFIG} failed: {res.stderr.strip()[-800:]}")
    mode = oct(HOST_KUBECONFIG.stat().st_mode & 0o777)
    if mode != "0o600":
        raise LabError(f"{HOST_KUBECONFIG} has mode {mode}, expected 0600: it holds cluster-admin credentials")
    usage = f"export KUBECONFIG={HOST_KUBECONFIG}; {kubectl_bin} get nodes"
    log(f"kubeconfig for this host: {HOST_KUBECONFIG} (mode 0600). Use it: {usage}")
    return {"kubeconfig": str(HOST_KUBECONFIG), "mode": "0600", "usage": usage, "nodes": res.stdout.split()}


def versions() -> dict[str, str]:
    """The versions the run used (each best effort: the cluster may be broken when this is asked)."""
    found: dict[str, str] = {}
    probes = {
        "host_docker": lambda: docker("version", "-f", "{{.Server.Version}}"),
        "ansible_core": lambda: run([str(VENV_BIN / "ansible"), "--version"]).stdout.split("\n")[0],
        "kubeadm": lambda: ssh(CONTROL_PLANE, "kubeadm version -o short", timeout=20).stdout,
        "node_docker": lambda: ssh(CONTROL_PLANE, "docker version -f '{{.Server.Version}}'", timeout=20).stdout,
        "cri_dockerd": lambda: ssh(CONTROL_PLANE, "cri-dockerd --version 2>&1", timeout=20).stdout,
    }
    for name, probe in probes.items():
        with contextlib.suppress(LabError, OSError, subprocess.SubprocessError):
            found[name] = probe().strip()
    if "ansible_core" in found:
        found["ansible_core"] = found["ansible_core"].split("core ")[-1].rstrip("]")
    return found


def sign_bundle() -> str:
    """Sign the lab bundle with the lab's key when its signature is missing or stale (tests/lab/build/sign.py).

    Every run of the lab does this before a playbook reads the bundle: build.py assembles a bundle
    without a signature, and --lab-skip-build takes the bundle as it is."""
    if not (bundle_dir() / "manifest.json").is_file():
        return f"no bundle at {bundle_dir()} to sign"
    argv = [str(VENV_BIN / "python"), str(LAB_DIR / "build" / "sign.py"), "--bundle", str(bundle_dir())]
    return run(argv, timeout=120).stdout.strip()


def bundle_dir() -> Path:
    """Where the bundle is: KUBELAB_BUNDLE_DIR, else cluster_bundle_dir of inventories/local."""
    env = os.environ.get("KUBELAB_BUNDLE_DIR")
    value = env or play.hostvar("cluster_bundle_dir")
    if not value:
        raise LabError("cluster_bundle_dir is not set in inventories/local/group_vars/all.yml")
    return Path(value)
