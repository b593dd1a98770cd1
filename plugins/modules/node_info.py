#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_info
short_description: Read in one look what preparing a Kubernetes node needs to know of it
version_added: 0.2.0
description:
  - Reads, without changing anything, what the M(kubelab.kubeadm.node_prep) role decides by - swap, listening ports,
    free disk space, how the host name resolves, kernel features and module files, installed packages, the cgroup
    version, the current values of sysctls - so that a node is asked once instead of once per fact.
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only, so it runs normally.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  hostname:
    description:
      - The host name to resolve (as C(getent ahosts) does, through the node's name service switch).
    type: str
  disk_path:
    description:
      - The directory whose file system's free space is measured.
    type: path
    default: /var/lib
  paths:
    description:
      - Paths whose existence is reported (C(exists)).
    type: list
    elements: path
    default: []
  kernel_modules:
    description:
      - Kernel modules whose module file C(modinfo -n) is reported (C(builtin) for a module built into the kernel).
    type: list
    elements: str
    default: []
  package_query:
    description:
      - The argv that lists the installed packages (one C(<name> <status>) per line), for example
        C(dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n').
    type: list
    elements: str
    default: []
  sysctls:
    description:
      - sysctl keys whose current values are reported (absent keys are reported as null).
    type: list
    elements: str
    default: []
  fstab:
    description:
      - The fstab whose active swap entries are counted.
    type: path
    default: /etc/fstab
  versions:
    description:
      - Programs whose version is asked - a dict of paths, each with the arguments that make it print its version
        (for example C(/usr/bin/kubelet) with C([--version])). A path that does not exist is left out of the result.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Read the node
  kubelab.kubeadm.node_info:
    hostname: "{{ ansible_facts['nodename'] }}"
    paths: [/etc/kubernetes/kubelet.conf, /sys/module/overlay]
    kernel_modules: [overlay, br_netfilter]
    sysctls: [net.ipv4.ip_forward]
  register: node
"""

RETURN = r"""
swap_areas:
  description: The active swap areas (C(/proc/swaps)), each with whether its path exists on this node.
  returned: success
  type: list
  elements: dict
  sample: [{path: /swapfile, exists: true}]
fstab_swap_entries:
  description: The number of swap entries of O(fstab) that are not commented out (0 when there is no fstab).
  returned: success
  type: int
swap_target_masked:
  description: Whether systemd's C(swap.target) is masked (false without systemd).
  returned: success
  type: bool
listening_ports:
  description: The TCP ports something listens on (IPv4 and IPv6), sorted.
  returned: success
  type: list
  elements: int
disk_free_mib:
  description: Free MiB (for unprivileged users, as C(df) shows) of the file system of O(disk_path).
  returned: success
  type: int
resolved_addresses:
  description: The addresses O(hostname) resolves to (empty when it does not resolve).
  returned: success
  type: list
  elements: str
filesystems:
  description: The file system types the kernel supports (C(/proc/filesystems)).
  returned: success
  type: list
  elements: str
exists:
  description: For each of O(paths), whether it exists.
  returned: success
  type: dict
module_files:
  description: For each of O(kernel_modules), its module file, C(builtin), or an empty string when there is none.
  returned: success
  type: dict
installed_packages:
  description: The packages O(package_query) lists as installed (status C(ii), or any status of C(rpm)).
  returned: success
  type: list
  elements: str
cgroup_version:
  description: 2 when C(/sys/fs/cgroup) is the unified hierarchy (cgroup2), else 1.
  returned: success
  type: int
sysctls:
  description: For each of O(sysctls), its current value (whitespace collapsed), or null when the key does not exist.
  returned: success
  type: dict
versions:
  description: For each program of O(versions) that exists, what it printed (stdout, stripped; empty when it failed).
  returned: success
  type: dict
  sample: {/usr/local/bin/kubelet: Kubernetes v1.36.3}
"""

import os
import re
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._proc_net import parse_proc_net_tcp

# as node_prep's fstab edit matches them: device, mount point, type swap, not commented out
_FSTAB_SWAP_RE = re.compile(r"^[^#\s]\S*\s+\S+\s+swap\s", re.MULTILINE)


def _read(path: str, default: str = "") -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return default


def swap_areas(text: str) -> list:
    return [
        {"path": line.split()[0], "exists": os.path.exists(line.split()[0])}
        for line in text.splitlines()[1:]
        if line.split()
    ]


def listening_ports(texts) -> list:
    return sorted({port for text in texts for _address, port, _inode in parse_proc_net_tcp(text)})


def cgroup_version(mountinfo: str) -> int:
    """From /proc/self/mountinfo: the type of the file system mounted at /sys/fs/cgroup (as `stat -fc %T`)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/sys/fs/cgroup" and " - " in line:
            return 2 if line.split(" - ", 1)[1].split()[0] == "cgroup2" else 1
    return 1


def resolve(name: str) -> list:
    try:
        infos = socket.getaddrinfo(name, None)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


def sysctl_value(key: str, root: str = "/proc/sys"):
    text = _read(os.path.join(root, *key.split(".")), default=None) if key else None
    return " ".join(text.split()) if text is not None else None


def installed_packages(output: str) -> list:
    names = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 1 or (len(fields) > 1 and fields[1] == "ii"):
            names.append(fields[0])
    return sorted(set(names))


def gather(module: AnsibleModule) -> dict:
    params = module.params
    info = {"changed": False}
    info["swap_areas"] = swap_areas(_read("/proc/swaps"))
    info["fstab_swap_entries"] = len(_FSTAB_SWAP_RE.findall(_read(params["fstab"])))
    systemctl = module.get_bin_path("systemctl")
    masked = False
    if systemctl:
        rc, out, _err = module.run_command([systemctl, "is-enabled", "swap.target"], environ_update={"LC_ALL": "C"})
        masked = out.strip().startswith("masked")
    info["swap_target_masked"] = masked
    info["listening_ports"] = listening_ports([_read("/proc/net/tcp"), _read("/proc/net/tcp6")])
    try:
        st = os.statvfs(params["disk_path"])
        info["disk_free_mib"] = st.f_bavail * st.f_frsize // (1024 * 1024)
    except OSError as exc:
        module.fail_json(msg=f"cannot measure the free space of {params['disk_path']}: {exc}")
    info["resolved_addresses"] = resolve(params["hostname"]) if params["hostname"] else []
    info["filesystems"] = sorted({line.split()[-1] for line in _read("/proc/filesystems").splitlines() if line.split()})
    info["exists"] = {path: os.path.exists(path) for path in params["paths"]}
    modinfo = module.get_bin_path("modinfo", opt_dirs=["/usr/sbin", "/sbin"])
    files = {}
    for name in params["kernel_modules"]:
        out = ""
        if modinfo:
            rc, out, _err = module.run_command([modinfo, "-n", name], environ_update={"LC_ALL": "C"})
            out = out.strip() if rc == 0 else ""
        files[name] = "builtin" if out == "(builtin)" else out
    info["module_files"] = files
    packages = []
    if params["package_query"]:
        rc, out, err = module.run_command(params["package_query"], environ_update={"LC_ALL": "C"})
        if rc != 0 and not out:
            module.fail_json(
                msg=f"cannot list the installed packages ({' '.join(params['package_query'])}): {err.strip()}"
            )
        packages = installed_packages(out)
    info["installed_packages"] = packages
    info["cgroup_version"] = cgroup_version(_read("/proc/self/mountinfo"))
    info["sysctls"] = {key: sysctl_value(key) for key in params["sysctls"]}
    versions = {}
    for path, args in sorted(params["versions"].items()):
        if os.path.exists(path):
            rc, out, _err = module.run_command([path, *[str(a) for a in args or []]], environ_update={"LC_ALL": "C"})
            versions[path] = out.strip() if rc == 0 else ""
    info["versions"] = versions
    return info


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "hostname": {"type": "str"},
            "disk_path": {"type": "path", "default": "/var/lib"},
            "paths": {"type": "list", "elements": "path", "default": []},
            "kernel_modules": {"type": "list", "elements": "str", "default": []},
            "package_query": {"type": "list", "elements": "str", "default": []},
            "sysctls": {"type": "list", "elements": "str", "default": []},
            "fstab": {"type": "path", "default": "/etc/fstab"},
            "versions": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    module.exit_json(**gather(module))


if __name__ == "__main__":
    main()
