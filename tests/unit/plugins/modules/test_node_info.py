"""node_info: the parsers on the kernel's own formats, and one real look at this machine."""

from __future__ import annotations

import os
import socket
import sys

from ansible_collections.kubelab.kubeadm.plugins.modules import node_info

MOUNTINFO_V2 = "29 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
MOUNTINFO_V1 = (
    "25 1 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw\n"
)


def test_cgroup_version_is_read_from_the_mount_at_sys_fs_cgroup():
    assert node_info.cgroup_version(MOUNTINFO_V2) == 2
    assert node_info.cgroup_version(MOUNTINFO_V1) == 1  # hybrid: unified below, not at /sys/fs/cgroup
    assert node_info.cgroup_version("") == 1


def test_listening_ports_from_proc_net_tcp():
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:2808 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0 100 0\n"
        "   1: 0100007F:2808 0100007F:D1F2 01 00000000:00000000 00:00000000 00000000     0        0 4712 1 0 20 4\n"
    )
    tcp6 = (
        "  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000000000000:280F 00000000000000000000000000000000:0000 0A 00000000:00000000"
        " 00:00000000 00000000     0        0 4714 1 0 100 0\n"
    )
    assert node_info.listening_ports([tcp, tcp6]) == [10248, 10255]


def test_swap_areas_and_packages(tmp_path):
    swapfile = tmp_path / "swapfile"
    swapfile.write_bytes(b"")
    swaps = f"Filename Type Size Used Priority\n{swapfile} file 1024 0 -2\n/dev/gone partition 1 0 -3\n"
    assert node_info.swap_areas(swaps) == [
        {"path": str(swapfile), "exists": True},
        {"path": "/dev/gone", "exists": False},
    ]
    dpkg = "conntrack ii \nsocat rc \niptables ii \n"
    assert node_info.installed_packages(dpkg) == ["conntrack", "iptables"]
    assert node_info.installed_packages("socat ii\nkmod ii\n") == ["kmod", "socat"]  # rpm's query prints ii too


def test_one_real_look(run_module, tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /old none swap sw 0 0\n")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        result, failed = run_module(
            node_info.main,
            {
                "hostname": "localhost",
                "disk_path": str(tmp_path),
                "paths": [str(fstab), str(tmp_path / "nothing")],
                "package_query": [sys.executable, "-c", "print('python3 ii ')"],
                "sysctls": ["kernel.ostype", "no.such.key"],
                "fstab": str(fstab),
                "versions": {sys.executable: ["--version"], str(tmp_path / "no-kubelet"): ["--version"]},
            },
            check_mode=True,
        )
    finally:
        port = sock.getsockname()[1]
        sock.close()
    assert not failed and result["changed"] is False
    assert result["fstab_swap_entries"] == 1
    assert port in result["listening_ports"]
    st = os.statvfs(tmp_path)
    assert abs(result["disk_free_mib"] - st.f_bavail * st.f_frsize // 2**20) < 64
    assert "127.0.0.1" in result["resolved_addresses"] or "::1" in result["resolved_addresses"]
    assert result["exists"] == {str(fstab): True, str(tmp_path / "nothing"): False}
    assert result["installed_packages"] == ["python3"]
    assert result["sysctls"] == {"kernel.ostype": "Linux", "no.such.key": None}
    assert "proc" in result["filesystems"]
    assert result["versions"] == {sys.executable: f"Python {sys.version.split()[0]}"}
