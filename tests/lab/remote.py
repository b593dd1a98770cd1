"""SSH from the harness to the lab nodes, through paramiko, with the lab's known hosts.

Host keys are checked: each node's key is read from its console (`docker exec`, as an operator reads
it from a VM's screen) into KNOWN_HOSTS when the node is created (nodes.record_host_keys), and a node
whose key is not there, or differs, is refused (paramiko's RejectPolicy).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import socket
import subprocess
import time
from pathlib import Path

import paramiko
from common import ADMIN_KUBECONFIG, CONTROL_PLANE, KNOWN_HOSTS, NODES, SSH_KEY, LabError

_clients: dict[str, paramiko.SSHClient] = {}


def _client(node: str, connect_timeout: float) -> paramiko.SSHClient:
    client = _clients.get(node)
    transport = client.get_transport() if client else None
    if client and transport and transport.is_active():
        return client
    client = paramiko.SSHClient()
    client.load_host_keys(str(KNOWN_HOSTS))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            NODES[node],
            username="root",
            key_filename=str(SSH_KEY),
            look_for_keys=False,
            allow_agent=False,
            timeout=connect_timeout,
            banner_timeout=connect_timeout,
            auth_timeout=connect_timeout,
        )
    except (OSError, paramiko.SSHException) as exc:
        client.close()
        raise LabError(f"ssh root@{NODES[node]} ({node}): {type(exc).__name__}: {exc}") from None
    _clients[node] = client
    return client


def forget(node: str | None = None) -> None:
    """Close the connection to `node` (all nodes: None), e.g. after it was restarted or removed."""
    for name in [node] if node else list(_clients):
        with contextlib.suppress(Exception):
            _clients.pop(name).close()


def ssh(
    node: str, command: str, *, timeout: float = 60, check: bool = True, connect_timeout: float = 10
) -> subprocess.CompletedProcess[str]:
    """Run `command` on `node` as root; bounded by `timeout`; LabError on failure if `check`."""
    chan = _client(node, connect_timeout).get_transport().open_session()  # type: ignore[union-attr]
    chan.settimeout(5)
    chan.exec_command(command)
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while not (chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready()):
        if time.monotonic() > deadline:
            chan.close()
            tail = out[-2000:].decode(errors="replace")
            raise LabError(f"{node}: timed out after {timeout:.0f} s: {command}\n{tail}")
        got = False
        if chan.recv_ready():
            out += chan.recv(65536)
            got = True
        if chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            got = True
        if not got:
            time.sleep(0.05)
    rc = chan.recv_exit_status()
    chan.close()
    res = subprocess.CompletedProcess([node, command], rc, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and rc != 0:
        raise LabError(f"{node}: exit {rc}: {command}\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
    return res


def fetch(node: str, remote: str, local: Path, mode: int = 0o600) -> None:
    """Copy a file from the node (SFTP), created with `mode` before a byte is written."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        local.unlink()
    local.touch(mode=mode)
    local.chmod(mode)
    with _client(node, 10).open_sftp() as sftp, local.open("wb") as fh:
        sftp.getfo(remote, fh)


def put(node: str, data: bytes, remote: str, mode: int = 0o600) -> None:
    """Write `data` to a file on the node (SFTP, never on a command line), with `mode`."""
    with _client(node, 10).open_sftp() as sftp:
        with sftp.open(remote, "wb") as fh:
            fh.write(data)
        sftp.chmod(remote, mode)


def sshd_answers(node: str, timeout: float = 2.0) -> bool:
    """True once the node's sshd greets on port 22."""
    try:
        with socket.create_connection((NODES[node], 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def kubectl(args: str, *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """kubectl on the control plane with the admin kubeconfig."""
    return ssh(CONTROL_PLANE, f"kubectl --kubeconfig {ADMIN_KUBECONFIG} {args}", timeout=timeout, check=check)


def kubectl_json(args: str) -> dict:
    return json.loads(kubectl(f"{args} -o json").stdout)


def quote(value: str) -> str:
    return shlex.quote(value)
