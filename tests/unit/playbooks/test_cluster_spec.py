"""playbooks/vars/cluster_spec.yml, the one source of the cluster_* variables, and what is made from it.

- The generated docs (docs/cluster-variables.md, the commented part of inventories/*/group_vars/all.yml)
  must be what tests/gen_cluster_vars.py makes of the spec now: this fails when they drift.
- The spec itself is complete and its defaults pass it; the inventories we ship pass it.
- No playbook, role or inventory writes a cluster_* default a second time (`cluster_x | default(...)`).
- A role default the playbooks feed from a cluster_* variable (for a role run on its own) equals it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = Path(__file__).resolve().parents[3]
_GEN = importlib.util.spec_from_file_location("gen_cluster_vars", REPO / "tests" / "gen_cluster_vars.py")
gen = importlib.util.module_from_spec(_GEN)
_GEN.loader.exec_module(gen)

OPTIONS = gen.load_options()
TYPES = {"str", "path", "int", "bool", "list", "dict"}


@pytest.mark.parametrize("path", sorted(gen.expected(), key=str), ids=lambda p: str(p.relative_to(REPO)))
def test_generated_file_matches_the_spec(path: Path) -> None:
    want = gen.expected()[path]
    have = path.read_text() if path.exists() else ""
    assert have == want, (
        f"{path.relative_to(REPO)} differs from playbooks/vars/cluster_spec.yml: run `make vars` "
        "(python tests/gen_cluster_vars.py); `python tests/gen_cluster_vars.py --check` shows the diff"
    )


def test_check_mode_reports_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    doc = tmp_path / "cluster-variables.md"
    doc.write_text(gen.render_doc(OPTIONS) + "a line written by hand\n")
    monkeypatch.setattr(gen, "REPO", tmp_path)
    monkeypatch.setattr(gen, "DOC", doc)
    monkeypatch.setattr(gen, "INVENTORIES", [])
    assert gen.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-a line written by hand" in out
    assert "make vars" in out
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


def test_inventory_round_trip_keeps_hand_written_part_and_set_values() -> None:
    text = (
        "---\n# mine\ncluster_pod_network: none\n"
        + gen.MARKER
        + "\n# stale comment\ncluster_kubelet_healthz_port: 10249\n# cluster_cri_socket: stale\n"
    )
    out = gen.render_inventory(OPTIONS, text)
    head, tail = gen.split(out)
    assert head == "---\n# mine\ncluster_pod_network: none\n"
    assert "stale" not in tail
    assert "\ncluster_kubelet_healthz_port: 10249\n" in tail
    assert "# cluster_pod_network: flannel  # set above\n" in tail
    assert "# cluster_cri_socket: unix:///var/run/cri-dockerd.sock\n" in tail
    assert yaml.safe_load(out) == {"cluster_pod_network": "none", "cluster_kubelet_healthz_port": 10249}
    assert gen.render_inventory(OPTIONS, out) == out


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_is_complete(name: str) -> None:
    option = OPTIONS[name]
    assert option.get("type") in TYPES, f"{name}: type must be one of {sorted(TYPES)}"
    assert option.get("description"), f"{name}: needs a description"
    assert "default" in option, f"{name}: needs a default (the one place it is written)"
    assert "required" not in option, f"{name}: every cluster_* variable has a default"
    if option["type"] == "list":
        assert option.get("elements"), f"{name}: a list needs elements"
    if "choices" in option:
        assert option["default"] in option["choices"], f"{name}: the default is not one of the choices"


def test_defaults_pass_the_spec() -> None:
    result = ArgumentSpecValidator(OPTIONS).validate(gen.defaults(OPTIONS))
    assert not result.error_messages


def _inventory_values(inventory: Path) -> list[tuple[str, dict]]:
    found = []
    for path in sorted(inventory.rglob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        if path.name == "hosts.yml":
            stack = [data.get("all", {})]
            while stack:
                group = stack.pop()
                found.append((f"{path} vars", group.get("vars") or {}))
                found += [(f"{path} {h}", v or {}) for h, v in (group.get("hosts") or {}).items()]
                stack += list((group.get("children") or {}).values())
        else:
            found.append((str(path), data))
    return found


@pytest.mark.parametrize("inventory", sorted((REPO / "inventories").iterdir()), ids=lambda p: p.name)
def test_shipped_inventory_passes_the_spec(inventory: Path) -> None:
    for where, values in _inventory_values(inventory):
        cluster = {k: v for k, v in values.items() if k.startswith("cluster_")}
        unknown = sorted(set(cluster) - set(OPTIONS))
        assert not unknown, f"{where}: {unknown} are not in playbooks/vars/cluster_spec.yml"
        result = ArgumentSpecValidator(OPTIONS).validate(cluster)
        assert not result.error_messages, f"{where}: {result.error_messages}"


def test_lab_inventory_keeps_what_the_lab_needs() -> None:
    """tests/lab/lab.py reads these lines of inventories/local with a regex (plain `name: value` lines)."""
    text = (REPO / "inventories" / "local" / "group_vars" / "all.yml").read_text()
    values = yaml.safe_load(text)
    assert values["cluster_install_source"] == "bundle"
    assert values["cluster_load_test_images"] is True
    assert values["cluster_kubelet_read_only_port"] == 10255
    assert re.search(r"^cluster_bundle_dir:\s*/\S+", text, re.M)


_DEFAULTED = re.compile(r"\bcluster_[a-z0-9_]+\s*\|\s*default\(")


def test_no_cluster_default_is_written_twice() -> None:
    paths = [REPO / "site.yml"]
    for top in ("playbooks", "roles", "inventories"):
        paths += [p for p in (REPO / top).rglob("*") if p.suffix in {".yml", ".yaml", ".j2"}]
    hits = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in paths
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if _DEFAULTED.search(line)
    ]
    assert not hits, "cluster_* defaults belong in playbooks/vars/cluster_spec.yml only:\n" + "\n".join(hits)


def _role_wiring() -> list[tuple[str, str, str]]:
    """(role, role variable, cluster variable) for every `role_var: "{{ cluster_x }}"` of an import_role."""
    wires = []
    for play_file in sorted((REPO / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(play_file.read_text()) or []:
            for task in play.get("tasks", []) if isinstance(play, dict) else []:
                role = task.get("ansible.builtin.import_role") or task.get("ansible.builtin.include_role") or {}
                for var, value in (task.get("vars") or {}).items() if role else []:
                    m = re.fullmatch(r"\{\{ (cluster_[a-z0-9_]+) \}\}", str(value))
                    if m:
                        wires.append((role["name"].split(".")[-1], var, m.group(1)))
    return wires


def test_playbooks_hand_cluster_variables_to_roles() -> None:
    wired = {wire[2] for wire in _role_wiring()}
    assert {"cluster_kubelet_read_only_port", "cluster_pod_subnet", "cluster_kubernetes_version"} <= wired


@pytest.mark.parametrize("wire", _role_wiring(), ids=lambda w: f"{w[1]}<-{w[2]}")
def test_role_default_equals_the_cluster_default(wire: tuple[str, str, str]) -> None:
    role, var, cluster = wire
    role_defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    assert var in role_defaults, f"roles/{role}/defaults/main.yml has no {var}"
    assert role_defaults[var] == OPTIONS[cluster]["default"], (
        f"roles/{role}/defaults/main.yml: {var} is {role_defaults[var]!r}, but the playbooks give it {cluster}, "
        f"whose default is {OPTIONS[cluster]['default']!r}: a role run on its own would build another cluster"
    )
