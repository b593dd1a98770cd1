"""What every part of the lab shares: where things are, bounded commands, bounded waits.

The lab's layout (addresses, names, timeouts) is written here once; nodes.py, remote.py, play.py
and the tests read it from here.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "tests" / "lab"
INVENTORY = REPO / "inventories" / "local"
CLUSTER_SPEC = REPO / "playbooks" / "vars" / "cluster_spec.yml"
LATE_WORKER_FILE = INVENTORY / "late-worker.yml"
VENV_BIN = REPO / ".venv" / "bin"
STATE = Path(os.environ.get("KUBELAB_STATE", "/var/tmp/kubelab"))
LOGS = STATE / "logs"
BUILD = REPO / "build"
HOST_KUBECONFIG = BUILD / "kubeconfig"

# The lab network: internal (no route out), its own bridge, fixed addresses.
NETWORK = "kubelab-net"
BRIDGE = "kubelab0"
SUBNET = "10.250.0.0/24"
GATEWAY = "10.250.0.1"
NODES = {"node1": "10.250.0.10", "node2": "10.250.0.11", "node3": "10.250.0.12"}
CONTROL_PLANE = "node1"
LATE_WORKER = "node3"  # not in inventories/local: the machine that arrives weeks later
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"

# SSH: the lab's own key and the known_hosts file holding each fresh node's host key.
SSH_DIR = Path("/var/tmp/kubelab/ssh")
SSH_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"

# Bounds, in seconds.
T_BOOT = 180
T_READY = 600
T_SITE = 3600
T_PLAY = 1800
T_VERIFY = 900
T_BUILD = 5400
T_IMAGE = 1200

T = TypeVar("T")


class LabError(Exception):
    """A step failed; the message says which and what to look at."""


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def tool_env() -> dict[str, str]:
    """Environment for ansible, pytest and the build: the venv first, the repository's ansible.cfg."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PY_COLORS"] = "0"
    env.setdefault("ANSIBLE_LOCAL_TEMP", str(STATE / "ansible-tmp"))
    return env


def run(
    argv: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    logfile: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, kill its whole process group after `timeout`.

    With `logfile`, stdout and stderr go to that file instead (long runs: the build, tests/verify).
    """
    out_fh = None
    if logfile:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        out_fh = logfile.open("w")
        out_fh.write(f"$ {shlex.join(argv)}\n")
        out_fh.flush()
        log(f"$ {shlex.join(argv)}  (log: {logfile})")
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=out_fh or subprocess.PIPE,
        stderr=subprocess.STDOUT if out_fh else subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise LabError(f"timed out after {timeout:.0f} s: {shlex.join(argv)}\n{_tail(out, err, logfile)}") from None
    finally:
        if out_fh:
            out_fh.close()
    result = subprocess.CompletedProcess(list(argv), proc.returncode, out or "", err or "")
    if check and proc.returncode != 0:
        raise LabError(f"exit {proc.returncode}: {shlex.join(argv)}\n{_tail(out, err, logfile)}")
    return result


def _tail(out: str | None, err: str | None, logfile: Path | None) -> str:
    if logfile:
        return f"(log: {logfile})\n" + logfile.read_text(errors="replace")[-3000:]
    return f"{(out or '')[-3000:]}{(err or '')[-3000:]}"


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    return run(["docker", *args], timeout=timeout, check=check).stdout.strip()


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 2.0) -> T:
    """Call probe() until it returns a true value; LabError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = probe()
        except LabError as exc:  # a probe that failed this time may succeed next time
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(
                f"{what}: not reached within {timeout:.0f} s (last: {str(last)[-1500:] if last else 'no answer'})"
            )
        time.sleep(interval)


def keep() -> bool:
    """KUBELAB_KEEP=1: leave the lab running after the run (also after a failure)."""
    return os.environ.get("KUBELAB_KEEP", "") not in ("", "0", "false", "no")
