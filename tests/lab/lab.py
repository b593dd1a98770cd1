#!/usr/bin/env python3
"""The container lab: Debian node containers on an internal Docker network, driven over SSH.

Subcommands (``lab.py -h``):
  image          build the node image (cached by the hash of its recipe)
  up [N]         remove what an earlier lab left, then start N node containers (default 3)
  down           remove every container, network and volume carrying the lab label
  status         the lab's containers and their addresses
  check          systemd running, SSH, `ansible -m ping`, no route out, on every node
  late-worker    add|remove node3 to/from the workers group of inventories/local
  verify         the shared testinfra checks (tests/verify) against inventories/local
  diagnose       journal, docker ps and kubectl output of every node
  lab            bundle, image, two nodes, site.yml, verify; the cluster keeps running
  e2e            the whole end-to-end run with its report (build/lab-report.json)

Nodes are bare Debian machines: the roles install Docker, cri-dockerd and Kubernetes from the
offline bundle. The harness starts containers with `docker`; Ansible, the checks and the waits
reach the nodes only by SSH to their addresses (10.250.0.10-12), never by `docker exec`, except
for reading a fresh node's SSH host keys and for diagnostics when SSH itself is broken.

Environment: KUBELAB_KEEP=1 keeps the lab after `e2e` (also on failure); KUBELAB_STATE (default
/var/tmp/kubelab) holds logs, reports and the build caches; KUBELAB_BUNDLE_DIR overrides the bundle
directory (default: cluster_bundle_dir of inventories/local).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "tests" / "lab"
NODE_DIR = LAB_DIR / "node"
BUILD_DIR = LAB_DIR / "build"
INVENTORY = REPO / "inventories" / "local"
LATE_WORKER_FILE = INVENTORY / "late-worker.yml"
VENV_BIN = REPO / ".venv" / "bin"
STATE = Path(os.environ.get("KUBELAB_STATE", "/var/tmp/kubelab"))
PORT_CHANGE_TO = "10265"  # the read-only port the e2e switches to and back (10256 is kube-proxy's healthz)
LOGS = STATE / "logs"
# Fixed, because inventories/local names them (testinfra does not template inventory variables).
SSH_DIR = Path("/var/tmp/kubelab/ssh")
SSH_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
REPORT_FILES = (STATE / "lab-report.json", REPO / "build" / "lab-report.json")

LABEL_KEY = "kubelab.lab"
LABEL = f"{LABEL_KEY}=1"
NETWORK = "kubelab-net"
BRIDGE = "kubelab0"
SUBNET = "10.250.0.0/24"
GATEWAY = "10.250.0.1"
NODES = {"node1": "10.250.0.10", "node2": "10.250.0.11", "node3": "10.250.0.12"}
CONTROL_PLANE = "node1"
LATE_WORKER = "node3"
IMAGE_REPO = "kubelab/node"
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
FIREWALL_RULE = (
    "-i",
    BRIDGE,
    "-m",
    "conntrack",
    "--ctstate",
    "NEW",
    "-m",
    "comment",
    "--comment",
    "kubelab-lab",
    "-j",
    "REJECT",
    "--reject-with",
    "icmp-host-prohibited",
)

# Upper bounds of every wait (seconds).
T_BOOT = 180
T_READY = 600
T_SITE = 3600
T_PLAY = 1800
T_VERIFY = 900
T_BUILD = 5400
T_IMAGE = 1200


class LabError(Exception):
    """A step failed; the message says which and what to look at."""


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def container(node: str) -> str:
    return f"kubelab-{node}"


# --------------------------------------------------------------------------- processes


def run(
    argv: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, kill its whole process group after `timeout`."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        tail = f"{(out or '')[-2000:]}{(err or '')[-2000:]}"
        raise LabError(f"timed out after {timeout:.0f} s: {shlex.join(argv)}\n{tail}") from None
    result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise LabError(f"exit {proc.returncode}: {shlex.join(argv)}\n{out[-3000:]}{err[-3000:]}")
    return result


def run_logged(
    argv: Sequence[str], logfile: Path, *, timeout: float, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run a long command, streaming its output to the terminal and to `logfile`; bounded."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    log(f"$ {shlex.join(argv)}  (log: {logfile})")
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    timed_out = False
    with logfile.open("wb") as fh:
        fh.write(f"$ {shlex.join(argv)}\n".encode())
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if not sel.select(timeout=min(remaining, 5)):
                    continue
                data = os.read(fd, 65536)
                if not data:
                    break
                chunks.append(data)
                fh.write(data)
                fh.flush()
                if not os.environ.get("KUBELAB_QUIET"):
                    sys.stdout.buffer.write(data)
                    sys.stdout.flush()
        if timed_out:
            _kill_group(proc)
            note = f"\n[lab] killed after {timeout:.0f} s\n".encode()
            chunks.append(note)
            fh.write(note)
        rc = proc.wait()
    return (124 if timed_out else rc), b"".join(chunks).decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def docker(*args: str, timeout: float = 120, check: bool = True, input_text: str | None = None) -> str:
    return run(["docker", *args], timeout=timeout, check=check, input_text=input_text).stdout.strip()


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


def ensure_collection_link() -> None:
    """ansible.cfg puts build/collections first: make the checkout the kubelab.kubeadm collection."""
    link = REPO / "build" / "collections" / "ansible_collections" / "kubelab" / "kubeadm"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


# --------------------------------------------------------------------------- SSH


def ssh_argv(node: str, command: str, *, connect_timeout: int = 5) -> list[str]:
    return [
        "ssh",
        "-i",
        str(SSH_KEY),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "LogLevel=ERROR",
        f"root@{NODES[node]}",
        command,
    ]


def ssh(node: str, command: str, *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(ssh_argv(node, command), timeout=timeout, check=check)


def tcp_open(address: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_until(what: str, probe, timeout: float, interval: float = 2.0):
    """Call probe() until it returns a true value; LabError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: object = None
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


# --------------------------------------------------------------------------- node image


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


def packages() -> list[str]:
    lines = (NODE_DIR / "packages.txt").read_text().splitlines()
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
            rc, out = run_logged(argv, build_log, timeout=T_IMAGE)
            if rc != 0:
                raise LabError(f"mmdebstrap failed (exit {rc}); see {build_log}:\n{out[-3000:]}")
        else:
            rootfs = Path(tmp) / "rootfs"
            mirror = MIRRORS[0].split()[1]
            argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages())}", SUITE, str(rootfs), mirror]
            rc, out = run_logged(argv, build_log, timeout=T_IMAGE)
            if rc != 0:
                raise LabError(f"debootstrap failed (exit {rc}); see {build_log}:\n{out[-3000:]}")
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


def node_run_args(node: str, image: str) -> list[str]:
    args = [
        "--name",
        container(node),
        "--hostname",
        node,
        "--label",
        LABEL,
        "--label",
        f"kubelab.node={node}",
        "--network",
        NETWORK,
        "--ip",
        NODES[node],
        "--network-alias",
        node,
        *(a for other, ip in NODES.items() for a in ("--add-host", f"{other}:{ip}") if other != node),
        # systemd as PID 1 with its own cgroup tree; --privileged fails on this host (lab-node-recipe.md)
        "--cap-add",
        "ALL",
        "--cap-drop",
        "SYS_RESOURCE",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--security-opt",
        "systempaths=unconfined",
        "--device-cgroup-rule",
        "a *:* rwm",
        "--cgroupns",
        "private",
        "--device",
        "/dev/kmsg",
        "--tmpfs",
        "/run:rw,nosuid,nodev,exec,mode=0755",
        "--tmpfs",
        "/run/lock:rw,nosuid,nodev,noexec",
        # /var on a volume: Docker inside the node needs a non-overlay filesystem for overlay2
        "--volume",
        f"{container(node)}-var:/var",
        "--stop-signal",
        "SIGRTMIN+3",
        "--stop-timeout",
        "60",
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
            docker("create", *node_run_args(node, str(image)), str(image))
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
    wait_until(f"{node}: sshd on {NODES[node]}:22", lambda: tcp_open(NODES[node], 22), timeout, interval=1)

    def probe() -> str | None:
        state = ssh(node, "systemctl is-system-running", check=False, timeout=30).stdout.strip()
        return state if state and state not in ("initializing", "starting") else None

    state = wait_until(f"{node}: systemd boot finished", probe, timeout, interval=1)
    if state != "running":
        failed = ssh(node, "systemctl --failed --no-legend --plain", check=False).stdout
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
    res = ssh(node, f"python3 -c {shlex.quote(code)} {targets}", check=False)
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
            routes = ssh(node, "ip -4 route show").stdout
            for line in routes.splitlines():
                if line.startswith("default") and f"via {GATEWAY} " not in line + " ":
                    raise LabError(f"{node}: default route not via the lab gateway {GATEWAY}:\n{routes}")
            answers = isolation_probe(node, listeners)
            result[node] = {"routes": routes.strip().splitlines(), "connect_to_host": answers}
            log(f"check {node}: systemd running, SSH ok; connect to the host's own addresses: {answers}")
    finally:
        for sock in socks:
            sock.close()
    extra = [n for n in names if n not in inventory_hosts()]
    inv = ["-i", str(INVENTORY)]
    if extra:
        inv += ["-i", ",".join(NODES[n] for n in extra) + ","]
    res = run(
        [str(VENV_BIN / "ansible"), "all", *inv, "-m", "ansible.builtin.ping", "-o"],
        env=tool_env(),
        cwd=REPO,
        timeout=180,
        check=False,
    )
    if res.returncode != 0:
        raise LabError(f"ansible ping failed:\n{res.stdout}{res.stderr}")
    log(
        "check: ansible -m ping: "
        + "; ".join(ln.split(" |")[0] + " ok" for ln in res.stdout.splitlines() if "SUCCESS" in ln)
    )
    return result


def running_nodes() -> list[str]:
    out = docker("ps", "--filter", f"label={LABEL}", "--format", '{{.Label "kubelab.node"}}')
    return sorted(n for n in out.split() if n in NODES)


def inventory_hosts() -> list[str]:
    res = run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"], env=tool_env(), cwd=REPO, check=False
    )
    if res.returncode != 0:
        return []
    return sorted(json.loads(res.stdout).get("_meta", {}).get("hostvars", {}))


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


# --------------------------------------------------------------------------- cluster helpers


def kubectl(args: str, *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return ssh(CONTROL_PLANE, f"kubectl --kubeconfig {ADMIN_KUBECONFIG} {args}", timeout=timeout, check=check)


def node_states() -> dict[str, dict[str, object]]:
    res = kubectl("get nodes -o json", check=False)
    if res.returncode != 0:
        return {}
    states = {}
    for item in json.loads(res.stdout)["items"]:
        conds = {c["type"]: c["status"] for c in item["status"].get("conditions", [])}
        info = item["status"].get("nodeInfo", {})
        states[item["metadata"]["name"]] = {
            "ready": conds.get("Ready") == "True",
            "roles": sorted(
                k.split("/", 1)[1]
                for k in item["metadata"].get("labels", {})
                if k.startswith("node-role.kubernetes.io/")
            ),
            "kubelet": info.get("kubeletVersion"),
            "runtime": info.get("containerRuntimeVersion"),
            "os": info.get("osImage"),
            "addresses": [a["address"] for a in item["status"].get("addresses", []) if a["type"] == "InternalIP"],
        }
    return states


def wait_ready(names: Sequence[str], timeout: float = T_READY) -> dict[str, dict[str, object]]:
    def probe():
        states = node_states()
        return states if all(states.get(n, {}).get("ready") for n in names) else None

    return wait_until(f"nodes {', '.join(names)} Ready", probe, timeout, interval=5)


def delete_bootstrap_tokens() -> int:
    """Delete every bootstrap token; only token IDs (never secrets) are printed."""
    res = ssh(CONTROL_PLANE, f"kubeadm token list --kubeconfig {ADMIN_KUBECONFIG} -o json")
    ids = [json.loads(doc)["token"].split(".", 1)[0] for doc in _json_stream(res.stdout)]
    for token_id in ids:
        ssh(CONTROL_PLANE, f"kubeadm token delete --kubeconfig {ADMIN_KUBECONFIG} {shlex.quote(token_id)}")
    left = _json_stream(ssh(CONTROL_PLANE, f"kubeadm token list --kubeconfig {ADMIN_KUBECONFIG} -o json").stdout)
    if left:
        raise LabError(f"{len(left)} bootstrap token(s) still listed after deleting {ids}")
    log(f"tokens: deleted {len(ids)} bootstrap token(s): ids {', '.join(ids) or '-'}; none left")
    return len(ids)


def _json_stream(text: str) -> list[str]:
    """`kubeadm token list -o json` prints one JSON object per token, concatenated."""
    docs, dec, idx = [], json.JSONDecoder(), 0
    text = text.strip()
    while idx < len(text):
        obj, end = dec.raw_decode(text, idx)
        docs.append(json.dumps(obj))
        idx = end
        while idx < len(text) and text[idx].isspace():
            idx += 1
    return docs


def restart_node(node: str) -> None:
    log(f"restart: docker restart {container(node)}")
    docker("restart", "--time", "60", container(node), timeout=180)
    wait_booted(node)


# --------------------------------------------------------------------------- diagnostics


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


RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.M,
)


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ansible-playbook run: {host: {ok, changed, ...}} (the last recap wins)."""
    tail = output.rsplit("PLAY RECAP", 1)
    if len(tail) < 2:
        return {}
    return {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"} for m in RECAP.finditer(tail[1])}


def failed_tasks(output: str) -> list[dict[str, str]]:
    """Each `fatal:`/`failed:` result with the TASK it belongs to and the start of its message."""
    found, task = [], ""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("TASK ["):
            task = line[len("TASK [") :].rsplit("]", 1)[0]
        elif re.match(r"^(fatal|failed): \[", line):
            block = [line.strip()]
            for follow in lines[i + 1 : i + 25]:
                if not follow.strip() or follow.startswith(("TASK [", "PLAY ", "RUNNING HANDLER", "fatal:", "ok:")):
                    break
                block.append(follow.strip())
            found.append({"task": task, "result": " ".join(block)[:1200]})
    return found


def playbook(phase: str, playbook_path: str, *extra: str, timeout: float = T_PLAY) -> dict[str, object]:
    ensure_collection_link()
    argv = [str(VENV_BIN / "ansible-playbook"), playbook_path, "-i", str(INVENTORY.relative_to(REPO)), *extra]
    rc, out = run_logged(argv, LOGS / f"{phase}.log", timeout=timeout, env=tool_env())
    recap = parse_recap(out)
    result = {
        "command": shlex.join(["ansible-playbook", *argv[1:]]),
        "rc": rc,
        "recap": recap,
        "changed": sum(h["changed"] for h in recap.values()),
        "failed_tasks": failed_tasks(out),
        "log": str(LOGS / f"{phase}.log"),
    }
    if rc != 0:
        where = "; ".join(f"[{f['task']}] {f['result'][:300]}" for f in result["failed_tasks"][:3]) or out[-1500:]
        raise LabError(f"{playbook_path} failed (exit {rc}): {where}", result)
    return result


def junit_outcomes(path: Path) -> dict[str, str]:
    """Each test of a pytest JUnit file -> passed / failed / error / skipped (for the report)."""
    if not path.exists():
        return {}
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{module}::{case.get('name')}"] = {"failure": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
    return outcomes


def verify(phase: str, nodes: Sequence[str], *extra: str) -> dict[str, object]:
    argv = [
        str(VENV_BIN / "pytest"),
        "tests/verify",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEs",
        f"--ansible-inventory={INVENTORY.relative_to(REPO)}",
        f"--kubelab-nodes={','.join(nodes)}",
        f"--junitxml={LOGS / (phase + '.xml')}",
        "-o",
        "junit_family=xunit2",
        *extra,
    ]
    rc, out = run_logged(argv, LOGS / f"{phase}.log", timeout=T_VERIFY, env=tool_env())
    summary = next((ln.strip() for ln in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed|error)", ln)), "")
    result = {
        "rc": rc,
        "summary": summary,
        "log": str(LOGS / f"{phase}.log"),
        "checks": junit_outcomes(LOGS / f"{phase}.xml"),
    }
    if rc != 0:
        failures = [ln for ln in out.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        raise LabError(f"checks failed ({summary}):\n" + "\n".join(failures[:20]), result)
    return result


def inventory_var(name: str, default: str) -> str:
    """A plain scalar of inventories/local/group_vars/all.yml (the lab's own file: no templating)."""
    text = (INVENTORY / "group_vars" / "all.yml").read_text()
    m = re.search(rf"^{re.escape(name)}:\s*['\"]?([^'\"\s#]+)", text, re.M)
    return m.group(1) if m else default


def kubernetes_version() -> str:
    return os.environ.get("KUBELAB_K8S_VERSION") or inventory_var("cluster_kubernetes_version", "1.36.3")


def bundle_dir() -> Path:
    """Where the bundle is: KUBELAB_BUNDLE_DIR, else cluster_bundle_dir of inventories/local."""
    env = os.environ.get("KUBELAB_BUNDLE_DIR")
    if env:
        return Path(env)
    value = inventory_var("cluster_bundle_dir", "")
    if not value:
        raise LabError("cluster_bundle_dir is not set in inventories/local/group_vars/all.yml")
    return Path(value)


def build_bundle() -> dict[str, object]:
    """Run tests/lab/build/build.py (it caches every step); report whether anything was rebuilt."""
    version = kubernetes_version()
    target = bundle_dir()
    builder = BUILD_DIR / "build.py"
    built_at = Path(os.environ.get("KUBELAB_CACHE", "/var/tmp/kubelab/cache")) / version / "bundle"
    info: dict[str, object] = {"bundle_dir": str(target), "kubernetes_version": version}
    if not builder.exists():
        if not (target / "manifest.json").exists():
            raise LabError(f"no bundle at {target} and no builder at {builder.relative_to(REPO)}")
        info["builder"] = "none (existing bundle used)"
        info["cache_hit"] = True
    else:
        if built_at.resolve() != target.resolve():
            raise LabError(
                f"{builder.relative_to(REPO)} writes {built_at}, but the inventory's cluster_bundle_dir is {target}: "
                "make them the same (KUBELAB_CACHE / KUBELAB_BUNDLE_DIR)"
            )
        summary = LOGS / "bundle-summary.json"
        summary.unlink(missing_ok=True)
        rc, out = run_logged(
            [sys.executable, str(builder), "--version", version, "--summary-json", str(summary)],
            LOGS / "bundle.log",
            timeout=T_BUILD,
            env=tool_env(),
        )
        if rc != 0:
            raise LabError(f"bundle build failed (exit {rc}), see {LOGS / 'bundle.log'}:\n{out[-2500:]}")
        info["builder"] = f"tests/lab/build/build.py --version {version}"
        info["cache_hit"] = bool(json.loads(summary.read_text())["cache_hit"])
    manifest = target / "manifest.json"
    if not manifest.exists():
        raise LabError(f"no {manifest} after the bundle step")
    data = json.loads(manifest.read_text())
    info["versions"] = data.get("versions", {})
    info["images"] = len(data.get("images", []))
    return info


# --------------------------------------------------------------------------- report


class Report:
    def __init__(self, kind: str) -> None:
        self.data: dict[str, object] = {
            "kind": kind,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "result": "running",
            "phases": [],
        }
        self.t0 = time.monotonic()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[dict[str, object]]:
        entry: dict[str, object] = {"name": name, "status": "running"}
        self.data["phases"].append(entry)  # type: ignore[union-attr]
        log(f"---- phase {name}")
        t = time.monotonic()
        try:
            yield entry
        except BaseException as exc:
            entry["status"] = "failed"
            entry["error"] = str(exc.args[0] if exc.args else exc)[:4000]
            if len(getattr(exc, "args", ())) > 1 and isinstance(exc.args[1], dict):
                entry.update({k: v for k, v in exc.args[1].items() if k not in entry})
            raise
        else:
            entry["status"] = "ok"
        finally:
            entry["seconds"] = round(time.monotonic() - t, 1)
            self.save()

    def save(self) -> None:
        self.data["total_seconds"] = round(time.monotonic() - self.t0, 1)
        text = json.dumps(self.data, indent=2, default=str) + "\n"
        for path in REPORT_FILES:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    @staticmethod
    def detail(p: dict) -> str:
        """The table's one-line detail of a phase record."""
        detail = ""
        if "changed" in p:
            detail = f"changed={p['changed']}"
        if "cache_hit" in p:
            detail = "cache hit" if p["cache_hit"] else "built"
        if "deleted" in p:
            detail = f"{p['deleted']} token(s) deleted"
        if p.get("name") == "restart" and "node" in p:
            detail = f"{p['node']} Ready again"
        if "cached" in p:
            detail = f"{p.get('tag')} ({'cached' if p['cached'] else 'built'})"
        if p.get("summary"):
            detail = str(p["summary"])
        if p.get("name") == "exec repair" and "repair" in p:
            repair = p["repair"]
            detail = (
                f"exec broken, then repaired by one run (kubelets {' > '.join(repair['restart_order'])}; "
                f"{repair['verify'].split(' in ')[0]}), then changed=0"
            )
        if p.get("status") == "failed":
            detail = str(p.get("error", "")).splitlines()[0][:70]
        return detail

    def table(self) -> str:
        rows = [("phase", "status", "seconds", "detail")]
        for p in self.data["phases"]:  # type: ignore[union-attr]
            detail = self.detail(p)
            rows.append((str(p["name"]), str(p["status"]), f"{p.get('seconds', 0):.1f}", detail))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
        lines.append(f"total {self.data.get('total_seconds')} s, result: {self.data.get('result')}")
        for name, st in (self.data.get("nodes") or {}).items():  # type: ignore[union-attr]
            lines.append(
                f"  {name}: {'Ready' if st.get('ready') else 'NotReady'} {','.join(st.get('roles', []))} "
                f"kubelet {st.get('kubelet')} runtime {st.get('runtime')}"
            )
        checks = self.widest_checks()
        if checks:
            lines.append(f"  checks ({checks[0]}): " + ", ".join(f"{n} {c}" for n, c in checks[1].items()))
        if self.data.get("versions"):
            versions = dict(self.data["versions"])  # type: ignore[call-overload]
            bundle = versions.pop("bundle", None)
            lines.append("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
            if bundle:
                lines.append("  bundle: " + ", ".join(f"{k} {v}" for k, v in bundle.items()))
        return "\n".join(lines)

    def widest_checks(self) -> tuple[str, dict[str, str]] | None:
        """The tests/verify run with the most checks: check name -> "passed/total" over its nodes."""
        runs = []
        for p in self.data["phases"]:  # type: ignore[union-attr]
            for key in ("checks", "verify"):
                value = p.get(key) if key == "checks" else (p.get(key) or {})
                checks = value if key == "checks" else (value.get("checks") if isinstance(value, dict) else None)
                if checks:
                    runs.append((len(checks), str(p["name"]), checks))
        if not runs:
            return None
        _count, phase, checks = max(runs, key=lambda r: r[0])
        grouped: dict[str, list[str]] = {}
        for name, outcome in checks.items():
            grouped.setdefault(name.split("::", 1)[-1].split("[", 1)[0].removeprefix("test_"), []).append(outcome)
        return phase, {n: f"{o.count('passed')}/{len(o)}" for n, o in grouped.items()}


def collect_versions(report: Report) -> None:
    versions: dict[str, object] = {}
    with contextlib.suppress(Exception):
        versions["host_docker"] = docker("version", "-f", "{{.Server.Version}}")
    with contextlib.suppress(Exception):
        versions["ansible_core"] = (
            run([str(VENV_BIN / "ansible"), "--version"]).stdout.split("\n")[0].split("core ")[-1].rstrip("]")
        )
    with contextlib.suppress(Exception):
        versions["kubeadm"] = ssh(CONTROL_PLANE, "kubeadm version -o short", timeout=20).stdout.strip()
    with contextlib.suppress(Exception):
        versions["node_docker"] = ssh(
            CONTROL_PLANE, "docker version -f '{{.Server.Version}}'", timeout=20
        ).stdout.strip()
    with contextlib.suppress(Exception):
        versions["cri_dockerd"] = ssh(CONTROL_PLANE, "cri-dockerd --version 2>&1", timeout=20).stdout.strip()
    bundle = next((p for p in report.data["phases"] if p["name"] == "bundle"), {})  # type: ignore[union-attr]
    if bundle.get("versions"):
        versions["bundle"] = bundle["versions"]
    report.data["versions"] = versions
    with contextlib.suppress(Exception):
        report.data["nodes"] = node_states()


# --------------------------------------------------------------------------- composite runs


def keep() -> bool:
    return os.environ.get("KUBELAB_KEEP", "") not in ("", "0", "false", "no")


def changed_tasks(log_path: str) -> list[str]:
    """The names of the tasks and handlers that reported `changed` in a playbook log."""
    names, current = [], ""
    for line in Path(log_path).read_text().splitlines():
        m = re.match(r"(?:TASK|RUNNING HANDLER) \[(.+?)\] \*+$", line)
        if m:
            current = m.group(1)
        elif line.startswith("changed:") and current and (not names or names[-1] != current):
            names.append(current)
    return names


def tampered_bundle_run() -> dict[str, object]:
    """One changed byte in one image archive: site.yml must stop, naming the file, before any node changes.

    The copy shares every file with the real bundle through hard links except the tampered archive,
    which is a real copy: the real bundle is never modified.
    """
    src = bundle_dir()
    manifest = json.loads((src / "manifest.json").read_text())
    victim = min((f for f in manifest["files"] if f["component"] == "image"), key=lambda f: f["size"])
    copy = STATE / "tampered-bundle"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(src, copy, copy_function=os.link)
    target = copy / victim["path"]
    target.unlink()
    shutil.copyfile(src / victim["path"], target)
    with target.open("r+b") as fh:
        fh.seek(victim["size"] // 2)
        byte = fh.read(1)
        fh.seek(victim["size"] // 2)
        fh.write(bytes([byte[0] ^ 0x01]))
    result: dict[str, object] = {}
    try:
        try:
            playbook("site-tampered", "site.yml", "-e", f"cluster_bundle_dir={copy}")
        except LabError as exc:
            result = exc.args[1] if len(exc.args) > 1 else {}
        else:
            raise LabError(f"site.yml accepted a bundle whose {victim['path']} has a changed byte")
        text = Path(LOGS / "site-tampered.log").read_text()
        if victim["path"] not in text or victim["sha256"] not in text:
            raise LabError(
                f"the failure does not name {victim['path']} and its expected sha256 (see {result.get('log')})"
            )
        if result.get("changed"):
            raise LabError(f"the run with a tampered bundle changed {result['changed']} things on the nodes", result)
        return {"file": victim["path"], "changed": result.get("changed", 0), "log": result.get("log")}
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def kubelet_port_change(nodes: Sequence[str]) -> dict[str, object]:
    """Re-run site.yml with another read-only port: only kubelet_config may change; then put it back."""
    original = inventory_var("cluster_kubelet_read_only_port", "0")
    result: dict[str, object] = {"from": original, "to": PORT_CHANGE_TO}
    for phase, port in (("site-port-change", PORT_CHANGE_TO), ("site-port-restore", original)):
        run_ = playbook(phase, "site.yml", "-e", f"cluster_kubelet_read_only_port={port}")
        tasks = changed_tasks(str(run_["log"]))
        stray = [t for t in tasks if not t.startswith("kubelab.kubeadm.kubelet_config :")]
        if not run_["changed"] or stray:
            raise LabError(f"{phase}: expected changes by kubelet_config only, got {tasks or 'none'}", run_)
        checks = verify(
            f"verify-{phase}",
            nodes,
            f"--kubelab-set=cluster_kubelet_read_only_port={port}",
            "-k",
            "read_only_port or healthz or nodes_ready",
        )
        result[phase] = {"changed": run_["changed"], "changed_tasks": tasks, "verify": checks["summary"]}
    return result


# The kubelet feature gate the day-one fix turns off (playbooks/vars/versions.yml), and what the bug looks like.
WEBSOCKET_GATE = "ExtendWebSocketsToKubelet"
EXEC_BUG = "server gave HTTP response to HTTPS client"
OLD_BEHAVIOUR = json.dumps({"cluster_kubelet_feature_gates": {WEBSOCKET_GATE: None}})


def declared_features() -> dict[str, list[str]]:
    """Node name -> the features its kubelet declares (Node status.declaredFeatures)."""
    items = json.loads(kubectl("get nodes -o json").stdout)["items"]
    return {n["metadata"]["name"]: sorted(n["status"].get("declaredFeatures") or []) for n in items}


def wait_declared(nodes: Sequence[str], *, declared: bool) -> dict[str, object]:
    """Wait (bounded) until every node's kubelet declares the gate's feature, or none does; report how long."""
    start = time.monotonic()

    def settled() -> dict[str, list[str]] | None:
        features = declared_features()
        return features if all((WEBSOCKET_GATE in features.get(n, [])) == declared for n in nodes) else None

    what = f"every node {'declaring' if declared else 'without'} {WEBSOCKET_GATE}"
    features = wait_until(what, settled, timeout=120, interval=2)
    return {
        "declared_features": {n: features.get(n, []) for n in nodes},
        "settled_after_s": round(time.monotonic() - start, 1),
    }


def exec_fails_on_every_node(nodes: Sequence[str]) -> dict[str, object]:
    """Before the fix: `kubectl exec` into the kube-proxy pod of every node fails with the 1.36 error."""
    result = wait_declared(nodes, declared=True)
    pods = json.loads(kubectl("-n kube-system get pods -l k8s-app=kube-proxy -o json").stdout)["items"]
    by_node = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods}
    errors: dict[str, str] = {}
    for node in nodes:
        if node not in by_node:
            raise LabError(f"no kube-proxy pod on {node}: {sorted(by_node)}")
        res = kubectl(f"-n kube-system exec {by_node[node]} -- /bin/sh -c 'echo exec-ok'", check=False)
        text = (res.stdout + res.stderr).strip()
        if res.returncode == 0 or EXEC_BUG not in text:
            raise LabError(
                f"with the old behaviour, kubectl exec into {by_node[node]} on {node} should fail with "
                f"'{EXEC_BUG}'; got rc {res.returncode}: {text}"
            )
        errors[node] = text[-200:]
    log(f"exec fails on every node as before the fix: {errors}")
    return {**result, "exec": errors}


KUBELET_RESTART_TASK = re.compile(
    r"TASK \[kubelab\.kubeadm\.kubelet_config : Kubelet config \| "
    r"(Restart the kubelet|Wait for the kubelet healthz endpoint) of (\S+)\]"
)


def kubelet_restart_order(log_path: str) -> list[str]:
    """The nodes whose kubelet a kubelet_config run restarted, in order; fails unless one at a time."""
    events = []
    for line in Path(log_path).read_text().splitlines():
        m = KUBELET_RESTART_TASK.match(line)
        if m:
            events.append(("restart" if m.group(1).startswith("Restart") else "healthy", m.group(2)))
    nodes = [n for kind, n in events if kind == "restart"]
    want = [e for n in nodes for e in (("restart", n), ("healthy", n))]
    if events != want:
        raise LabError(f"kubelets were not restarted one node at a time (restart, healthy, next): {events}")
    return nodes


def websocket_gate_repair(nodes: Sequence[str]) -> dict[str, object]:
    """A cluster as the release before the day-one fix built it is repaired by one site.yml run.

    1. site.yml -e cluster_kubelet_feature_gates={ExtendWebSocketsToKubelet: null}: the gate is removed from
       every kubelet file and the ConfigMap, which is exactly what the earlier release left; kubectl exec
       must then fail on every node with the known error (the check can fail).
    2. site.yml with the defaults: only kubelet_config changes, the kubelets restart one node at a time, no
       node declares the feature any more, and exec, attach, cp and port-forward work on every node.
    3. site.yml again: changed=0.
    """
    result: dict[str, object] = {}
    old = playbook("site-old-behaviour", "site.yml", "-e", OLD_BEHAVIOUR)
    stray = [t for t in changed_tasks(str(old["log"])) if not t.startswith("kubelab.kubeadm.kubelet_config :")]
    if stray:
        raise LabError(f"site-old-behaviour: changes outside kubelet_config: {stray}", old)
    result["old_behaviour"] = {"changed": old["changed"], **exec_fails_on_every_node(nodes)}
    repair = playbook("site-repair", "site.yml")
    tasks = changed_tasks(str(repair["log"]))
    stray = [t for t in tasks if not t.startswith("kubelab.kubeadm.kubelet_config :")]
    if not repair["changed"] or stray:
        raise LabError(f"site-repair: expected changes by kubelet_config only, got {tasks or 'none'}", repair)
    order = kubelet_restart_order(str(repair["log"]))
    if sorted(order) != sorted(nodes):
        raise LabError(f"site-repair restarted the kubelets of {order}, expected each of {list(nodes)} once", repair)
    # The streaming checks of tests/verify, on fresh pods: on this cgroup v1 host a kubelet restart can take
    # running containers out of their devices cgroup, and exec into those then fails for that reason instead
    # (runc#4620, kubernetes#103542; docs/operations.md) - not what this phase is about.
    settled = wait_declared(nodes, declared=False)
    checks = verify("verify-repair", nodes, "-k", "test_exec or test_attach or test_cp or test_port_forward")
    result["repair"] = {
        "changed": repair["changed"],
        "changed_tasks": tasks,
        "restart_order": order,
        **settled,
        "verify": checks["summary"],
    }
    again = playbook("site-after-repair", "site.yml")
    if again["changed"]:
        changed_hosts = {h: r["changed"] for h, r in again["recap"].items() if r["changed"]}
        raise LabError(f"site.yml after the repair is not idempotent: changed {changed_hosts}", again)
    result["after_repair"] = {"changed": 0}
    return result


def e2e(args: argparse.Namespace) -> int:
    report = Report("e2e")
    workers = ["node2"]
    ok = False
    try:
        with report.phase("bundle") as p:
            if args.skip_build:
                p["builder"] = "skipped (--skip-build)"
                p["bundle_dir"] = str(bundle_dir())
            else:
                p.update(build_bundle())
        with report.phase("node image") as p:
            p.update(ensure_image())
        with report.phase("node creation") as p:
            p.update(up(3, image=str(p.get("tag") or image_tag())))
            p["check"] = check(list(NODES))
        with report.phase("site.yml") as p:
            p.update(playbook("site", "site.yml", timeout=T_SITE))
        with report.phase("verify") as p:
            p.update(verify("verify-1", [CONTROL_PLANE, *workers]))
        with report.phase("second run") as p:
            p.update(playbook("site-second", "site.yml"))
            if p["changed"]:
                changed_hosts = {h: r["changed"] for h, r in p["recap"].items() if r["changed"]}
                raise LabError(f"second site.yml run is not idempotent: changed {changed_hosts} (see {p['log']})", p)
        with report.phase("exec repair") as p:
            p.update(websocket_gate_repair([CONTROL_PLANE, *workers]))
        with report.phase("tampered bundle") as p:
            p.update(tampered_bundle_run())
        with report.phase("kubelet port change") as p:
            p.update(kubelet_port_change([CONTROL_PLANE, *workers]))
        with report.phase("delete tokens") as p:
            p["deleted"] = delete_bootstrap_tokens()
        with report.phase("add node") as p:
            late_worker(add=True)
            p.update(playbook("add-worker", "playbooks/add_worker.yml", "--limit", LATE_WORKER))
            workers.append(LATE_WORKER)
            wait_ready([CONTROL_PLANE, *workers], timeout=300)
            p["verify"] = verify("verify-2", [CONTROL_PLANE, *workers])
        with report.phase("restart") as p:
            node = args.restart_node
            p["node"] = node
            restart_node(node)
            wait_ready([CONTROL_PLANE, *workers])
            p["verify"] = verify("verify-3", [CONTROL_PLANE, *workers])
        with report.phase("reset") as p:
            p.update(playbook("reset", "playbooks/reset.yml", "--limit", LATE_WORKER, "-e", "reset_confirm=yes"))
            p["node_after_reset"] = reset_state(LATE_WORKER)
            late_worker(add=False)
            workers.remove(LATE_WORKER)
            p["verify"] = verify("verify-4", [CONTROL_PLANE, *workers])
        ok = True
    except (LabError, KeyboardInterrupt) as exc:
        log(f"FAILED: {exc.args[0] if exc.args else exc}")
        text = diagnose(LOGS / "diagnostics.txt")
        print(text[-20000:])
        log(f"diagnostics saved to {LOGS / 'diagnostics.txt'}")
    finally:
        collect_versions(report)
        report.data["result"] = "passed" if ok else "failed"
        if keep():
            log("KUBELAB_KEEP set: the lab stays up (lab.py down removes it)")
        else:
            with report.phase("teardown"):
                down()
        report.save()
        print(report.table())
        log(f"report: {REPORT_FILES[1]}")
    return 0 if ok else 1


def reset_state(node: str) -> dict[str, object]:
    """What is left of Kubernetes on a node after reset.yml, and whether the cluster still lists it."""
    res = ssh(
        node,
        "test -e /etc/kubernetes/kubelet.conf && echo present || echo absent; "
        "systemctl is-active kubelet || true; "
        "docker ps -q --filter label=io.kubernetes.pod.name 2>/dev/null | wc -l",
        check=False,
    )
    lines = res.stdout.split()
    state = {
        "kubelet_conf": lines[0] if lines else "?",
        "kubelet": lines[1] if len(lines) > 1 else "?",
        "pod_containers": int(lines[2]) if len(lines) > 2 and lines[2].isdigit() else None,
        "node_object": "present" if node in node_states() else "absent",
    }
    problems = [
        k
        for k, bad in (("kubelet_conf", "present"), ("kubelet", "active"), ("node_object", "present"))
        if state[k] == bad
    ]
    if state["pod_containers"]:
        problems.append("pod_containers")
    if problems:
        raise LabError(f"{node} after reset.yml: {state} (left: {', '.join(problems)})", {"node_after_reset": state})
    log(f"reset: {node} is clean: {state}")
    return state


def lab(args: argparse.Namespace) -> int:
    report = Report("lab")
    ok = False
    try:
        with report.phase("bundle") as p:
            p.update(build_bundle() if not args.skip_build else {"builder": "skipped"})
        with report.phase("node image") as p:
            p.update(ensure_image())
        with report.phase("node creation") as p:
            p.update(up(args.nodes, image=str(p.get("tag") or image_tag())))
        with report.phase("site.yml") as p:
            p.update(playbook("site", "site.yml", timeout=T_SITE))
        with report.phase("verify") as p:
            p.update(verify("verify-1", inventory_hosts()))
        ok = True
    except (LabError, KeyboardInterrupt) as exc:
        log(f"FAILED: {exc.args[0] if exc.args else exc}")
        print(diagnose(LOGS / "diagnostics.txt")[-20000:])
    finally:
        collect_versions(report)
        report.data["result"] = "passed" if ok else "failed"
        report.save()
        print(report.table())
    if ok:
        log(
            f"the cluster is up: ssh -i {SSH_KEY} root@{NODES[CONTROL_PLANE]} kubectl get nodes; lab.py down removes it"
        )
    return 0 if ok else 1


# --------------------------------------------------------------------------- CLI


@contextlib.contextmanager
def lab_lock(cmd: str) -> Iterator[None]:
    """One lab.py at a time may create or remove lab nodes (another's `up` would remove ours)."""
    if cmd not in ("up", "down", "lab", "e2e"):
        yield
        return
    with (STATE / "lab.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(f"another lab.py run holds {STATE / 'lab.lock'}; wait for it or stop it") from None
        fh.write(f"{os.getpid()} {cmd}\n")
        fh.flush()
        yield


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_image(args: argparse.Namespace) -> None:
    t = time.monotonic()
    info = ensure_image(force=args.force)
    log(f"image: {info['tag']} ({'cached' if info['cached'] else 'built'}) in {time.monotonic() - t:.1f} s")


def cmd_up(args: argparse.Namespace) -> None:
    t = time.monotonic()
    up(args.count)
    log(f"up: {time.monotonic() - t:.1f} s")


def cmd_status(_args: argparse.Namespace) -> None:
    fmt = 'table {{.Names}}\t{{.Status}}\t{{.Label "kubelab.node"}}\t{{.Image}}'
    print(docker("ps", "-a", "--filter", f"label={LABEL}", "--format", fmt))
    for node in running_nodes():
        print(f"{node}: {NODES[node]}  ssh -i {SSH_KEY} -o UserKnownHostsFile={KNOWN_HOSTS} root@{NODES[node]}")


def cmd_verify(args: argparse.Namespace) -> None:
    verify("verify", [n for n in args.nodes.split(",") if n] or inventory_hosts())


COMMANDS = {
    "image": cmd_image,
    "up": cmd_up,
    "down": lambda _a: down() and None,
    "status": cmd_status,
    "check": lambda _a: check() and None,
    "late-worker": lambda a: late_worker(a.action == "add"),
    "verify": cmd_verify,
    "diagnose": lambda _a: print(diagnose(LOGS / "diagnostics.txt")),
    "lab": lab,
    "e2e": e2e,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lab.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("image", help="build the node image (cached by recipe)")
    p.add_argument("--force", action="store_true", help="rebuild even when cached")
    p = sub.add_parser("up", help="start N node containers (default 3)")
    p.add_argument("count", nargs="?", type=int, default=3)
    sub.add_parser("down", help="remove everything carrying the lab label")
    sub.add_parser("status", help="list the lab's nodes")
    sub.add_parser("check", help="systemd, SSH, ansible ping, no route out on every running node")
    p = sub.add_parser("late-worker", help="put node3 into (or take it out of) the workers group")
    p.add_argument("action", choices=("add", "remove"))
    p = sub.add_parser("verify", help="the shared testinfra checks against inventories/local")
    p.add_argument("--nodes", default="", help="comma list of expected nodes (default: the inventory's)")
    sub.add_parser("diagnose", help="journal, docker ps, kubectl output of every node")
    p = sub.add_parser("lab", help="bundle, image, nodes, site.yml, verify; keep the cluster")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--skip-build", action="store_true", help="use the bundle as it is")
    p = sub.add_parser("e2e", help="the whole end-to-end run with its report")
    p.add_argument("--skip-build", action="store_true", help="use the bundle as it is")
    p.add_argument("--restart-node", default="node2", choices=sorted(NODES))
    args = parser.parse_args(argv)

    STATE.mkdir(parents=True, exist_ok=True)
    # A CI timeout or `kill` ends the run like Ctrl-C: diagnostics and teardown still happen.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.cmd != "late-worker" and run(["docker", "info"], check=False, timeout=30).returncode != 0:
            raise LabError("the host's Docker Engine does not answer: run `bash tests/lab/host-docker.sh` first")
        with lab_lock(args.cmd):
            return int(COMMANDS[args.cmd](args) or 0)
    except LabError as exc:
        log(f"ERROR: {exc.args[0]}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
