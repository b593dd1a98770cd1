"""The benchmark of the roles (`make bench`): one lab cluster from fresh nodes, each step timed.

    pytest tests/lab/bench_lab.py       # make bench (not part of make test: timings are reported, never asserted)

Each phase is one playbook run of what an operator does - site.yml on fresh nodes, the same again with
nothing to do, a changed kubelet port, a worker added weeks later with add_worker.yml - and records its
wall time, task counts and the tasks that took longest (from Ansible's own events, as profile_tasks
lists them) into the report (build/bench-report.json and the table). The node image, bundle and node
phases are the e2e run's own. Only correctness is asserted here (each run succeeds; the no-op changes
nothing); the speed targets are in docs/lab.md, compared by a person with the report.
"""

from __future__ import annotations

import time

import nodes
import play
import test_e2e
from common import LATE_WORKER, T_SITE

# The e2e run's first phases, collected here too (in this order): the bundle, the node image, fresh nodes.
test_bundle = test_e2e.test_bundle
test_node_image = test_e2e.test_node_image
test_nodes = test_e2e.test_nodes

# The kubeadm join of add_worker.yml, whose own time the add-worker target is measured against.
JOIN_TASK = "Join | Run kubeadm join"


def timed(phase: dict, name: str, path: str, **kwargs) -> play.PlayRun:
    start = time.monotonic()
    run = play.playbook(name, path, timeout=T_SITE, **kwargs)
    seconds = round(time.monotonic() - start, 1)
    timing = run.timing()
    top = ", ".join(f"{t['task'].split(' : ')[-1][:40]} {t['seconds']:.1f}" for t in timing["top_tasks"][:3])
    phase.update(run.summary(), playbook_seconds=seconds, **timing)
    phase["detail"] = f"{seconds:.1f} s, {timing['tasks']} tasks, changed={run.changed}; top: {top}"
    return run


def test_bench_site(phase, lab):
    """site.yml (fresh nodes): the cluster from bare nodes and the bundle."""
    timed(phase, "bench-site", "site.yml")


# The no-op is short, so the machine's noise shows: it runs this many times, the report gives each and the median.
NOOP_RUNS = 3


def test_bench_noop(phase, lab):
    """no-op: site.yml again, with nothing to do (three times; the median counts)."""
    runs = []
    for number in range(1, NOOP_RUNS + 1):
        run = timed(phase, f"bench-noop-{number}", "site.yml")
        assert run.changed == 0, f"no-op run {number} changed {run.changed_tasks()}"
        runs.append(phase["playbook_seconds"])
    median = sorted(runs)[len(runs) // 2]
    phase.update(runs_seconds=runs, playbook_seconds=median)
    each = ", ".join(f"{r:.1f}" for r in runs)
    phase["detail"] = f"median {median:.1f} s of {each}; " + phase["detail"].split("; ", 1)[-1]


def test_bench_kubelet_port(phase, lab):
    """kubelet port change: site.yml with another read-only port."""
    timed(phase, "bench-port", "site.yml", extravars={"cluster_kubelet_read_only_port": test_e2e.PORT_CHANGE_TO})


def test_bench_add_worker(phase, lab):
    """add_worker.yml: a fresh node joins (the machine that arrives weeks later)."""
    nodes.late_worker(add=True)
    try:
        run = timed(
            phase,
            "bench-add-worker",
            "playbooks/add_worker.yml",
            limit=LATE_WORKER,
            extravars={"cluster_kubelet_read_only_port": test_e2e.PORT_CHANGE_TO},
        )
    finally:
        nodes.late_worker(add=False)
    joins = [r for r in run.results if r.task == JOIN_TASK and r.status == "ok" and r.start]
    if joins:
        phase["kubeadm_join_seconds"] = round(max(r.end for r in joins) - min(r.start for r in joins), 1)
        phase["detail"] += f"; kubeadm join {phase['kubeadm_join_seconds']:.1f} s"
