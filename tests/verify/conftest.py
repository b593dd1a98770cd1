"""Shared checks of a running kubelab cluster, driven by an Ansible inventory.

The same tests run against the container lab (tests/lab: inventories/local) and against the
VirtualBox machines of the molecule scenario (its inventory): everything comes from the inventory -
the groups `control_plane` and `workers` (children of `k8s_cluster`), the hosts' connection settings
and the `cluster_*` variables (ports, static pod path). Each node is reached with testinfra's
ansible backend, i.e. over SSH exactly as Ansible does.

    pytest tests/verify --ansible-inventory=inventories/local [--kubelab-nodes=node1,node2]

`--kubelab-nodes` (or KUBELAB_NODES) names the nodes the cluster must consist of right now, by
default every host of `k8s_cluster`. Node names are the inventory hostnames.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"

# Defaults of the cluster_* variables, read from their one source (docs/cluster-variables.md).
_CLUSTER_SPEC = Path(__file__).resolve().parents[2] / "playbooks" / "vars" / "cluster_spec.yml"
DEFAULTS: dict[str, Any] = {
    name: option.get("default")
    for name, option in yaml.safe_load(_CLUSTER_SPEC.read_text())["argument_specs"]["cluster"]["options"].items()
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubelab-nodes",
        dest="kubelab_nodes",
        default=os.environ.get("KUBELAB_NODES", ""),
        help="comma-separated nodes the cluster must consist of (default: every host of k8s_cluster)",
    )
    parser.addoption(
        "--kubelab-set",
        dest="kubelab_set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a cluster_* value the last run was given with -e (overrides the inventory's; repeatable)",
    )


@dataclass
class Cluster:
    """The cluster as the inventory describes it."""

    inventory: str
    control_plane: list[str]
    workers: list[str]
    nodes: list[str]
    overrides: dict[str, str] = field(default_factory=dict)
    _hosts: dict[str, testinfra.host.Host] = field(default_factory=dict)

    def host(self, name: str) -> testinfra.host.Host:
        if name not in self._hosts:
            self._hosts[name] = testinfra.get_host(f"ansible://{name}", ansible_inventory=self.inventory)
        return self._hosts[name]

    @property
    def cp(self) -> testinfra.host.Host:
        return self.host(self.control_plane[0])

    def var(self, name: str, node: str | None = None) -> Any:
        """A cluster_* variable as the inventory sets it for `node` (or the control plane), or --kubelab-set."""
        if name in self.overrides:
            return self.overrides[name]
        value = self.host(node or self.control_plane[0]).ansible.get_variables().get(name, DEFAULTS.get(name))
        if isinstance(value, str) and "{{" in value:
            pytest.skip(f"{name} is templated in the inventory ({value!r}); these checks read plain values")
        return value

    def kubectl(self, args: str, *, check: bool = True) -> str:
        cmd = self.cp.run(f"kubectl --kubeconfig {ADMIN_KUBECONFIG} {args}")
        if check and cmd.rc != 0:
            raise AssertionError(f"kubectl {args} failed (rc {cmd.rc}): {cmd.stderr.strip() or cmd.stdout.strip()}")
        return cmd.stdout

    def kubectl_json(self, args: str) -> Any:
        return json.loads(self.kubectl(f"{args} -o json"))

    def wait(self, what: str, probe, timeout: float = 180, interval: float = 3) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            last = value
            time.sleep(interval)
        raise AssertionError(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")


def _tools_on_path() -> None:
    """testinfra runs `ansible-inventory` from PATH: find it beside this Python (a venv) if needed."""
    if shutil.which("ansible-inventory") is None:
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _inventory(config: pytest.Config) -> str:
    inventory = config.getoption("ansible_inventory")
    if not inventory:
        raise pytest.UsageError("tests/verify needs --ansible-inventory=<inventory> (e.g. inventories/local)")
    return inventory


def _cluster(config: pytest.Config) -> Cluster:
    cached = getattr(config, "_kubelab_cluster", None)
    if cached is not None:
        return cached
    inventory = _inventory(config)
    _tools_on_path()
    runner = AnsibleRunner(inventory)
    control_plane = sorted(runner.get_hosts("control_plane"))
    workers = sorted(runner.get_hosts("workers"))
    if not control_plane:
        raise pytest.UsageError(f"inventory {inventory} has no host in the group control_plane")
    wanted = [n for n in config.getoption("kubelab_nodes").split(",") if n]
    nodes = wanted or sorted(runner.get_hosts("k8s_cluster")) or sorted({*control_plane, *workers})
    unknown = sorted(set(nodes) - set(control_plane) - set(workers))
    if unknown:
        raise pytest.UsageError(f"--kubelab-nodes names {unknown}, which are in neither control_plane nor workers")
    overrides = {}
    for item in config.getoption("kubelab_set"):
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("cluster_"):
            raise pytest.UsageError(f"--kubelab-set takes cluster_NAME=VALUE, got {item!r}")
        overrides[name] = value
    cluster = Cluster(inventory, control_plane, [w for w in workers if w in nodes], nodes, overrides)
    config._kubelab_cluster = cluster  # type: ignore[attr-defined]
    return cluster


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`node` = every expected node, `worker` = every expected worker (ids = inventory hostnames)."""
    if "node" in metafunc.fixturenames:
        metafunc.parametrize("node", _cluster(metafunc.config).nodes)
    if "worker" in metafunc.fixturenames:
        metafunc.parametrize("worker", _cluster(metafunc.config).workers)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return _cluster(request.config)


@pytest.fixture
def node_host(cluster: Cluster, node: str) -> testinfra.host.Host:
    return cluster.host(node)
