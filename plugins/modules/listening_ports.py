#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: listening_ports
short_description: List the listening TCP sockets of a Linux host and the processes that hold them
version_added: 0.1.0
description:
  - Reads C(/proc/net/tcp) and C(/proc/net/tcp6) (the host's network namespace as the module sees it) and returns
    every socket in state LISTEN, with its address, port and - when readable - the process holding it, found
    through the C(socket:[inode]) links under C(/proc/<pid>/fd). Reading another user's processes needs root
    (C(become=true)); otherwise RV(listening[].process) is empty for them.
  - Changes nothing; the pre-flight uses it to refuse a kubelet port another program already uses.
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; the same result as a normal run.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  ports:
    description:
      - Only these ports; empty = every listening port.
    type: list
    elements: int
    default: []
"""

EXAMPLES = r"""
- name: Who listens on 10248 and 10255
  kubelab.kubeadm.listening_ports:
    ports: [10248, 10255]
  become: true
  register: ports_result
"""

RETURN = r"""
listening:
  description: The listening TCP sockets, sorted by port.
  returned: success
  type: list
  elements: dict
  contains:
    port:
      description: The port.
      type: int
    address:
      description: The local address (C(0.0.0.0) or C(::) = every address).
      type: str
    pid:
      description: The process ID holding the socket; 0 when it cannot be read.
      type: int
    process:
      description: The process's name (C(/proc/<pid>/comm)); empty when it cannot be read.
      type: str
  sample:
    - {port: 10248, address: 127.0.0.1, pid: 812, process: kubelet}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._proc_net import parse_proc_net_tcp


def socket_owners(inodes, proc="/proc"):
    """{inode: (pid, name)} for the socket inodes that a readable process holds."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners = {}
    if not wanted:
        return owners
    for pid in (entry for entry in os.listdir(proc) if entry.isdigit()):
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in wanted and wanted[target] not in owners:
                try:
                    with open(os.path.join(proc, pid, "comm")) as comm:
                        name = comm.read().strip()
                except OSError:
                    name = ""
                owners[wanted[target]] = (int(pid), name)
    return owners


def listening(ports=None, proc="/proc"):
    sockets = []
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, "net", name)) as handle:
                sockets += parse_proc_net_tcp(handle.read())
        except OSError:
            continue  # no IPv6 in this kernel
    if ports:
        sockets = [s for s in sockets if s[1] in set(ports)]
    owners = socket_owners([s[2] for s in sockets if s[2]], proc)
    result = []
    for address, port, inode in sorted(sockets, key=lambda s: (s[1], s[0])):
        pid, name = owners.get(inode, (0, ""))
        result.append({"port": port, "address": address, "pid": pid, "process": name})
    return result


def main():
    module = AnsibleModule(
        argument_spec={"ports": {"type": "list", "elements": "int", "default": []}},
        supports_check_mode=True,
    )
    if not os.path.exists("/proc/net/tcp"):
        module.fail_json(msg="/proc/net/tcp is missing: listening_ports needs a Linux host with /proc mounted.")
    module.exit_json(changed=False, listening=listening(module.params["ports"]))


if __name__ == "__main__":
    main()
