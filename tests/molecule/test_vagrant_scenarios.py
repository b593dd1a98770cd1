"""Checks of the VirtualBox scenarios (molecule/vagrant, molecule/vagrant-offline) that can run here.

No VirtualBox and no Vagrant box exist on this machine, so no VM is started. What is checked, for real:

* `molecule syntax` of both scenarios (the collection's site.yml resolves through converge.yml);
* ansible-lint (production profile) and yamllint on the scenario files;
* the Vagrantfile, with Debian's real `vagrant`: `vagrant validate` runs Vagrant's config validators
  of the libvirt provider and, with a `VBoxManage` that only answers `--version`, of the VirtualBox one;
* create.yml / destroy.yml through molecule itself, against a stand-in for the `vagrant` CLI
  (tests/molecule/fake_vagrant.py: Vagrant's real output formats, no VM) and SSH banners on
  127.0.0.8/127.0.0.9: the commands run, the instance config and the inventory molecule builds from
  it, and the refusals (NAT collision, missing box, missing bundle) before any `vagrant up`;
* the offline firewall of vagrant-offline/prepare.yml: rendered with its own variables, loaded into a
  network namespace this test creates (veth pair inside it, nothing leaves it), where a packet to
  VirtualBox's NAT gateway is refused and packets to the host-only and pod networks are not; then the
  scenario's own verifier tests (vagrant-offline/tests/test_offline.py) run against that ruleset.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SCENARIOS = ("vagrant", "vagrant-offline")
VAGRANT_DIR = REPO / "molecule" / "vagrant"
OFFLINE_DIR = REPO / "molecule" / "vagrant-offline"
FAKE_VAGRANT = Path(__file__).with_name("fake_vagrant.py")
LOOPBACK_NODES = {"node4": "127.0.0.8", "node5": "127.0.0.9"}


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.skip(f"{name} is not installed (make setup installs it)")
    return path


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLECULE_", "ANSIBLE_", "VAGRANT_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        MOLECULE_GLOB="molecule/*/molecule.yml",
        MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "ephemeral"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_FORCE_COLOR="false",
        NO_COLOR="1",
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
    )
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


# --- static checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_syntax(scenario, tmp_path):
    molecule = _tool("molecule")
    result = _run([molecule, "syntax", "-s", scenario], _base_env(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_ansible_lint_production_and_yamllint(tmp_path):
    ansible_lint = _tool("ansible-lint")
    yamllint = _tool("yamllint")
    paths = ["molecule/vagrant", "molecule/vagrant-offline"]
    result = _run([yamllint, "-s", *paths], _base_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run([ansible_lint, "--profile", "production", "--strict", *paths], _base_env(tmp_path))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]


# --- the Vagrantfile, with the real vagrant ---------------------------------------------------------


def _vagrant_project(tmp_path: Path, **overrides) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(VAGRANT_DIR / "Vagrantfile", project / "Vagrantfile")
    settings = {
        "prefix": "kubelab-vagrant",
        "netmask": "255.255.255.0",
        "nat_network": "",
        "linked_clone": True,
        "nodes": [
            {
                "name": "node4",
                "box": "debian/bookworm64",
                "box_version": None,
                "address": "192.168.56.8",
                "cpus": 2,
                "memory": 3072,
            },
            {
                "name": "node5",
                "box": "generic/rocky9",
                "box_version": "4.3.12",
                "address": "192.168.56.9",
                "cpus": 2,
                "memory": 3072,
            },
        ],
    }
    settings.update(overrides)
    (project / "molecule-vagrant.json").write_text(json.dumps(settings))
    return project


def _vagrant_env(tmp_path: Path, project: Path, provider: str) -> dict[str, str]:
    env = _base_env(tmp_path)
    env.update(VAGRANT_CWD=str(project), VAGRANT_HOME=str(tmp_path / "vagrant-home"), VAGRANT_DEFAULT_PROVIDER=provider)
    if provider == "virtualbox" and shutil.which("VBoxManage") is None:
        # Vagrant only runs the VirtualBox config validator when the provider looks usable.
        fakebin = tmp_path / "vbox-bin"
        fakebin.mkdir()
        stub = fakebin / "VBoxManage"
        stub.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo 7.0.20r163906; exit 0; }\nexit 1\n')
        stub.chmod(0o755)
        env["PATH"] = f"{fakebin}{os.pathsep}{env['PATH']}"
    return env


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
@pytest.mark.parametrize("nat_network", ["", "10.254.0.0/24"])
def test_vagrantfile_validates(provider, nat_network, tmp_path):
    vagrant = _tool("vagrant")
    if provider == "libvirt":
        plugins = _run([vagrant, "plugin", "list"], _vagrant_env(tmp_path, tmp_path, provider))
        if "vagrant-libvirt" not in plugins.stdout:
            pytest.skip("the vagrant-libvirt plugin is not installed")
    project = _vagrant_project(tmp_path, nat_network=nat_network)
    env = _vagrant_env(tmp_path, project, provider)
    result = _run([vagrant, "validate"], env, cwd=project, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout

    status = _run([vagrant, "status", "--machine-readable"], env, cwd=project, timeout=180)
    if provider == "libvirt":  # VirtualBox's status would need the real VBoxManage
        assert status.returncode == 0, status.stderr
        states = [line.split(",")[1:4] for line in status.stdout.splitlines() if ",state," in line]
        assert states == [["node4", "state", "not_created"], ["node5", "state", "not_created"]]


def test_vagrantfile_validator_catches_a_bad_setting(tmp_path):
    """The validation above can fail: a misspelt provider setting is reported."""
    vagrant = _tool("vagrant")
    project = _vagrant_project(tmp_path)
    text = (project / "Vagrantfile").read_text()
    assert "vb.linked_clone =" in text
    (project / "Vagrantfile").write_text(text.replace("vb.linked_clone =", "vb.linked_clones ="))
    result = _run([vagrant, "validate"], _vagrant_env(tmp_path, project, "virtualbox"), cwd=project, timeout=180)
    assert result.returncode != 0
    assert "linked_clones" in result.stdout + result.stderr


def test_vagrantfile_without_settings_says_how_to_run_it(tmp_path):
    vagrant = _tool("vagrant")
    project = _vagrant_project(tmp_path)
    (project / "molecule-vagrant.json").unlink()
    result = _run([vagrant, "validate"], _vagrant_env(tmp_path, project, "virtualbox"), cwd=project, timeout=180)
    assert result.returncode != 0
    assert "molecule create -s vagrant" in result.stdout + result.stderr


# --- create.yml / destroy.yml through molecule ---------------------------------------------------------


@pytest.fixture
def ssh_banners():
    """Answer like sshd on 127.0.0.8:22 and 127.0.0.9:22 (create.yml waits for `OpenSSH` there)."""
    servers = []
    for address in LOOPBACK_NODES.values():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, 22))
        except OSError as exc:
            sock.close()
            for s in servers:
                s.close()
            pytest.skip(f"cannot listen on {address}:22 ({exc}); needs root and a free port 22 on loopback")
        sock.listen(8)
        servers.append(sock)

    def serve(sock):
        while True:
            try:
                conn, _peer = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")

    for sock in servers:
        threading.Thread(target=serve, args=(sock,), daemon=True).start()
    yield
    for sock in servers:
        # shutdown() wakes the thread blocked in accept(); close() alone would leave the port bound.
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.fixture
def fake_vagrant_env(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "vagrant"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_VAGRANT}" "$@"\n')
    shim.chmod(0o755)
    vbox = bindir / "VBoxManage"
    vbox.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo 7.0.20r163906; exit 0; }\nexit 1\n')
    vbox.chmod(0o755)
    base = tmp_path / "create-only.yml"
    # `molecule create` would also run prepare (SSH into the VMs): keep to the create step here.
    base.write_text("---\nscenario:\n  create_sequence: [create]\n")
    env = _base_env(tmp_path)
    env.update(
        PATH=f"{bindir}{os.pathsep}{env['PATH']}",
        FAKE_VAGRANT_LOG=str(tmp_path / "vagrant-calls.jsonl"),
        FAKE_VAGRANT_BOXES="debian/bookworm64:virtualbox generic/rocky9:virtualbox",
        MOLECULE_CP_ADDRESS=LOOPBACK_NODES["node4"],
        MOLECULE_WORKER_ADDRESS=LOOPBACK_NODES["node5"],
    )
    env["_BASE_CONFIG"] = str(base)
    return env


def _vagrant_calls(env: dict[str, str]) -> list[list[str]]:
    log = Path(env["FAKE_VAGRANT_LOG"])
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []


def _molecule(env: dict[str, str], action: str, scenario: str = "vagrant") -> subprocess.CompletedProcess:
    return _run([_tool("molecule"), "-c", env["_BASE_CONFIG"], action, "-s", scenario], env)


def test_create_then_destroy_drive_the_vagrant_cli(fake_vagrant_env, ssh_banners, tmp_path):
    env = fake_vagrant_env
    ephemeral = Path(env["MOLECULE_EPHEMERAL_DIRECTORY"])

    result = _molecule(env, "create")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    calls = _vagrant_calls(env)
    assert calls == [
        ["--version"],
        ["box", "list", "--machine-readable"],
        ["status", "--machine-readable"],
        ["up", "--provider=virtualbox", "--no-provision"],
        ["ssh-config", "node4"],
        ["ssh-config", "node5"],
    ]

    project = ephemeral / "vagrant"
    settings = json.loads((project / "molecule-vagrant.json").read_text())
    assert [(n["name"], n["address"], n["box"], n["cpus"], n["memory"]) for n in settings["nodes"]] == [
        ("node4", "127.0.0.8", "debian/bookworm64", 2, 3072),
        ("node5", "127.0.0.9", "debian/bookworm64", 2, 3072),
    ]
    assert settings["prefix"] == "kubelab-vagrant"
    assert (project / "Vagrantfile").read_text() == (VAGRANT_DIR / "Vagrantfile").read_text()

    instances = yaml.safe_load((ephemeral / "instance_config.yml").read_text())
    assert instances == [
        {
            "instance": name,
            "address": address,
            "port": 22,
            "user": "vagrant",
            "identity_file": str(project / ".vagrant" / "machines" / name / "virtualbox" / "private_key"),
        }
        for name, address in LOOPBACK_NODES.items()
    ]

    # A second create is skipped by molecule, and writes the inventory from the instance config.
    result = _molecule(env, "create")
    assert result.returncode == 0, result.stdout[-3000:]
    assert len(_vagrant_calls(env)) == len(calls)
    inventory = json.loads(_run([_tool("ansible-inventory"), "-i", str(ephemeral / "inventory"), "--list"], env).stdout)
    node4 = inventory["_meta"]["hostvars"]["node4"]
    assert node4["ansible_host"] == "127.0.0.8"
    assert node4["ansible_user"] == "vagrant"
    assert node4["ansible_port"] == 22
    assert node4["ansible_private_key_file"].endswith("/machines/node4/virtualbox/private_key")
    assert node4["ansible_become"] is True
    assert node4["cluster_node_address"] == "127.0.0.8"
    assert node4["cluster_install_source"] == "online"
    assert inventory["control_plane"]["hosts"] == ["node4"]
    assert inventory["workers"]["hosts"] == ["node5"]
    assert set(inventory["k8s_cluster"]["children"]) >= {"control_plane", "workers"}

    result = _molecule(env, "destroy")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert _vagrant_calls(env)[len(calls) :] == [["status", "--machine-readable"], ["destroy", "--force"]]
    assert not project.exists()


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        (
            "nat-collision",
            {"MOLECULE_CP_ADDRESS": "10.0.2.8", "MOLECULE_WORKER_ADDRESS": "10.0.2.9"},
            "lies in 10.0.2.0/24, the network of VirtualBox's NAT adapter",
        ),
        ("same-address", {"MOLECULE_WORKER_ADDRESS": "127.0.0.8"}, "Two platforms share an address"),
        ("too-small", {"MOLECULE_VM_MEMORY": "1024"}, "at least 2048 MiB"),
        ("box-missing", {"MOLECULE_BOX": "generic/debian12"}, "vagrant box add --name generic/debian12"),
        ("bad-nat-network", {"MOLECULE_NAT_NETWORK": "10.254.0.0"}, "is not an IPv4 network with a /16 to /30 prefix"),
    ],
)
def test_create_refuses_bad_input_before_any_vm(case, overrides, message, fake_vagrant_env):
    env = {**fake_vagrant_env, **overrides}
    result = _molecule(env, "create")
    assert result.returncode != 0, f"{case}: create succeeded"
    assert message in " ".join((result.stdout + result.stderr).split()), result.stdout[-4000:]
    assert not any(call[:1] == ["up"] for call in _vagrant_calls(env)), f"{case}: vagrant up ran"


def test_nat_network_moved_allows_lab_addresses(fake_vagrant_env, tmp_path):
    """With MOLECULE_NAT_NETWORK the lab's own 10.0.2.8/10.0.2.9 pass the NAT check (and reach the settings)."""
    env = {
        **fake_vagrant_env,
        "MOLECULE_CP_ADDRESS": "10.0.2.8",
        "MOLECULE_WORKER_ADDRESS": "10.0.2.9",
        "MOLECULE_NAT_NETWORK": "10.254.0.0/24",
        "FAKE_VAGRANT_BOXES": "",
    }
    result = _molecule(env, "create")
    # It stops at the next check (no box added), after the NAT check passed.
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "network of VirtualBox's NAT adapter" not in out
    assert "Box debian/bookworm64 for provider virtualbox is not added" in out


def test_offline_create_requires_the_bundle(fake_vagrant_env, tmp_path):
    env = {**fake_vagrant_env, "MOLECULE_BUNDLE_DIR": str(tmp_path / "no-bundle-here")}
    result = _molecule(env, "create", scenario="vagrant-offline")
    assert result.returncode != 0
    assert "Set MOLECULE_BUNDLE_DIR to the absolute path of an offline bundle" in " ".join(result.stdout.split())
    assert _vagrant_calls(env) == []


def test_offline_verifier_collects_its_own_and_the_shared_checks(fake_vagrant_env, ssh_banners, tmp_path):
    """molecule verify -s vagrant-offline runs test_offline.py and tests/verify against the created inventory.

    Nothing answers SSH for real here, so the tests fail at connecting; what is checked is that molecule
    hands pytest both sets, with the instance addresses, and that nothing fails before (collection, options).
    """
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    env = {**fake_vagrant_env, "MOLECULE_BUNDLE_DIR": str(bundle)}
    result = _molecule(env, "create", scenario="vagrant-offline")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    try:
        result = _run([_tool("molecule"), "verify", "-s", "vagrant-offline"], env, timeout=900)
        out = result.stdout + result.stderr
        assert result.returncode != 0, "verify passed without any VM"
        assert "collected" in out
        assert "ERROR collecting" not in out
        assert "UsageError" not in out
        assert "test_offline.py::test_outbound_and_forward_hooks_drop_by_default" in out
        assert "tests/verify/test_" in out
        assert "SshBackend" in out or "ssh" in out.lower()
    finally:
        result = _molecule(env, "destroy", scenario="vagrant-offline")
        assert result.returncode == 0, result.stdout[-3000:]


# --- the offline firewall ------------------------------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import errno, json, socket, sys
    out = {}
    for addr in sys.argv[1:]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"probe", (addr, 9))
            out[addr] = "sent"
        except PermissionError:
            out[addr] = "refused"
        except OSError as exc:
            out[addr] = errno.errorcode.get(exc.errno, str(exc))
        finally:
            s.close()
    print(json.dumps(out))
    """
)


def _render_offline_rules(tmp_path: Path) -> Path:
    """Render the nft template with prepare.yml's own variables, through ansible-playbook."""
    prepare = yaml.safe_load((OFFLINE_DIR / "prepare.yml").read_text())
    play = next(p for p in prepare if p.get("hosts") == "k8s_cluster")
    variables = dict(play["vars"])
    variables.update(cluster_node_address="192.168.56.8", molecule_vagrant_netmask="255.255.255.0")
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(variables))
    rules = tmp_path / "kubelab-offline.nft"
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render the offline rules",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars_files": [str(tmp_path / "vars.yml")],
                    "tasks": [
                        {
                            "name": "Render",
                            "ansible.builtin.template": {
                                "src": str(OFFLINE_DIR / "templates" / "kubelab-offline.nft.j2"),
                                "dest": str(rules),
                                "mode": "0644",
                            },
                        }
                    ],
                }
            ]
        )
    )
    result = _run([_tool("ansible-playbook"), str(playbook)], _base_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    return rules


def test_offline_rules_block_the_way_out(tmp_path):
    nft = _tool("nft")
    unshare = _tool("unshare")
    rules = _render_offline_rules(tmp_path)
    text = rules.read_text()
    assert "192.168.56.0/24, 10.244.0.0/16, 10.96.0.0/12" in text
    (tmp_path / "probe.py").write_text(PROBE)
    # The scenario's own verifier tests run by testinfra against the loaded rules (local connection).
    (tmp_path / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "k8s_cluster": {
                    "hosts": {
                        "node4": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "cluster_node_address": "192.168.56.8",
                        }
                    }
                },
            }
        )
    )
    # A VM's network, inside a namespace of our own: NAT 10.0.2.15 (default route via 10.0.2.2) and
    # host-only 192.168.56.8 on one end of a veth pair whose other end is in the same namespace.
    # The rules are loaded twice (prepare.yml reloads them when they change: the file must replace itself).
    script = f"""
        set -e
        ip link set lo up
        ip link add v0 type veth peer name v1
        ip addr add 10.0.2.15/24 dev v0
        ip addr add 192.168.56.8/24 dev v0
        ip link set v0 up
        ip link set v1 up
        ip route add default via 10.0.2.2
        {nft} -f {rules}
        {nft} -f {rules}
        {sys.executable} {tmp_path / "probe.py"} 10.0.2.2 10.0.2.3 192.168.56.9 10.244.1.5 10.96.0.10 127.0.0.1 \
          > {tmp_path / "probe.json"}
        {sys.executable} -m pytest -p no:cacheprovider -q --connection=ansible \
          --ansible-inventory={tmp_path / "inventory.yml"} -k "not boot" {OFFLINE_DIR / "tests" / "test_offline.py"}
    """
    result = subprocess.run(
        [unshare, "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
        env=_base_env(tmp_path),
    )
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"cannot create a network namespace here: {result.stderr.strip()}")
    probes = json.loads((tmp_path / "probe.json").read_text())
    assert probes == {
        "10.0.2.2": "refused",
        "10.0.2.3": "refused",  # VirtualBox NAT gateway and DNS: the way out
        "192.168.56.9": "sent",
        "10.244.1.5": "sent",
        "10.96.0.10": "sent",
        "127.0.0.1": "sent",
    }
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout
