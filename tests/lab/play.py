"""Ansible and the shared checks, as the harness runs them.

Playbooks run through ansible-runner: what a run did comes from Ansible's own events (each task's
status and `changed`, the per-host stats), never from reading its human output. The human output
is still written, to LOGS/<name>.log, for people. Inventory values come from `ansible-inventory`.
tests/verify runs as its own pytest session (the same suite molecule runs against VMs); its results
come from its JUnit XML.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml
from common import CLUSTER_SPEC, INVENTORY, LOGS, REPO, STATE, T_PLAY, T_VERIFY, VENV_BIN, LabError, log, run, tool_env

# The statuses of a task result, as ansible-runner names its events.
_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass
class Result:
    """One task's result on one host, from a runner_on_* event."""

    host: str
    role: str
    task: str
    status: str
    changed: bool
    delegated_to: str
    msg: str
    task_uuid: str = ""
    start: float = 0.0  # epoch seconds, from the event's start/end (ansible-runner's callback sets them)
    end: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.role} : {self.task}" if self.role else self.task

    def in_role(self, role: str) -> bool:
        """Whether the task belongs to `role` (short name; the events give kubelab.kubeadm.<role>)."""
        return self.role.rsplit(".", 1)[-1] == role


@dataclass
class PlayRun:
    name: str
    playbook: str
    status: str
    rc: int
    stats: dict[str, dict[str, int]]
    results: list[Result] = field(default_factory=list)
    log: str = ""

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())

    def changed_results(self) -> list[Result]:
        return [r for r in self.results if r.changed and r.status == "ok"]

    def changed_tasks(self) -> list[str]:
        """The tasks and handlers that reported `changed`, in order, each once."""
        return list(dict.fromkeys(r.name for r in self.changed_results()))

    def changed_outside(self, role: str) -> list[str]:
        """The changed tasks that do not belong to `role`."""
        return list(dict.fromkeys(r.name for r in self.changed_results() if not r.in_role(role)))

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status in ("failed", "unreachable")]

    def summary(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "status": self.status,
            "rc": self.rc,
            "changed": self.changed,
            "stats": self.stats,
            "changed_tasks": self.changed_tasks(),
            "failed_tasks": [{"host": f.host, "task": f.name, "msg": f.msg[:600]} for f in self.failures()],
            "log": self.log,
        }

    def timing(self, top: int = 8) -> dict[str, Any]:
        """Task counts and the tasks that took longest, as profile_tasks would list them (wall time per task
        from its first host's start to its last host's end; hosts run a task in parallel)."""
        spans: dict[str, list[float]] = {}
        names: dict[str, str] = {}
        for r in self.results:
            if not r.start or not r.end:
                continue
            key = r.task_uuid or r.name
            names[key] = r.name
            span = spans.setdefault(key, [r.start, r.end])
            span[0], span[1] = min(span[0], r.start), max(span[1], r.end)
        per_task = sorted(((round(e - b, 2), names[k]) for k, (b, e) in spans.items()), reverse=True)
        by_role: dict[str, float] = {}
        for seconds, name in per_task:
            role = name.split(" : ", 1)[0] if " : " in name else "(playbooks)"
            by_role[role] = round(by_role.get(role, 0.0) + seconds, 2)
        counted = [r for r in self.results if r.status != "skipped"]
        return {
            "tasks": len({r.task_uuid or r.name for r in self.results}),
            "task_results": len(self.results),
            "task_results_run": len(counted),
            "top_tasks": [{"task": n, "seconds": s} for s, n in per_task[:top]],
            "seconds_by_role": dict(sorted(by_role.items(), key=lambda kv: -kv[1])),
            "task_seconds": [{"task": n, "seconds": s} for s, n in per_task],
        }

    def describe_failures(self) -> str:
        return "; ".join(f"[{f.host}] {f.name}: {f.msg[:400]}" for f in self.failures()[:3]) or f"see {self.log}"


def _stats(final: dict[str, Any]) -> dict[str, dict[str, int]]:
    """playbook_on_stats event data -> {host: {ok, changed, failures, ...}}."""
    hosts: dict[str, dict[str, int]] = {}
    for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
        for host, count in (final.get(key) or {}).items():
            hosts.setdefault(host, {})[key] = count
    for host in final.get("processed") or {}:
        hosts.setdefault(host, {})
    return hosts


def _delegated(res: dict[str, Any]) -> str:
    """The address (ansible_host) of the host a delegated task ran on ("" if not delegated)."""
    return str((res.get("_ansible_delegated_vars") or {}).get("ansible_host") or "")


def _epoch(stamp: Any) -> float:
    """An event's ISO start/end time (naive, UTC) -> epoch seconds; 0 when absent."""
    if not stamp:
        return 0.0
    return dt.datetime.fromisoformat(str(stamp)).replace(tzinfo=dt.UTC).timestamp()


def _message(res: dict[str, Any]) -> str:
    parts = [str(res.get(k)) for k in ("msg", "stderr") if res.get(k)]
    return " ".join(parts) or json.dumps({k: v for k, v in res.items() if not k.startswith("_")})[:600]


def playbook(
    name: str,
    path: str,
    *,
    extravars: dict[str, Any] | None = None,
    limit: str | None = None,
    inventory: Sequence[str] = (),
    timeout: float = T_PLAY,
    check: bool = True,
) -> PlayRun:
    """ansible-playbook `path` (relative to the repository) against inventories/local (+ `inventory`)."""
    ensure_collection_link()
    data_dir = STATE / "runner" / name
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    logfile = LOGS / f"{name}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    final: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind in ("playbook_on_play_start", "playbook_on_task_start", "playbook_on_handler_task_start"):
            log(f"{name}: {data.get('play') if kind == 'playbook_on_play_start' else data.get('task')}")
        elif kind in _RESULTS:
            res = data.get("res") or {}
            results.append(
                Result(
                    host=data.get("host", ""),
                    role=data.get("resolved_role") or data.get("role") or "",
                    task=data.get("task", ""),
                    status=_RESULTS[kind],
                    changed=bool(res.get("changed")),
                    delegated_to=_delegated(res),
                    msg=_message(res) if kind in ("runner_on_failed", "runner_on_unreachable") else "",
                    task_uuid=str(data.get("task_uuid") or ""),
                    start=_epoch(data.get("start")),
                    end=_epoch(data.get("end")),
                )
            )
        elif kind == "playbook_on_stats":
            final.update(data)
        return False  # ansible-runner keeps nothing in memory for us: the event is consumed here

    log(f"ansible-playbook {path} -i {INVENTORY.relative_to(REPO)}" + (f" --limit {limit}" if limit else ""))
    runner = ansible_runner.run(
        private_data_dir=str(data_dir),
        project_dir=str(REPO),
        playbook=str(REPO / path),
        inventory=[str(INVENTORY), *inventory],
        extravars=extravars or {},
        limit=limit,
        envvars=tool_env(),
        quiet=True,
        event_handler=on_event,
        timeout=int(timeout),
        rotate_artifacts=1,
    )
    stdout = runner.stdout.read() if runner.stdout else ""
    logfile.write_text(stdout)
    outcome = PlayRun(name, path, str(runner.status), int(runner.rc or 0), _stats(final), results, str(logfile))
    if check and outcome.status != "successful":
        raise LabError(f"{path} ({name}) {outcome.status} (rc {outcome.rc}): {outcome.describe_failures()}")
    return outcome


def ping(inventory: Sequence[str] = ()) -> dict[str, str]:
    """ansible -m ping on every host of inventories/local (+ `inventory`): host -> ok/failed/unreachable."""
    data_dir = STATE / "runner" / "ping"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    runner = ansible_runner.run(
        private_data_dir=str(data_dir),
        host_pattern="all",
        module="ansible.builtin.ping",
        inventory=[str(INVENTORY), *inventory],
        envvars=tool_env(),
        quiet=True,
        timeout=180,
    )
    answers = {e["event_data"]["host"]: _RESULTS[e["event"]] for e in runner.events if e.get("event") in _RESULTS}
    if runner.status != "successful" or not answers or any(v != "ok" for v in answers.values()):
        raise LabError(f"ansible -m ping: {runner.status}: {answers}")
    return answers


def ensure_collection_link() -> None:
    """ansible.cfg puts build/collections first: make the checkout the kubelab.kubeadm collection.

    build/collections also goes on sys.path, so the harness can import the collection's own
    module_utils (as tests/unit/conftest.py does; ansible_collections is a namespace package).
    """
    collections = REPO / "build" / "collections"
    link = collections / "ansible_collections" / "kubelab" / "kubeadm"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    if str(collections) not in sys.path:
        sys.path.insert(0, str(collections))


def inventory() -> dict[str, Any]:
    """`ansible-inventory --list` of inventories/local (templated values resolved by Ansible)."""
    res = run([str(VENV_BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"], env=tool_env(), cwd=REPO)
    return json.loads(res.stdout)


def hostvar(name: str, host: str = "node1") -> Any:
    """A variable of `host` as inventories/local sets it; a cluster_* variable it leaves unset has the
    default of playbooks/vars/cluster_spec.yml (the one place those defaults are written)."""
    value = inventory().get("_meta", {}).get("hostvars", {}).get(host, {}).get(name)
    if value is None and name.startswith("cluster_"):
        options = yaml.safe_load(CLUSTER_SPEC.read_text())["argument_specs"]["cluster"]["options"]
        value = options.get(name, {}).get("default")
    return value


def inventory_hosts() -> list[str]:
    return sorted(inventory().get("_meta", {}).get("hostvars", {}))


def junit_outcomes(path: Path) -> dict[str, str]:
    """Each test of a pytest JUnit file -> passed / failed / error / skipped."""
    if not path.exists():
        return {}
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{module}::{case.get('name')}"] = {"failure": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
    return outcomes


def verify(name: str, nodes: Sequence[str], *extra: str) -> dict[str, Any]:
    """tests/verify against inventories/local, the cluster expected to consist of `nodes`."""
    junit = LOGS / f"{name}.xml"
    junit.unlink(missing_ok=True)
    argv = [
        str(VENV_BIN / "pytest"),
        "tests/verify",
        *("-p", "no:cacheprovider", "-q", "-rfEs"),
        f"--ansible-inventory={INVENTORY.relative_to(REPO)}",
        f"--kubelab-nodes={','.join(nodes)}",
        f"--junitxml={junit}",
        *("-o", "junit_family=xunit2"),
        *extra,
    ]
    res = run(argv, timeout=T_VERIFY, env=tool_env(), cwd=REPO, check=False, logfile=LOGS / f"{name}.log")
    checks = junit_outcomes(junit)
    counts = {k: list(checks.values()).count(k) for k in ("passed", "failed", "error", "skipped")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    result = {"rc": res.returncode, "summary": summary, "log": str(LOGS / f"{name}.log"), "checks": checks}
    bad = [n for n, o in checks.items() if o != "passed"]
    if res.returncode != 0 or bad or not checks:
        raise LabError(f"tests/verify ({name}): {summary or 'no result'}; not passed: {bad[:20]} (see {result['log']})")
    log(f"{name}: {summary}")
    return result
