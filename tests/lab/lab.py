#!/usr/bin/env python3
"""The container lab by hand: the pieces the test suite (tests/lab/test_e2e.py) is made of.

    lab.py image [--force]    build the node image (cached by the hash of its recipe)
    lab.py up [N]             remove what an earlier lab left, then start N node containers (default 3)
    lab.py down               remove every container, network and volume carrying the lab label
    lab.py status             the lab's containers, their addresses and how to reach them
    lab.py check              systemd running, SSH with known host keys, no route out, on every node
    lab.py late-worker add|remove   put node3 into (or take it out of) the workers group
    lab.py diagnose           journal, docker ps and kubectl output of every node

The runs themselves are pytest sessions: `make lab` (cluster up, checked, kept) and `make e2e` (every
phase, then teardown); see docs/lab.md. Environment: KUBELAB_STATE (default /var/tmp/kubelab) holds
logs, reports and the build caches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import nodes
from common import HOST_KUBECONFIG, KNOWN_HOSTS, LOGS, NODES, SSH_KEY, STATE, LabError, docker, log


def status() -> None:
    fmt = 'table {{.Names}}\t{{.Status}}\t{{.Label "kubelab.node"}}\t{{.Image}}'
    print(docker("ps", "-a", "--filter", f"label={nodes.LABEL}", "--format", fmt))
    for node in nodes.running_nodes():
        print(f"{node}: {NODES[node]}  ssh -i {SSH_KEY} -o UserKnownHostsFile={KNOWN_HOSTS} root@{NODES[node]}")
    if HOST_KUBECONFIG.exists():
        print(f"kubeconfig: export KUBECONFIG={HOST_KUBECONFIG}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lab.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("image", help="build the node image").add_argument("--force", action="store_true")
    sub.add_parser("up", help="start N node containers").add_argument("count", nargs="?", type=int, default=3)
    sub.add_parser("down", help="remove everything carrying the lab label")
    sub.add_parser("status", help="list the lab's nodes")
    sub.add_parser("check", help="systemd, SSH, no route out on every running node")
    sub.add_parser("late-worker", help="node3 in or out of the workers group").add_argument(
        "action", choices=("add", "remove")
    )
    sub.add_parser("diagnose", help="journal, docker ps, kubectl output of every node")
    args = parser.parse_args(argv)
    STATE.mkdir(parents=True, exist_ok=True)
    try:
        if args.cmd == "image":
            log(f"image: {nodes.ensure_image(force=args.force)}")
        elif args.cmd == "up":
            nodes.up(args.count)
        elif args.cmd == "down":
            nodes.down()
        elif args.cmd == "status":
            status()
        elif args.cmd == "check":
            nodes.check()
        elif args.cmd == "late-worker":
            nodes.late_worker(args.action == "add")
        else:
            print(nodes.diagnose(LOGS / "diagnostics.txt"))
    except LabError as exc:
        log(f"ERROR: {exc.args[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
