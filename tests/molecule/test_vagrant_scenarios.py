"""Checks of the VM scenarios (molecule/vagrant, molecule/vagrant-offline) that need no VM.

The scenarios use molecule's own vagrant driver (molecule-plugins[vagrant]); nothing here stands in
for a program. Every check runs the real tools, on this machine, without starting a VM:

* `molecule syntax` and `molecule list` of both scenarios with the real driver loaded, and the
  inventory molecule writes (groups, the cluster_* variables, the MOLECULE_* overrides);
* ansible-lint (production profile) and yamllint on the scenario files;
* the driver's own create.yml / destroy.yml resolve its `vagrant` module only through the
  ANSIBLE_LIBRARY export docs/virtualbox.md gives (molecule 26 no longer adds it);
* `molecule destroy` with no VM: the driver renders its Vagrantfile from the scenario's platforms,
  has Debian's real `vagrant validate` check it (with vagrant-libvirt's validator for the libvirt
  provider), asks `vagrant status` and destroys nothing. The rendered Vagrantfile is then read:
  the provider chosen by MOLECULE_VAGRANT_PROVIDER, addresses, CPUs, memory, box, provider blocks.
  VirtualBox is not packaged for Debian 12, so Vagrant's VirtualBox validator cannot run here;
  for that provider the file is only rendered and loaded;
* prepare.yml's address checks: the localhost play through `molecule prepare` (it stops before any
  VM is contacted), the node play against interfaces set up in a network namespace of our own;
* the offline firewall of vagrant-offline/prepare.yml: rendered with its own variables, loaded into a
  network namespace this test creates (veth pair inside it, nothing leaves it), where a packet to
  VirtualBox's NAT gateway is refused and packets to the host-only and pod networks are not; then the
  scenario's own verifier tests (vagrant-offline/tests/test_offline.py) run against that ruleset.

Creating, converging, verifying and destroying real VMs is `molecule test`, not this file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import molecule_plugins.vagrant
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SCENARIOS = ("vagrant", "vagrant-offline")
VAGRANT_DIR = REPO / "molecule" / "vagrant"
OFFLINE_DIR = REPO / "molecule" / "vagrant-offline"
DOCS = REPO / "docs" / "virtualbox.md"


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.skip(f"{name} is not installed (make setup installs it)")
    return path


def _driver_dir() -> Path:
    """molecule-plugins' vagrant driver package (its playbooks/ and modules/)."""
    return Path(molecule_plugins.vagrant.__file__).parent


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLECULE_", "ANSIBLE_", "VAGRANT_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        MOLECULE_GLOB="molecule/*/molecule.yml",
        MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "ephemeral"),
        ANSIBLE_LIBRARY=str(_driver_dir() / "modules"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_FORCE_COLOR="false",
        NO_COLOR="1",
        VAGRANT_HOME=str(tmp_path / "vagrant-home"),
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
    )
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _out(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def _need_vagrant_libvirt(env: dict[str, str]) -> None:
    plugins = _run([_tool("vagrant"), "plugin", "list"], env, timeout=180)
    if "vagrant-libvirt" not in plugins.stdout:
        pytest.skip("the vagrant-libvirt plugin is not installed (Debian: apt-get install vagrant-libvirt)")


def _inventory(env: dict[str, str]) -> dict:
    inventory = Path(env["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    result = _run([_tool("ansible-inventory"), "-i", str(inventory), "--list"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- molecule with the real driver --------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_syntax_and_the_inventory_it_writes(scenario, tmp_path):
    env = _base_env(tmp_path)
    env.update(
        MOLECULE_CP_ADDRESS="192.168.60.18", MOLECULE_WORKER_ADDRESS="192.168.60.19", MOLECULE_K8S_VERSION="1.35.2"
    )
    env["MOLECULE_BUNDLE_DIR"] = str(tmp_path / "bundle")
    env["MOLECULE_VAGRANT_PARALLEL"] = "false"
    result = _run([_tool("molecule"), "syntax", "-s", scenario], env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    # The interpolated config molecule hands the driver's playbooks (molecule_yml).
    config = yaml.safe_load((Path(env["MOLECULE_EPHEMERAL_DIRECTORY"]) / "molecule.yml").read_text())
    assert config["driver"]["name"] == "vagrant"
    assert config["driver"]["provider"] == {"name": "virtualbox"}
    assert config["driver"]["parallel"] is False
    assert [p["name"] for p in config["platforms"]] == ["node4", "node5"]
    assert [p["interfaces"][0]["ip"] for p in config["platforms"]] == ["192.168.60.18", "192.168.60.19"]

    inventory = _inventory(env)
    assert inventory["control_plane"]["hosts"] == ["node4"]
    assert inventory["workers"]["hosts"] == ["node5"]
    assert set(inventory["k8s_cluster"]["children"]) >= {"control_plane", "workers"}
    node4 = inventory["_meta"]["hostvars"]["node4"]
    node5 = inventory["_meta"]["hostvars"]["node5"]
    assert node4["cluster_node_address"] == "192.168.60.18"
    assert node5["cluster_node_address"] == "192.168.60.19"
    assert node4["ansible_become"] is True
    assert node4["cluster_kubernetes_version"] == "1.35.2"
    assert node4["molecule_vagrant_provider"] == "virtualbox"
    if scenario == "vagrant":
        assert node4["cluster_install_source"] == "online"
    else:
        assert node4["cluster_install_source"] == "bundle"
        assert node4["cluster_bundle_dir"] == env["MOLECULE_BUNDLE_DIR"]
        assert node4["cluster_load_test_images"] is True


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_list_names_the_vagrant_driver(scenario, tmp_path):
    result = _run([_tool("molecule"), "list", "-s", scenario, "-f", "plain"], _base_env(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("node")]
    assert rows == [
        ["node4", "vagrant", "ansible", scenario, "false", "false"],
        ["node5", "vagrant", "ansible", scenario, "false", "false"],
    ]


def test_ansible_lint_production_and_yamllint(tmp_path):
    ansible_lint = _tool("ansible-lint")
    yamllint = _tool("yamllint")
    paths = ["molecule/vagrant", "molecule/vagrant-offline"]
    result = _run([yamllint, "-s", *paths], _base_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run([ansible_lint, "--profile", "production", "--strict", *paths], _base_env(tmp_path))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]


# --- the driver's module path --------------------------------------------------------------------------


def test_documented_ansible_library_export_is_the_driver_module_dir(tmp_path):
    """docs/virtualbox.md's `export ANSIBLE_LIBRARY=...` line, run by bash, names the driver's modules/."""
    lines = [
        line.strip() for line in DOCS.read_text().splitlines() if line.strip().startswith("export ANSIBLE_LIBRARY=")
    ]
    assert len(lines) == 1, lines
    env = _base_env(tmp_path)
    del env["ANSIBLE_LIBRARY"]
    result = _run(["bash", "-c", f'{lines[0]} && printf %s "$ANSIBLE_LIBRARY"'], env)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout) == _driver_dir() / "modules"
    assert (Path(result.stdout) / "vagrant.py").is_file()


@pytest.mark.parametrize("playbook", ["create.yml", "destroy.yml"])
def test_driver_playbooks_find_the_vagrant_module_only_through_ansible_library(playbook, tmp_path):
    path = _driver_dir() / "playbooks" / playbook
    argv = [_tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", str(path)]
    env = _base_env(tmp_path)
    result = _run(argv, env)
    assert result.returncode == 0, result.stdout + result.stderr
    del env["ANSIBLE_LIBRARY"]
    result = _run(argv, env)
    assert result.returncode != 0
    assert "couldn't resolve module/action 'vagrant'" in _out(result)


# --- the Vagrantfile the driver renders, checked by the real vagrant -----------------------------------


def _destroy_without_vms(scenario: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return _run([_tool("molecule"), "destroy", "-s", scenario], env, timeout=900)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_destroy_renders_and_validates_the_libvirt_vagrantfile(scenario, tmp_path):
    env = _base_env(tmp_path)
    _need_vagrant_libvirt(env)
    env.update(
        MOLECULE_VAGRANT_PROVIDER="libvirt",
        MOLECULE_LIBVIRT_DRIVER="qemu",
        MOLECULE_LIBVIRT_MANAGEMENT_NETWORK_MODE="none",
        MOLECULE_BOX="kubelab/debian12",
        MOLECULE_BOX_VERSION="0.3.1",
        MOLECULE_CP_ADDRESS="192.168.60.18",
        MOLECULE_WORKER_ADDRESS="192.168.60.19",
        MOLECULE_NETMASK="255.255.252.0",
        MOLECULE_VM_CPUS="3",
        MOLECULE_VM_MEMORY="4096",
        MOLECULE_VM_BOOT_TIMEOUT="1500",
        MOLECULE_VAGRANT_PARALLEL="false",
    )
    result = _destroy_without_vms(scenario, env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "destroy: Executed: Successful" in _out(result)

    ephemeral = Path(env["MOLECULE_EPHEMERAL_DIRECTORY"])
    vagrantfile = (ephemeral / "Vagrantfile").read_text()
    for node, address in (("node4", "192.168.60.18"), ("node5", "192.168.60.19")):
        block = vagrantfile.split(f'config.vm.define "{node}" do |c|', 1)[1].split("config.vm.define", 1)[0]
        lines = [line.strip() for line in block.splitlines()]
        assert 'c.vm.box = "kubelab/debian12"' in lines
        assert 'c.vm.box_version = "0.3.1"' in lines
        assert f'c.vm.hostname = "{node}"' in lines
        assert 'c.vm.synced_folder ".", "/vagrant", disabled: true' in lines
        assert (
            f'c.vm.network "private_network", ip: "{address}", libvirt__forward_mode: "none", netmask: "255.255.252.0"'
            in lines
        )
        assert 'c.vm.provider "libvirt" do |libvirt, override|' in lines
        assert "libvirt.memory = 4096" in lines
        assert "libvirt.cpus = 3" in lines
        assert 'c.vm.provider "libvirt" do |lv| lv.driver = "qemu"; lv.management_network_mode = "none" end' in lines
        assert 'c.vm.provider "virtualbox" do |vb| vb.customize ["modifyvm", :id, "--natnet1", "default"] end' in lines
        assert "c.vm.boot_timeout = 1500" in lines
        assert not any(line.startswith("virtualbox.") for line in lines)

    # The project the driver left is a real Vagrant project: validated, both machines known, none created.
    venv = {**env, "VAGRANT_CWD": str(ephemeral), "VAGRANT_DEFAULT_PROVIDER": "libvirt"}
    validate = _run([_tool("vagrant"), "validate"], venv, cwd=ephemeral, timeout=180)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    status = _run([_tool("vagrant"), "status", "--machine-readable"], venv, cwd=ephemeral, timeout=180)
    assert status.returncode == 0, status.stderr
    states = [line.split(",")[1:4] for line in status.stdout.splitlines() if ",state," in line]
    assert states == [["node4", "state", "not_created"], ["node5", "state", "not_created"]]
    providers = [line.split(",")[3] for line in status.stdout.splitlines() if ",provider-name," in line]
    assert providers == ["libvirt", "libvirt"]


def test_destroy_fails_when_vagrant_rejects_the_rendered_vagrantfile(tmp_path):
    """The validation above can fail: a memory that is not a number breaks the Vagrantfile."""
    env = _base_env(tmp_path)
    _need_vagrant_libvirt(env)
    env.update(MOLECULE_VAGRANT_PROVIDER="libvirt", MOLECULE_VM_MEMORY="lots")
    result = _destroy_without_vms("vagrant", env)
    assert result.returncode != 0
    out = _out(result)
    assert "Failed to validate generated Vagrantfile" in out
    assert "lots" in out


def test_destroy_renders_the_virtualbox_vagrantfile(tmp_path):
    """The default provider. No VirtualBox here: Vagrant loads the file, its VirtualBox validator cannot run."""
    env = _base_env(tmp_path)
    env["MOLECULE_NAT_NETWORK"] = "10.254.0.0/24"
    result = _destroy_without_vms("vagrant", env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    vagrantfile = (Path(env["MOLECULE_EPHEMERAL_DIRECTORY"]) / "Vagrantfile").read_text()
    lines = [line.strip() for line in vagrantfile.splitlines()]
    assert lines.count('c.vm.provider "virtualbox" do |virtualbox, override|') == 2
    assert lines.count("virtualbox.memory = 3072") == 2
    assert lines.count("virtualbox.cpus = 2") == 2
    assert lines.count("virtualbox.linked_clone = true") == 2
    assert lines.count("c.vm.boot_timeout = 600") == 2
    assert lines.count('c.vm.box = "debian/bookworm64"') == 2
    assert not any(line.startswith("c.vm.box_version") for line in lines)
    natnet = 'c.vm.provider "virtualbox" do |vb| vb.customize ["modifyvm", :id, "--natnet1", "10.254.0.0/24"] end'
    assert lines.count(natnet) == 2
    for address in ("192.168.56.8", "192.168.56.9"):
        net = (
            f'c.vm.network "private_network", ip: "{address}", libvirt__forward_mode: "none", netmask: "255.255.255.0"'
        )
        assert net in lines
    assert not any(line.startswith("libvirt.") for line in lines)


# --- prepare.yml's address checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        ("same-address", {"MOLECULE_WORKER_ADDRESS": "192.168.56.8"}, "Two VMs share a cluster address"),
        (
            "virtualbox-nat",
            {"MOLECULE_CP_ADDRESS": "10.0.2.8", "MOLECULE_WORKER_ADDRESS": "10.0.2.9"},
            "10.0.2.8 lies in 10.0.2.0/24, the network of VirtualBox's NAT adapter",
        ),
        (
            "moved-nat",
            {"MOLECULE_CP_ADDRESS": "10.254.0.8", "MOLECULE_NAT_NETWORK": "10.254.0.0/24"},
            "10.254.0.8 lies in 10.254.0.0/24, the network of VirtualBox's NAT adapter",
        ),
    ],
)
def test_prepare_refuses_bad_addresses_before_contacting_a_vm(case, overrides, message, tmp_path):
    env = {**_base_env(tmp_path), **overrides}
    result = _run([_tool("molecule"), "prepare", "-s", "vagrant"], env)
    out = _out(result)
    assert result.returncode != 0, f"{case}: prepare passed"
    assert message in out, result.stdout[-4000:]
    assert "Wait until Ansible can log in" not in out, f"{case}: prepare went on to the VMs"


def test_offline_prepare_requires_the_bundle_before_contacting_a_vm(tmp_path):
    env = {**_base_env(tmp_path), "MOLECULE_BUNDLE_DIR": str(tmp_path / "no-bundle-here")}
    result = _run([_tool("molecule"), "prepare", "-s", "vagrant-offline"], env)
    out = _out(result)
    assert result.returncode != 0
    assert "Set MOLECULE_BUNDLE_DIR to the absolute path of an offline bundle" in out, result.stdout[-4000:]
    assert "Wait until Ansible can log in" not in out


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "MOLECULE_VAGRANT_PROVIDER": "libvirt",
            "MOLECULE_CP_ADDRESS": "10.0.2.8",
            "MOLECULE_WORKER_ADDRESS": "10.0.2.9",
        },
        {
            "MOLECULE_NAT_NETWORK": "10.254.0.0/24",
            "MOLECULE_CP_ADDRESS": "10.0.2.8",
            "MOLECULE_WORKER_ADDRESS": "10.0.2.9",
        },
    ],
    ids=["defaults", "libvirt-has-no-virtualbox-nat", "nat-moved"],
)
def test_prepare_accepts_good_addresses(overrides, tmp_path):
    env = {**_base_env(tmp_path), **overrides}
    result = _run([_tool("molecule"), "syntax", "-s", "vagrant"], env)  # writes the scenario's inventory
    assert result.returncode == 0, result.stdout[-3000:]
    inventory = Path(env["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    # Only the localhost play: the node play would wait for VMs that do not exist. An explicit
    # localhost (the implicit one does not match --limit) with the scenario's inventory.
    playbook = str(VAGRANT_DIR / "prepare.yml")
    argv = [_tool("ansible-playbook"), "-i", str(inventory), "-i", "localhost,", "--limit", "localhost", playbook]
    result = _run(argv, env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=0\s+unreachable=0\s+failed=0\s+skipped=(\d+)", result.stdout)
    assert recap, result.stdout[-3000:]
    nat_check_ran = overrides.get("MOLECULE_VAGRANT_PROVIDER", "virtualbox") == "virtualbox"
    assert recap.groups() == (("2", "0") if nat_check_ran else ("1", "1")), result.stdout[-3000:]


def _unshare(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        # A mount namespace too, with its own /sys: network facts read /sys/class/net.
        [_tool("unshare"), "--net", "--mount", "sh", "-c", f"mount -t sysfs sysfs /sys\n{script}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
        env=_base_env(tmp_path),
    )
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"cannot create a network namespace here: {result.stderr.strip()}")
    return result


@pytest.mark.parametrize(
    ("addresses", "cluster_address", "message"),
    [
        (("10.0.2.15/24", "192.168.56.8/24"), "192.168.56.8", None),
        (("10.0.2.15/24", "10.0.2.8/24"), "10.0.2.8", "shares its network with 10.0.2.15/24 on v0"),
        (("192.168.121.30/24", "192.168.120.8/21"), "192.168.120.8", "shares its network with 192.168.121.30/24 on v0"),
        (("10.0.2.15/24", "192.168.56.8/24"), "192.168.56.99", "The cluster address 192.168.56.99 is not configured"),
    ],
    ids=["own-network", "virtualbox-nat-clash", "libvirt-management-clash", "address-missing"],
)
def test_prepare_node_check_reads_the_interfaces(addresses, cluster_address, message, tmp_path):
    """The node play of prepare.yml (tag checks) on a 'VM' made of a namespace with two interfaces."""
    (tmp_path / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {"vars": {"molecule_vagrant_provider": "libvirt"}},
                "k8s_cluster": {
                    "hosts": {
                        "node4": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "cluster_node_address": cluster_address,
                        }
                    }
                },
            }
        )
    )
    script = f"""
        set -e
        ip link set lo up
        ip link add v0 type veth peer name v1
        ip addr add {addresses[0]} dev v0
        ip addr add {addresses[1]} dev v1
        ip link set v0 up
        ip link set v1 up
        {_tool("ansible-playbook")} -i {tmp_path / "inventory.yml"} --tags checks {VAGRANT_DIR / "prepare.yml"}
    """
    result = _unshare(tmp_path, script)
    out = _out(result)
    assert "Fail when another interface of the VM is on the cluster address's network" in out, out[-3000:]
    if message is None:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert re.search(r"node4\s+: ok=2 ", result.stdout), result.stdout[-3000:]
    else:
        assert result.returncode != 0
        assert message in out, result.stdout[-4000:]


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
    result = _unshare(tmp_path, script)
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
