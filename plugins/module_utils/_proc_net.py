# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel's table of TCP sockets (/proc/net/tcp, tcp6): shared by listening_ports and node_info.

PRIVATE to the kubelab.kubeadm collection: not a public API. Node-side code: Python 3.8 and the
standard library only.
"""

from __future__ import annotations

import ipaddress
import struct

TCP_LISTEN = "0A"


def decode_address(text):
    """The local address of a /proc/net/tcp{,6} line ("0100007F" -> 127.0.0.1): 32-bit words in host order."""
    raw = bytes.fromhex(text)
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    packed = b"".join(struct.pack("!I", word) for word in words)
    return str(ipaddress.ip_address(packed))


def parse_proc_net_tcp(content):
    """[(address, port, inode)] of the LISTEN sockets in the text of /proc/net/tcp or tcp6."""
    found = []
    for line in content.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        address, port = fields[1].rsplit(":", 1)
        found.append((decode_address(address), int(port, 16), int(fields[9])))
    return found
