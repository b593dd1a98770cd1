"""The end-to-end run of the container lab: each test is one phase, run in this order on one cluster.

A phase's docstring names it in the report (before the colon) and says what it proves. The phases
marked `lab` are what `make lab` runs: bundle, node image, nodes, site.yml, the checks, a kubeconfig
for this host; the rest are the operator's days after it: a second run, a repair, a bad bundle, a
changed setting, a worker arriving weeks later, a reboot, a reset.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cluster
import nodes
import play
import pytest
import remote
import yaml
from common import (
    CONTROL_PLANE,
    LAB_DIR,
    LATE_WORKER,
    LOGS,
    NODES,
    REPO,
    STATE,
    T_BUILD,
    T_SITE,
    tool_env,
    wait_until,
)
from common import run as run_cmd

# The read-only port the port-change phase switches to and back (10256 is kube-proxy's healthz).
PORT_CHANGE_TO = 10265
# The read-only port the port-in-use phase asks for while another program on a worker listens there.
PORT_IN_USE = 10266
# The kubelet feature gate the day-one fix turns off (playbooks/vars/versions.yml), and what the bug looks like.
WEBSOCKET_GATE = "ExtendWebSocketsToKubelet"
EXEC_BUG = "server gave HTTP response to HTTPS client"
# The pre-flight's refusal of nodes of another cluster (playbooks/tasks/cluster_membership.yml).
MEMBERSHIP_TASK = "Cluster membership | Refuse nodes of another cluster"
# Where the other cluster of the other-cluster phase lives (no such host: nothing is ever sent there).
OTHER_SERVER = "10.250.0.99:6443"


@pytest.mark.lab
def test_bundle(phase, request):
    """bundle: the offline bundle is built (or found up to date) and has a manifest."""
    target = cluster.bundle_dir()
    version = play.hostvar("cluster_kubernetes_version")
    phase.update(bundle_dir=str(target), kubernetes_version=version)
    if request.config.getoption("lab_skip_build"):
        phase["detail"] = "build skipped (--lab-skip-build)"
    else:
        summary = STATE / "build-summary.json"
        argv = [
            sys.executable,
            str(LAB_DIR / "build" / "build.py"),
            "--version",
            version,
            "--summary-json",
            str(summary),
        ]
        run_cmd(argv, timeout=T_BUILD, env=tool_env(), logfile=LOGS / "bundle.log")
        built = json.loads(summary.read_text())
        assert Path(built["bundle_dir"]).resolve() == target.resolve(), (
            f"the build wrote {built['bundle_dir']}, but the inventory's cluster_bundle_dir is {target}: "
            "make them the same (KUBELAB_CACHE / KUBELAB_BUNDLE_DIR)"
        )
        phase.update(cache_hit=built["cache_hit"], rebuilt=built.get("rebuilt", []))
        rebuilt = built.get("rebuilt", [])
        phase["detail"] = (
            "cache hit" if built["cache_hit"] else f"built {len(rebuilt)} steps: {', '.join(rebuilt[:4])}..."
        )
    manifest = json.loads((target / "manifest.json").read_text())
    phase.update(versions=manifest.get("versions", {}), images=len(manifest.get("images", [])))
    request.node.session.config.pluginmanager.get_plugin("kubelab-lab-report").data["versions"] = {
        "bundle": manifest.get("versions", {})
    }


@pytest.mark.lab
def test_node_image(phase):
    """node image: the Debian node image is built from Debian's packages (or cached by its recipe)."""
    phase.update(nodes.ensure_image())
    phase["detail"] = f"{phase['tag']} ({'cached' if phase['cached'] else 'built'})"


@pytest.mark.lab
def test_nodes(phase, lab):
    """nodes: every node boots, answers SSH with its recorded host key and Ansible, and has no way out."""
    names = list(NODES)[: lab.count]
    phase["check"] = nodes.check(names)
    extra = [n for n in names if n not in play.inventory_hosts()]
    spare = STATE / "spare-nodes.yml"
    spare.write_text(json.dumps({"all": {"hosts": {n: {"ansible_host": NODES[n]} for n in extra}}}))
    phase["ping"] = play.ping(inventory=[str(spare)] if extra else [])
    assert sorted(phase["ping"]) == names, f"ansible ping answered for {sorted(phase['ping'])}, expected {names}"
    phase["detail"] = f"{len(names)} nodes: systemd running, SSH with known host keys, ansible ping, no route out"


@pytest.mark.lab
def test_site(phase, lab):
    """site.yml: the cluster is built from bare nodes and the bundle alone."""
    run = play.playbook("site", "site.yml", timeout=T_SITE)
    phase.update(run.summary(), detail=f"changed={run.changed}")


@pytest.mark.lab
def test_verify(phase, lab):
    """verify: the day-one checks pass (nodes Ready, kubelet ports, exec, logs, port-forward, DNS, Services)."""
    phase.update(play.verify("verify-1", lab.members))
    phase["detail"] = phase["summary"]


@pytest.mark.lab
def test_host_kubeconfig(phase, lab):
    """kubeconfig: this host gets the admin kubeconfig (mode 0600) and the bundle's kubectl works with it."""
    phase.update(cluster.write_host_kubeconfig(cluster.bundle_dir()))
    assert sorted(phase["nodes"]) == [f"node/{n}" for n in lab.members]
    phase["detail"] = phase["usage"]


def test_second_run(phase, lab):
    """second run: site.yml again changes nothing."""
    run = play.playbook("site-second", "site.yml")
    phase.update(run.summary(), detail=f"changed={run.changed}")
    assert run.changed == 0, f"the second site.yml run is not idempotent: changed {run.changed_tasks()}"


def test_port_in_use(phase, lab):
    """port in use: a read-only port a worker's other program holds stops site.yml, naming it, before any change.

    The program is `python3 -m http.server` on the worker (bounded by `timeout`), stopped by its pid afterwards;
    the pre-flight's node checks refuse the run (the kubelet itself holding its ports is accepted, as the
    second run and the port-change phase show).
    """
    node = lab.members[-1]
    started = remote.ssh(
        node,
        f"setsid timeout 600 python3 -m http.server {PORT_IN_USE} --bind 0.0.0.0 >/dev/null 2>&1 < /dev/null & "
        f"echo $!; for i in $(seq 50); do grep -q ':{PORT_IN_USE:04X} 00000000:0000 0A' /proc/net/tcp && exit 0; "
        "sleep 0.1; done; exit 1",
        timeout=30,
    )
    pid = int(started.stdout.split()[0])
    try:
        run = play.playbook(
            "site-port-in-use", "site.yml", extravars={"cluster_kubelet_read_only_port": PORT_IN_USE}, check=False
        )
    finally:
        remote.ssh(
            node,
            f"kill {pid}; for i in $(seq 50); do kill -0 {pid} 2>/dev/null || exit 0; sleep 0.1; done; exit 1",
            timeout=30,
        )
    phase.update(run.summary(), node=node, port=PORT_IN_USE)
    assert run.status == "failed", f"site.yml accepted read-only port {PORT_IN_USE}, which python3 holds on {node}"
    messages = " ".join(f.msg for f in run.failures())
    for text in (f"Port {PORT_IN_USE} (cluster_kubelet_read_only_port)", f"in use on {node}", "python3"):
        assert text in " ".join(messages.split()), f"the failure does not say {text!r}: {messages[:600]}"
    assert run.changed == 0, f"the refused run changed {run.changed_tasks()}"
    phase["detail"] = f"refused, naming port {PORT_IN_USE}, {node} and python3; changed=0"


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=60).stdout


def _ca_pin(pem: bytes) -> str:
    """kubeadm's sha256: pin of a CA certificate, by the documented openssl pipeline."""
    der = _openssl("pkey", "-pubin", "-outform", "der", data=_openssl("x509", "-pubkey", "-noout", data=pem))
    return "sha256:" + _openssl("dgst", "-sha256", data=der).decode().split()[-1]


def _refused_in_preflight(run: play.PlayRun, name: str) -> str:
    """The refusal's message, after checking the run failed at the membership check and changed nothing."""
    assert run.status == "failed", f"{name}: site.yml was not refused"
    failures = run.failures()
    assert failures and all(f.task == MEMBERSHIP_TASK for f in failures), (
        f"{name}: expected the pre-flight's {MEMBERSHIP_TASK!r} to fail, got {run.describe_failures()}"
    )
    assert run.changed == 0, f"{name}: the refused run changed {run.changed_tasks()}"
    return " ".join(" ".join(f.msg for f in failures).split())


def test_other_cluster_worker(phase, lab):
    """other cluster (worker): a worker whose kubelet.conf names another server and CA is refused in the pre-flight.

    node2's kubelet.conf is replaced by one naming OTHER_SERVER and a CA made here from a fresh key; site.yml
    fails at the membership check naming node2, its server and CA pin and the control plane's, and changes
    nothing; the original file is put back.
    """
    worker = lab.workers[0]
    conf = "/etc/kubernetes/kubelet.conf"
    original = remote.ssh(worker, f"cat {conf}").stdout.encode()
    ours = remote.ssh(CONTROL_PLANE, "cat /etc/kubernetes/pki/ca.crt").stdout.encode()
    key = STATE / "other-cluster-ca.key"
    other_ca = _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-subj",
        "/CN=kubernetes",
        "-days",
        "1",
    )
    key.unlink(missing_ok=True)
    config = yaml.safe_load(original)
    cluster_entry = config["clusters"][0]["cluster"]
    cluster_entry.pop("certificate-authority", None)
    cluster_entry["server"] = f"https://{OTHER_SERVER}"
    cluster_entry["certificate-authority-data"] = base64.b64encode(other_ca).decode()
    remote.put(worker, yaml.safe_dump(config).encode(), conf)
    started = time.monotonic()
    try:
        run = play.playbook("site-other-cluster-worker", "site.yml", check=False)
    finally:
        remote.put(worker, original, conf)
    took = time.monotonic() - started
    assert remote.ssh(worker, f"cat {conf}").stdout.encode() == original, f"{conf} on {worker} was not restored"
    phase.update(run.summary(), seconds=round(took))
    message = _refused_in_preflight(run, "other-cluster worker")
    for part in (
        f"{worker} belongs to another cluster (server and CA differ)",
        f"names server {OTHER_SERVER} with CA {_ca_pin(other_ca)}",
        f"control plane {CONTROL_PLANE} serves {NODES[CONTROL_PLANE]}:6443 with CA {_ca_pin(ours)}",
        f"--limit {worker}",
    ):
        assert part in message, f"the refusal does not say {part!r}: {message[:800]}"
    phase["detail"] = f"{worker} refused in the pre-flight ({took:.0f} s), naming both servers and CAs; changed=0"


def test_other_cluster_control_plane(phase, lab):
    """other cluster (control plane): an inventory whose pod subnet is not the running cluster's is refused."""
    ours = play.hostvar("cluster_pod_subnet")
    other = "10.32.0.0/16" if ours != "10.32.0.0/16" else "10.33.0.0/16"
    run = play.playbook("site-other-pod-subnet", "site.yml", extravars={"cluster_pod_subnet": other}, check=False)
    phase.update(run.summary())
    message = _refused_in_preflight(run, "other pod subnet")
    wanted = (
        f"its networking.podSubnet (kube-controller-manager --cluster-cidr) is {ours}, the inventory's"
        f" (cluster_pod_subnet) {other}"
    )
    assert f"The control plane {CONTROL_PLANE} already runs a cluster" in message and wanted in message, (
        f"the refusal does not name both pod subnets: {message[:800]}"
    )
    phase["detail"] = f"cluster_pod_subnet {other} (the cluster runs {ours}) refused in the pre-flight; changed=0"


def test_daemon_json_kept(phase, lab):
    """daemon.json: a node's own key survives a run, a changed owned value is reset with a backup; then changed=0.

    On node2, daemon.json gets max-concurrent-downloads (not the role's) and log-opts.max-size 10m (the role's
    is 100m). site.yml changes only docker_engine (daemon.json written, Docker restarted): the user's key is
    kept, max-size is 100m again, and the file as it was is kept as daemon.json.<n>.<date>~. A second run
    changes nothing. Then the file the role wrote before the phase is put back and the backup removed.
    """
    node = lab.workers[0]
    path = "/etc/docker/daemon.json"
    original = remote.ssh(node, f"cat {path}").stdout
    backups = "ls -1 /etc/docker/ | grep '^daemon.json\\..*~$' || true"
    before_backups = remote.ssh(node, backups).stdout.split()
    users = json.loads(original)
    users["max-concurrent-downloads"] = 5
    users.setdefault("log-opts", {})["max-size"] = "10m"
    mine = json.dumps(users, indent=4) + "\n"
    remote.put(node, mine.encode(), path, mode=0o644)
    try:
        run = play.playbook("site-daemon-json", "site.yml")
        assert run.changed and not run.changed_outside("docker_engine"), (
            f"expected changes by docker_engine only, got {run.changed_tasks() or 'none'}"
        )
        changed_hosts = sorted({r.host for r in run.changed_results()})
        assert changed_hosts == [node], f"changes on {changed_hosts}, expected on {node} only"
        now = json.loads(remote.ssh(node, f"cat {path}").stdout)
        assert now.get("max-concurrent-downloads") == 5, f"the node's own key is gone: {now}"
        assert now["log-opts"]["max-size"] != "10m", f"the role's log-opts.max-size was not restored: {now}"
        new_backups = sorted(set(remote.ssh(node, backups).stdout.split()) - set(before_backups))
        assert len(new_backups) == 1, f"expected one new backup of {path}, found {new_backups}"
        kept = remote.ssh(node, f"cat /etc/docker/{new_backups[0]}").stdout
        assert kept == mine, f"the backup {new_backups[0]} is not the file as it was"
        cluster.wait_ready(lab.members)
        again = play.playbook("site-daemon-json-again", "site.yml")
        assert again.changed == 0, f"the run after the merge is not idempotent: {again.changed_tasks()}"
    finally:
        remote.put(node, original.encode(), path, mode=0o644)
        for name in set(remote.ssh(node, backups).stdout.split()) - set(before_backups):
            remote.ssh(node, f"rm -f /etc/docker/{name}")
    phase.update(run.summary(), backup=new_backups[0], second_run_changed=again.changed)
    phase["detail"] = (
        f"{node}: own key kept, log-opts.max-size reset, backup {new_backups[0]}; docker_engine only; then changed=0"
    )


def _restart_order(run: play.PlayRun) -> list[tuple[str, str]]:
    """kubelet_config's restart loop as it ran: ("restart"|"healthy", node) in order."""
    by_address = {ip: n for n, ip in NODES.items()}
    steps = []
    for r in run.results:
        if r.in_role("kubelet_config") and r.status == "ok" and r.delegated_to:
            kind = "restart" if "Restart the kubelet" in r.task else "healthy" if "healthz" in r.task else ""
            if kind:
                steps.append((kind, by_address.get(r.delegated_to, r.delegated_to)))
    return steps


def _exec_error(pod: str) -> tuple[int, str]:
    res = remote.kubectl(f"-n kube-system exec {pod} -- /bin/sh -c 'echo exec-ok'", check=False)
    return res.returncode, (res.stdout + res.stderr).strip()


def test_exec_repair(phase, lab):
    """exec repair: a cluster made before the day-one fix (exec broken) is repaired by one site.yml run.

    1. With the gate removed (-e cluster_kubelet_feature_gates={ExtendWebSocketsToKubelet: null}: what the
       earlier release left), only kubelet_config changes and `kubectl exec` fails on every node with the
       known error.
    2. site.yml with the defaults: only kubelet_config changes; the kubelets restart one node at a time
       (restart, healthy, next); no node declares the feature; exec, attach, cp and port-forward work.
    3. site.yml again: changed=0.
    """
    old = play.playbook(
        "site-old-behaviour", "site.yml", extravars={"cluster_kubelet_feature_gates": {WEBSOCKET_GATE: None}}
    )
    assert not old.changed_outside("kubelet_config"), (
        f"changes outside kubelet_config: {old.changed_outside('kubelet_config')}"
    )
    phase["old_behaviour"] = cluster.wait_declared(WEBSOCKET_GATE, lab.members, declared=True)
    pods = remote.kubectl_json("-n kube-system get pods -l k8s-app=kube-proxy")["items"]
    by_node = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods}
    errors = {}
    for node in lab.members:
        rc, text = _exec_error(by_node[node])
        assert rc != 0 and EXEC_BUG in text, (
            f"with the old behaviour, exec on {node} should fail with {EXEC_BUG!r}: rc {rc} {text}"
        )
        errors[node] = text[-200:]
    phase["old_behaviour"]["exec"] = errors

    before = cluster.kubelet_started(lab.members)
    repair = play.playbook("site-repair", "site.yml")
    assert repair.changed and not repair.changed_outside("kubelet_config"), (
        f"expected changes by kubelet_config only, got {repair.changed_tasks() or 'none'}"
    )
    steps = _restart_order(repair)
    order = [n for kind, n in steps if kind == "restart"]
    assert steps == [s for n in order for s in (("restart", n), ("healthy", n))], f"not one node at a time: {steps}"
    assert sorted(order) == sorted(lab.members), f"restarted {order}, expected each of {lab.members} once"
    after = cluster.kubelet_started(lab.members)
    assert all(after[n] > before[n] for n in lab.members), f"a kubelet did not restart: {before} -> {after}"
    assert sorted(lab.members, key=after.get) == order, f"the kubelets started in another order: {after}"
    # The streaming checks on fresh pods: on this cgroup v1 host a kubelet restart can take running containers
    # out of their devices cgroup (runc#4620, kubernetes#103542; docs/operations.md), not what this is about.
    settled = cluster.wait_declared(WEBSOCKET_GATE, lab.members, declared=False)
    checks = play.verify("verify-repair", lab.members, "-k", "test_exec or test_attach or test_cp or test_port_forward")
    phase["repair"] = {**repair.summary(), "restart_order": order, **settled, "verify": checks["summary"]}

    again = play.playbook("site-after-repair", "site.yml")
    assert again.changed == 0, f"site.yml after the repair is not idempotent: {again.changed_tasks()}"
    phase["detail"] = (
        f"exec broken, then repaired by one run (kubelets {' > '.join(order)}; {checks['summary']}), then changed=0"
    )


def test_tampered_bundle(phase, lab):
    """tampered bundle: one changed byte in one image archive stops site.yml, naming the file, before any change.

    The copy shares every file with the real bundle through hard links except the tampered archive,
    which is a real copy: the real bundle is never modified.
    """
    src = cluster.bundle_dir()
    manifest = json.loads((src / "manifest.json").read_text())
    victim = min((f for f in manifest["files"] if f["component"] == "image"), key=lambda f: f["size"])
    copy = STATE / "tampered-bundle"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(src, copy, copy_function=os.link)
    try:
        target = copy / victim["path"]
        target.unlink()
        shutil.copyfile(src / victim["path"], target)
        with target.open("r+b") as fh:
            fh.seek(victim["size"] // 2)
            byte = fh.read(1)
            fh.seek(victim["size"] // 2)
            fh.write(bytes([byte[0] ^ 0x01]))
        run = play.playbook("site-tampered", "site.yml", extravars={"cluster_bundle_dir": str(copy)}, check=False)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    phase.update(run.summary(), file=victim["path"])
    assert run.status == "failed", f"site.yml accepted a bundle whose {victim['path']} has a changed byte"
    messages = " ".join(f.msg for f in run.failures())
    assert victim["path"] in messages and victim["sha256"] in messages, (
        f"the failure does not name {victim['path']} and its expected sha256: {messages[:600]}"
    )
    assert run.changed == 0, f"the run with a tampered bundle changed {run.changed_tasks()}"
    phase["detail"] = f"refused, naming {victim['path']}; changed=0"


def _bundle_writer():
    """The collection's own manifest writer (plugins/module_utils/_bundle.py), as any builder loads it."""
    spec = importlib.util.spec_from_file_location("kubelab_bundle", REPO / "plugins" / "module_utils" / "_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerated_manifest(phase, lab):
    """regenerated manifest: bin/kubeadm replaced and manifest.json + SHA256SUMS rewritten to match is refused
    by the signature in the pre-flight, before any change.

    Every file of the copy matches its new manifest (the attack the sha256 checks alone let through); only
    the builder's signature, which the attacker cannot make, no longer fits. Hard links as in the phase
    before: the real bundle is never modified (the writer replaces files, it does not write into them).
    """
    src = cluster.bundle_dir()
    manifest = json.loads((src / "manifest.json").read_text())
    copy = STATE / "regenerated-bundle"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(src, copy, copy_function=os.link)
    try:
        kubeadm = copy / "bin" / "kubeadm"
        kubeadm.unlink()
        shutil.copyfile(src / "bin" / "kubeadm", kubeadm)
        with kubeadm.open("ab") as fh:
            fh.write(b"\0attacker")
        writer = _bundle_writer()
        meta = {key: manifest[key] for key in writer.META_KEYS if key in manifest}
        written = writer.write_manifest(str(copy), meta, manifest["images"])
        assert written["changed"], "the regenerated manifest is the old one: the attack changed nothing"
        assert (copy / "manifest.json.sig").read_bytes() == (src / "manifest.json.sig").read_bytes()
        run = play.playbook("site-regenerated", "site.yml", extravars={"cluster_bundle_dir": str(copy)}, check=False)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    phase.update(run.summary())
    assert run.status == "failed", "site.yml accepted a bundle whose manifest was rewritten after signing"
    messages = " ".join(f.msg for f in run.failures())
    assert "manifest.json.sig does not match manifest.json" in messages, (
        f"the failure does not name the signature problem: {messages[:600]}"
    )
    assert all(f.task == "Verify the offline bundle on the controller" for f in run.failures()), messages[:600]
    assert run.changed == 0, f"the run with a regenerated manifest changed {run.changed_tasks()}"
    phase["detail"] = "refused by the signature in the pre-flight; changed=0"


def test_kubelet_port_change(phase, lab):
    """kubelet port change: another read-only port changes only kubelet_config, and is checked; then back."""
    original = int(play.hostvar("cluster_kubelet_read_only_port"))
    for name, port in (("site-port-change", PORT_CHANGE_TO), ("site-port-restore", original)):
        run = play.playbook(name, "site.yml", extravars={"cluster_kubelet_read_only_port": port})
        assert run.changed and not run.changed_outside("kubelet_config"), (
            f"{name}: expected changes by kubelet_config only, got {run.changed_tasks() or 'none'}"
        )
        checks = play.verify(
            f"verify-{name}",
            lab.members,
            f"--kubelab-set=cluster_kubelet_read_only_port={port}",
            *("-k", "read_only_port or healthz or nodes_ready"),
        )
        phase[name] = {
            "port": port,
            "changed": run.changed,
            "changed_tasks": run.changed_tasks(),
            "verify": checks["summary"],
        }
    phase["detail"] = f"{original} -> {PORT_CHANGE_TO} -> {original}, kubelet_config only, checked each time"


def test_delete_tokens(phase, lab):
    """delete tokens: every bootstrap token is deleted, as weeks later (a join must mint its own)."""
    phase["deleted"] = cluster.delete_bootstrap_tokens()
    phase["detail"] = f"{len(phase['deleted'])} token(s) deleted"


def test_add_node(phase, lab):
    """add node: a worker that arrives later joins with add_worker.yml alone, without a stored token."""
    nodes.late_worker(add=True)
    run = play.playbook("add-worker", "playbooks/add_worker.yml", limit=LATE_WORKER)
    lab.workers.append(LATE_WORKER)
    phase.update(run.summary())
    cluster.wait_ready(lab.members, timeout=300)
    phase.update(play.verify("verify-2", lab.members))
    phase["detail"] = f"{LATE_WORKER} joined; {phase['summary']}"


def test_restart(phase, lab):
    """restart: a node restarts (a reboot, as a container can) and the cluster is whole again."""
    node = lab.restart_node
    nodes.restart_node(node)
    cluster.wait_ready(lab.members)
    phase.update(play.verify("verify-3", lab.members), node=node)
    phase["detail"] = f"{node} Ready again; {phase['summary']}"


def test_reset(phase, lab):
    """reset: reset.yml takes the late worker out of the cluster and leaves nothing of Kubernetes on it."""
    run = play.playbook("reset", "playbooks/reset.yml", limit=LATE_WORKER, extravars={"reset_confirm": "yes"})
    phase.update(run.summary())

    def gone() -> dict | None:
        state = cluster.reset_leftovers(LATE_WORKER)
        return state if state["node_object"] == "absent" else None

    left = wait_until(f"{LATE_WORKER} gone from the cluster", gone, timeout=60)
    phase["node_after_reset"] = left
    assert left["kubelet_conf"] == "absent" and left["kubelet"] != "active" and not left["pod_containers"], left
    nodes.late_worker(add=False)
    lab.workers.remove(LATE_WORKER)
    phase.update(play.verify("verify-4", lab.members))
    phase["detail"] = f"{LATE_WORKER} clean; {phase['summary']}"


def test_no_secret_in_logs(phase, lab):
    """logs: the admin client key appears in none of the logs this run wrote."""
    secrets = [
        ln.split(":", 1)[1].strip() for ln in cluster.HOST_KUBECONFIG.read_text().splitlines() if "key-data" in ln
    ]
    assert secrets, "the host kubeconfig has no client-key-data to look for"
    leaked = [str(p) for p in LOGS.glob("*.log") if any(s in p.read_text(errors="replace") for s in secrets)]
    assert not leaked, f"the admin client key appears in {leaked}"
    phase["detail"] = f"{len(list(LOGS.glob('*.log')))} logs checked"
