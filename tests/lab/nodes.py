"""The lab's machines: the node image, node containers on an internal network, their host keys.

Nodes are bare Debian machines (systemd, sshd, Python) in containers on the internal Docker network
kubelab-net (no route out); a host firewall rule keeps them from opening connections to the host.
The harness starts and removes them with `docker`; everything else reaches them by SSH
(remote.py), except reading a fresh node's host key and diagnostics when SSH itself is broken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

import remote
from common import (
    ADMIN_KUBECONFIG,
    BRIDGE,
    CONTROL_PLANE,
    GATEWAY,
    HOST_KUBECONFIG,
    KNOWN_HOSTS,
    LAB_DIR,
    LATE_WORKER,
    LATE_WORKER_FILE,
    LOGS,
    NETWORK,
    NODES,
    REPO,
    SSH_DIR,
    SSH_KEY,
    STATE,
    SUBNET,
    T_BOOT,
    T_IMAGE,
    LabError,
    docker,
    log,
    run,
    wait_until,
)

NODE_DIR = LAB_DIR / "node"
LABEL_KEY = "kubelab.lab"
LABEL = f"{LABEL_KEY}=1"
IMAGE_REPO = "kubelab/node"
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# The host's INPUT rule: no NEW connection from the lab bridge to any address of the host itself.
FIREWALL_RULE = (
    *("-i", BRIDGE, "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubelab-lab"),
    *("-j", "REJECT", "--reject-with", "icmp-host-prohibited"),
)


def container(node: str) -> str:
    return f"kubelab-{node}"


def recipe_hash() -> str:
    h = hashlib.sha256()
    for name in ("packages.txt", "customize.sh", "entrypoint.sh", "runc-shim"):
        h.update(name.encode() + b"\0" + (NODE_DIR / name).read_bytes() + b"\0")
    h.update(("\n".join((SUITE, *MIRRORS, image_builder()))).encode())
    return h.hexdigest()


def image_builder() -> str:
    return "mmdebstrap" if shutil.which("mmdebstrap") else "debootstrap"


def image_tag() -> str:
    return f"{IMAGE_REPO}:{SUITE}-{recipe_hash()[:12]}"


def packages(path: Path = NODE_DIR / "packages.txt") -> list[str]:
    """A package list file (the node image's by default; tests/vm/box.py reads its own with it too)."""
    lines = path.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def ensure_image(force: bool = False) -> dict[str, object]:
    """Build the node image unless an image of the same recipe exists. Returns what happened."""
    tag, digest = image_tag(), recipe_hash()
    if not force and run(["docker", "image", "inspect", tag], check=False).returncode == 0:
        log(f"node image {tag}: cached")
        return {"tag": tag, "cached": True, "builder": image_builder()}
    if not shutil.which("mmdebstrap") and not shutil.which("debootstrap"):
        raise LabError("neither mmdebstrap nor debootstrap is installed: apt-get install mmdebstrap")
    log(f"node image {tag}: building with {image_builder()} (Debian {SUITE})")
    changes = [
        "ENV container=docker",
        'ENTRYPOINT ["/usr/local/sbin/kubelab-entrypoint"]',
        f"LABEL {LABEL_KEY}=1",
        f"LABEL kubelab.recipe={digest}",
    ]
    change_args = [a for c in changes for a in ("--change", c)]
    hook = NODE_DIR / "customize.sh"
    LOGS.mkdir(parents=True, exist_ok=True)
    build_log = LOGS / "image-build.log"
    with tempfile.TemporaryDirectory(prefix="kubelab-image-", dir=STATE) as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        if image_builder() == "mmdebstrap":
            argv = [
                "mmdebstrap",
                "--variant=minbase",
                f"--include={','.join(packages())}",
                f"--customize-hook={hook}",
                "--format=tar",
                SUITE,
                str(tarball),
                *MIRRORS,
            ]
            run(argv, timeout=T_IMAGE, logfile=build_log)
        else:
            rootfs = Path(tmp) / "rootfs"
            mirror = MIRRORS[0].split()[1]
            argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages())}", SUITE, str(rootfs), mirror]
            run(argv, timeout=T_IMAGE, logfile=build_log)
            run([str(hook), str(rootfs)], timeout=300)
            run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=600)
        docker(
            "import", *change_args, "--message", f"kubelab node image, recipe {digest}", str(tarball), tag, timeout=600
        )
    # Older recipes of the node image are dead weight: remove those no container uses.
    for line in docker(
        "image", "ls", "--filter", f"label={LABEL}", "--format", "{{.Repository}}:{{.Tag}}"
    ).splitlines():
        if line.startswith(f"{IMAGE_REPO}:") and line != tag:
            docker("image", "rm", line, check=False)
    return {"tag": tag, "cached": False, "builder": image_builder()}


# --------------------------------------------------------------------------- up / down


def down(quiet: bool = False) -> dict[str, int]:
    """Remove every lab container, network and volume (by label), the late-worker inventory file."""
    removed = {"containers": 0, "networks": 0, "volumes": 0}
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}").split()
    if ids:
        docker("rm", "-f", "-v", *ids, timeout=300)
        removed["containers"] = len(ids)
    nets = docker("network", "ls", "-q", "--filter", f"label={LABEL}").split()
    if nets:
        docker("network", "rm", *nets)
        removed["networks"] = len(nets)
    vols = docker("volume", "ls", "-q", "--filter", f"label={LABEL}").split()
    if vols:
        docker("volume", "rm", "-f", *vols, timeout=300)
        removed["volumes"] = len(vols)
    host_firewall(add=False)
    remote.forget()
    HOST_KUBECONFIG.unlink(missing_ok=True)  # the cluster it reached is gone
    with contextlib.suppress(FileNotFoundError):
        LATE_WORKER_FILE.unlink()
    with contextlib.suppress(FileNotFoundError):
        KNOWN_HOSTS.unlink()
    if not quiet:
        log("down: removed " + ", ".join(f"{n} {what}" for what, n in removed.items()))
    return removed


def ensure_ssh_key() -> None:
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    SSH_DIR.chmod(0o700)
    if not SSH_KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubelab-lab", "-f", str(SSH_KEY)])


def node_run_args(node: str) -> list[str]:
    others = [a for other, ip in NODES.items() if other != node for a in ("--add-host", f"{other}:{ip}")]
    args = [
        *("--name", container(node), "--hostname", node, "--label", LABEL, "--label", f"kubelab.node={node}"),
        *("--network", NETWORK, "--ip", NODES[node], "--network-alias", node, *others),
        # systemd as PID 1 with its own cgroup tree; --privileged fails on this host (lab-node-recipe.md)
        *("--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"),
        *("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"),
        *("--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm"),
        *("--cgroupns", "private", "--device", "/dev/kmsg"),
        *("--tmpfs", "/run:rw,nosuid,nodev,exec,mode=0755", "--tmpfs", "/run/lock:rw,nosuid,nodev,noexec"),
        # /var on a volume: Docker inside the node needs a non-overlay filesystem for overlay2
        *("--volume", f"{container(node)}-var:/var"),
        *("--stop-signal", "SIGRTMIN+3", "--stop-timeout", "60"),
    ]
    if Path("/lib/modules").is_dir():
        args += ["--volume", "/lib/modules:/lib/modules:ro"]
    return args


def up(count: int, image: str | None = None) -> dict[str, object]:
    if not 1 <= count <= len(NODES):
        raise LabError(f"up: N must be 1..{len(NODES)}, got {count}")
    down(quiet=True)
    image = image or ensure_image()["tag"]  # type: ignore[assignment]
    ensure_ssh_key()
    docker(
        "network",
        "create",
        "--internal",
        "--subnet",
        SUBNET,
        "--gateway",
        GATEWAY,
        "--label",
        LABEL,
        "-o",
        f"com.docker.network.bridge.name={BRIDGE}",
        NETWORK,
    )
    host_firewall(add=True)
    names = list(NODES)[:count]
    pub = SSH_KEY.with_suffix(".pub").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        keyfile = Path(tmp) / "authorized_keys"
        keyfile.write_text(pub)
        keyfile.chmod(0o600)
        for node in names:
            docker("volume", "create", "--label", LABEL, f"{container(node)}-var")
            docker("create", *node_run_args(node), str(image))
            docker("cp", str(keyfile), f"{container(node)}:/root/.ssh/authorized_keys")
            docker("start", container(node))
    record_host_keys(names)
    for node in names:
        wait_booted(node)
    log(f"up: {', '.join(f'{n} {NODES[n]}' for n in names)} running (image {image})")
    return {"nodes": names, "image": image}


def record_host_keys(names: Sequence[str]) -> None:
    """Read each fresh node's host key (the console, as it were) into the lab's known_hosts."""
    lines = []
    if KNOWN_HOSTS.exists():
        lines = [
            ln for ln in KNOWN_HOSTS.read_text().splitlines() if ln.split(" ", 1)[0] not in {NODES[n] for n in names}
        ]
    for node in names:
        key = wait_until(
            f"{node}: SSH host key",
            lambda node=node: docker("exec", container(node), "cat", "/etc/ssh/ssh_host_ed25519_key.pub", check=False),
            timeout=60,
            interval=1,
        )
        lines.append(f"{NODES[node]} {' '.join(key.split()[:2])}")
    KNOWN_HOSTS.write_text("\n".join(lines) + "\n")


def wait_booted(node: str, timeout: float = T_BOOT) -> None:
    """sshd answers, the key logs in, systemd reports `running` (degraded = a unit failed: error)."""
    wait_until(f"{node}: sshd on {NODES[node]}:22", lambda: remote.sshd_answers(node), timeout, interval=1)

    def probe() -> str | None:
        state = remote.ssh(node, "systemctl is-system-running", check=False, timeout=30).stdout.strip()
        return state if state and state not in ("initializing", "starting") else None

    state = wait_until(f"{node}: systemd boot finished", probe, timeout, interval=1)
    if state != "running":
        failed = remote.ssh(node, "systemctl --failed --no-legend --plain", check=False).stdout
        raise LabError(f"{node}: systemd is {state!r}, failed units:\n{failed}")


def host_firewall(add: bool) -> None:
    """Nodes may not open connections to the host itself (its services, a proxy, anything it can reach).

    Docker's --internal network already drops everything the host would forward out of the lab; this
    rule closes the remaining door, the host's own addresses. The controller's SSH sessions to the nodes
    are unaffected (their packets back are not NEW).
    """
    if shutil.which("iptables") is None:
        if add:
            raise LabError("iptables is not installed on the host: apt-get install iptables")
        return
    if add:
        present = run(["iptables", "-C", "INPUT", *FIREWALL_RULE], check=False).returncode == 0
        if not present:
            run(["iptables", "-I", "INPUT", "1", *FIREWALL_RULE])
        return
    for _attempt in range(10):
        if run(["iptables", "-D", "INPUT", *FIREWALL_RULE], check=False).returncode != 0:
            break


def isolation_probe(node: str, listeners: Sequence[tuple[str, int]]) -> dict[str, str]:
    """From the node, connect to listeners this harness opened on the host's own addresses: all must fail."""
    code = (
        "import socket, sys\n"
        "for a, p in ((a, int(p)) for a, p in (x.split(':') for x in sys.argv[1:])):\n"
        "    s = socket.socket(); s.settimeout(3)\n"
        "    try:\n"
        "        s.connect((a, p)); print(a, 'CONNECTED')\n"
        "    except OSError as e:\n"
        "        print(a, e.strerror or type(e).__name__)\n"
    )
    targets = " ".join(f"{a}:{p}" for a, p in listeners)
    res = remote.ssh(node, f"python3 -c {shlex.quote(code)} {targets}", check=False)
    answers = dict(ln.split(" ", 1) for ln in res.stdout.splitlines() if " " in ln)
    if res.returncode != 0 or len(answers) != len(listeners) or any(v == "CONNECTED" for v in answers.values()):
        raise LabError(f"{node}: the lab network is not isolated from the host: {answers or res.stderr}")
    return answers


def check(names: Sequence[str] | None = None) -> dict[str, object]:
    """What `up` promises: systemd running, SSH and Ansible work, no route out of the lab network."""
    names = list(names or running_nodes())
    if not names:
        raise LabError("check: no lab node is running (lab.py up)")
    inspect = json.loads(docker("network", "inspect", NETWORK))[0]
    if not inspect.get("Internal"):
        raise LabError(f"network {NETWORK} is not --internal")
    result: dict[str, object] = {"network_internal": True}
    # A listener on the host's side of the lab network (the gateway): the host reaches it, the nodes must
    # not. The firewall rule drops every new connection from the lab bridge to any host address, so this
    # one probe speaks for all of them; nothing but the lab's own network is ever addressed.
    socks = [socket.create_server((GATEWAY, 0))]
    try:
        listeners = [sock.getsockname()[:2] for sock in socks]
        for addr, port in listeners:
            with socket.create_connection((addr, port), timeout=3):
                pass  # the listener works: a failure from the node is the firewall's doing
        for node in names:
            wait_booted(node, timeout=30)
            routes = remote.ssh(node, "ip -4 route show").stdout
            for line in routes.splitlines():
                if line.startswith("default") and f"via {GATEWAY} " not in line + " ":
                    raise LabError(f"{node}: default route not via the lab gateway {GATEWAY}:\n{routes}")
            answers = isolation_probe(node, listeners)
            result[node] = {"routes": routes.strip().splitlines(), "connect_to_host": answers}
            log(f"check {node}: systemd running, SSH ok; connect to the host's own addresses: {answers}")
    finally:
        for sock in socks:
            sock.close()
    return result


def running_nodes() -> list[str]:
    out = docker("ps", "--filter", f"label={LABEL}", "--format", '{{.Label "kubelab.node"}}')
    return sorted(n for n in out.split() if n in NODES)


def late_worker(add: bool) -> None:
    if add:
        LATE_WORKER_FILE.write_text(
            "---\n"
            "# Written by tests/lab/lab.py (late-worker add, e2e): the machine that arrived weeks later.\n"
            "# Removed by `lab.py late-worker remove` and `lab.py down`.\n"
            "workers:\n"
            "  hosts:\n"
            f"    {LATE_WORKER}:\n"
            f"      ansible_host: {NODES[LATE_WORKER]}\n"
        )
        log(f"inventory: {LATE_WORKER} added to workers ({LATE_WORKER_FILE.relative_to(REPO)})")
    else:
        with contextlib.suppress(FileNotFoundError):
            LATE_WORKER_FILE.unlink()
        log(f"inventory: {LATE_WORKER} removed ({LATE_WORKER_FILE.relative_to(REPO)})")


def restart_node(node: str) -> None:
    log(f"restart: docker restart {container(node)}")
    docker("restart", "--time", "60", container(node), timeout=180)
    remote.forget(node)
    wait_booted(node)


def diagnose(out: Path | None = None) -> str:
    """What a person needs after a failure, for every running node (docker exec: SSH may be the problem)."""
    parts = []
    for node in running_nodes():
        c = container(node)
        for title, cmd in (
            ("systemctl --failed", "systemctl --failed --no-pager"),
            (
                "journalctl -u kubelet -u cri-docker -u docker | tail -n 200",
                "journalctl -u kubelet -u cri-docker -u docker --no-pager | tail -n 200",
            ),
            ("docker ps -a", "docker ps -a 2>&1 || true"),
        ):
            res = run(["docker", "exec", c, "sh", "-c", cmd], check=False, timeout=60)
            parts.append(f"===== {node}: {title}\n{res.stdout}{res.stderr}")
        if node == CONTROL_PLANE:
            for args in ("get nodes -o wide", "get pods -A -o wide", "get events -A --sort-by=.lastTimestamp"):
                res = run(
                    [
                        "docker",
                        "exec",
                        c,
                        "sh",
                        "-c",
                        f"kubectl --kubeconfig {ADMIN_KUBECONFIG} {args} 2>&1 | tail -n 80",
                    ],
                    check=False,
                    timeout=60,
                )
                parts.append(f"===== {node}: kubectl {args}\n{res.stdout}{res.stderr}")
    text = "\n".join(parts) or "(no lab node is running)"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text


# --------------------------------------------------------------------------- ansible, pytest, bundle
