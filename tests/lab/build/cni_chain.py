# SPDX-License-Identifier: GPL-3.0-or-later
"""The pod network chain of the bundle, for real but isolated (run by checks.py as
`unshare --net --mount --propagation private python3 cni_chain.py DIR BUSYBOX`).

In the new network + mount namespace (nothing touches the host's network) a pod namespace
is created; the flannel CNI plugin (DIR/cni/flannel, from the flannel-cni-plugin image) runs
ADD with DIR/flannel-net.json, delegating to bridge + host-local of DIR/cni; the pod must get
an address of 10.244.7.0/24, a route to the pod network via the bridge and answer a ping from
the cni0 side; DEL must remove its interface. Exit 0 when all holds, 1 with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TIMEOUT = 60


def sh(argv: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None, fail: str = "") -> str:
    """Run argv, print it and its output; exit with `fail` (or the exit status) when it fails;
    fail="-" accepts any exit status."""
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    out = proc.stdout + proc.stderr
    print(f"$ {' '.join(argv)}\n{out}", end="" if out.endswith("\n") or not out else "\n", flush=True)
    if proc.returncode != 0 and fail != "-":
        sys.exit("CNI chain: " + (fail or f"`{' '.join(argv)}` failed with exit {proc.returncode}"))
    return out


def main(directory: str, busybox: str) -> int:
    t = Path(directory)
    conf = (t / "flannel-net.json").read_text(encoding="utf-8")

    def cni(command: str) -> str:
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID="kubelab-smoke", CNI_NETNS="/run/netns/pod",
                   CNI_IFNAME="eth0", CNI_PATH=str(t / "cni"))
        return sh([str(t / "cni" / "flannel")], stdin=conf, env=env)

    sh(["mount", "-t", "tmpfs", "tmpfs", "/run"])
    sh(["ip", "link", "set", "lo", "up"])
    sh(["ip", "netns", "add", "pod"])
    cni("ADD")
    addr = sh(["ip", "netns", "exec", "pod", "ip", "-4", "addr", "show", "eth0"])
    routes = sh(["ip", "netns", "exec", "pod", "ip", "-4", "route"])
    sh(["ip", "-4", "addr", "show", "cni0"])
    m = re.search(r"inet (10\.244\.7\.[0-9]+)/24", addr)
    if not m:
        sys.exit("CNI chain: the pod got no 10.244.7.x/24 address")
    if "10.244.0.0/16 via 10.244.7.1" not in routes:
        sys.exit("CNI chain: no route to the pod network via the bridge")
    sh([busybox, "ping", "-c1", "-W2", m.group(1)], fail="the host side cannot reach the pod")
    cni("DEL")
    if "does not exist" not in sh(["ip", "netns", "exec", "pod", "ip", "link", "show", "eth0"], fail="-"):
        sys.exit("CNI chain: DEL left eth0 in the pod")
    print(f"ok  CNI chain: pod {m.group(1)}/24, route to 10.244.0.0/16, ping, DEL")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
