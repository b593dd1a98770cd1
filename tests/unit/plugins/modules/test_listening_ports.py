"""listening_ports on this machine's real /proc: sockets the test opens are found with their process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.modules import listening_ports

# /proc/net/tcp as the kernel writes it: 127.0.0.1:10248 LISTEN (inode 4711), one ESTABLISHED line, and
# 0.0.0.0:10255 LISTEN.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2808 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0 100 0 0 10 0
   1: 0100007F:2808 0100007F:D1F2 01 00000000:00000000 00:00000000 00000000     0        0 4712 1 0 20 4 30 10 -1
   2: 00000000:280F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4713 1 0 100 0 0 10 0
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:280F 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4714 1 0 100 0 0 10 0
"""  # noqa: E501


def test_parse_proc_net_tcp() -> None:
    assert listening_ports.parse_proc_net_tcp(PROC_NET_TCP) == [("127.0.0.1", 10248, 4711), ("0.0.0.0", 10255, 4713)]
    assert listening_ports.parse_proc_net_tcp(PROC_NET_TCP6) == [("::1", 10255, 4714)]


def listener(family: int = socket.AF_INET, address: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.listen()
    return sock


def test_finds_our_sockets_and_this_process(run_module) -> None:
    v4 = listener()
    v6 = listener(socket.AF_INET6, "::1") if socket.has_ipv6 and Path("/proc/net/tcp6").exists() else None
    try:
        ports = [v4.getsockname()[1]] + ([v6.getsockname()[1]] if v6 else [])
        result, failed = run_module(listening_ports.main, {"ports": ports}, check_mode=True)
    finally:
        v4.close()
        if v6:
            v6.close()
    assert not failed and result["changed"] is False
    me = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    wanted = [{"port": ports[0], "address": "127.0.0.1", "pid": os.getpid(), "process": me}]
    if v6:
        wanted.append({"port": ports[1], "address": "::1", "pid": os.getpid(), "process": me})
    assert result["listening"] == sorted(wanted, key=lambda s: s["port"])


def test_names_another_process_by_its_name(tmp_path: Path) -> None:
    """The name is the process's own (a program started as `kubelet` is reported as kubelet)."""
    kubelet = tmp_path / "kubelet"
    kubelet.symlink_to(sys.executable)
    code = (
        "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n"
        "print(s.getsockname()[1], flush=True)\ntime.sleep(30)"
    )
    proc = subprocess.Popen([str(kubelet), "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        found = listening_ports.listening([port])
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert found == [{"port": port, "address": "127.0.0.1", "pid": proc.pid, "process": "kubelet"}]


def test_a_free_port_is_not_listed() -> None:
    sock = listener()
    port = sock.getsockname()[1]
    sock.close()
    time.sleep(0.05)
    assert listening_ports.listening([port]) == []


def test_unreadable_processes_leave_the_owner_empty(tmp_path: Path) -> None:
    """A /proc whose process directories cannot be read (another user's, without root): port known, owner not."""
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(PROC_NET_TCP)  # no tcp6: a kernel without IPv6
    (tmp_path / "123").mkdir()  # no fd directory
    (tmp_path / "124" / "fd").mkdir(parents=True)
    os.symlink("socket:[4713]", tmp_path / "124" / "fd" / "3")  # no comm file
    os.symlink("/nowhere", tmp_path / "124" / "fd" / "4")
    assert listening_ports.listening(proc=str(tmp_path)) == [
        {"port": 10248, "address": "127.0.0.1", "pid": 0, "process": ""},
        {"port": 10255, "address": "0.0.0.0", "pid": 124, "process": ""},
    ]
    assert listening_ports.socket_owners([], str(tmp_path)) == {}


def test_fails_without_proc_net(run_module, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.path.exists
    monkeypatch.setattr(listening_ports.os.path, "exists", lambda p: False if p == "/proc/net/tcp" else real(p))
    result, failed = run_module(listening_ports.main, {})
    assert failed and "/proc/net/tcp is missing" in result["msg"]
