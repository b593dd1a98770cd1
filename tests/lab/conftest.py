"""The container lab as a pytest session: the lab is a session fixture, each phase a test, in order.

    pytest tests/lab                  # the whole end-to-end run (make e2e)
    pytest tests/lab -m lab --lab-keep --lab-nodes 2   # bring the cluster up and keep it (make lab)

A phase depends on the ones before it, so the run stops at the first failed phase (maxfail=1); the
lab is torn down afterwards whatever happened, unless --lab-keep / KUBELAB_KEEP=1. The report
(build/lab-report.json and the table at the end) comes from report.py; JUnit from --junitxml.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cluster
import nodes
import pytest
from common import CONTROL_PLANE, NODES, STATE, LabError, keep, log, run
from report import LabReport


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kubelab lab")
    group.addoption("--lab-skip-build", action="store_true", help="use the bundle as it is (no build step)")
    group.addoption("--lab-nodes", type=int, default=3, help="node containers to start (1-3; default 3)")
    group.addoption(
        "--lab-restart-node", default="node2", choices=sorted(NODES), help="the node the restart phase restarts"
    )
    group.addoption("--lab-keep", action="store_true", help="leave the lab running afterwards (also KUBELAB_KEEP=1)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: the phases of `make lab` (cluster up and checked; it keeps running)")
    # Each phase builds on the state the previous one left: after a failure the rest cannot mean anything.
    config.option.maxfail = 1
    if any(str(arg).split("::", maxsplit=1)[0].endswith("bench_lab.py") for arg in config.args):
        kind = "bench"
    else:
        kind = "lab" if "lab" in (config.getoption("markexpr") or "") else "e2e"
    config.pluginmanager.register(LabReport(kind), "kubelab-lab-report")
    # A CI timeout or `kill` ends the run like Ctrl-C: the session's teardown still removes the lab.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> LabReport:
    return request.config.pluginmanager.get_plugin("kubelab-lab-report")


@pytest.fixture
def phase(request: pytest.FixtureRequest, report: LabReport) -> dict[str, Any]:
    """The current phase's record in the lab report; the test adds what it measured and a `detail` line."""
    doc = (request.function.__doc__ or "").strip().splitlines()
    name = doc[0].rstrip(".").split(":", 1)[0] if doc else request.node.name.removeprefix("test_")
    return report.phase(request.node.nodeid, name)


@dataclass
class Lab:
    """The lab's state as the phases change it."""

    count: int
    restart_node: str
    workers: list[str] = field(default_factory=lambda: ["node2"])
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def members(self) -> list[str]:
        """The nodes the cluster consists of right now."""
        return [CONTROL_PLANE, *self.workers]


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One lab run at a time may create or remove lab nodes (another's `up` would remove ours)."""
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "lab.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(f"another lab run holds {STATE / 'lab.lock'}; wait for it or stop it") from None
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, report: LabReport) -> Iterator[Lab]:
    """The node containers, up for the whole session and removed at its end (unless kept)."""
    if run(["docker", "info"], check=False, timeout=30).returncode != 0:
        raise LabError("the host's Docker Engine does not answer: run `bash tests/lab/host-docker.sh` first")
    config = request.config
    state = Lab(count=config.getoption("lab_nodes"), restart_node=config.getoption("lab_restart_node"))
    with _lock():
        log(cluster.sign_bundle())
        try:
            nodes.up(state.count)
            yield state
        finally:
            report.data["versions"] = {**cluster.versions(), **report.data.get("versions", {})}
            with contextlib.suppress(LabError, OSError):
                report.data["nodes"] = cluster.node_states()
            if keep() or config.getoption("lab_keep"):
                log("the lab stays up (--lab-keep / KUBELAB_KEEP): `make lab-down` removes it")
            else:
                entry, start = report.phase("teardown", "teardown"), time.monotonic()
                removed = nodes.down()
                entry.update(status="ok", detail="removed " + ", ".join(f"{n} {what}" for what, n in removed.items()))
                entry["seconds"] = round(time.monotonic() - start, 1)
            report.save()
