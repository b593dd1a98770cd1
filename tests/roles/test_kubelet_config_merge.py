"""The kubelet_config role's merge of the desired fields into a node's current configuration, evaluated by
the real ansible-core from the role's own files (templates/, vars/main.yml, defaults/main.yml): feature
gates set, kept, removed with null, and `featureGates` dropped only when the removal empties a key the
current configuration did not have. The rest of the role (file, ConfigMap, restarts) runs in the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "kubelet_config"

PLAY = """
- hosts: localhost
  gather_facts: false
  # play vars_files rank below task vars, as role defaults and vars do (include_vars would rank above)
  vars_files:
    - {defaults}
    - {vars}
  tasks:
    - ansible.builtin.include_vars: {cases}
    - ansible.builtin.set_fact:
        results: "{{{{ results | default([]) + [{{'document': __document, 'merged': __kubelet_config_merged}}] }}}}"
      loop: "{{{{ cases }}}}"
      vars:
        __kubelet_config_current: "{{{{ item.current }}}}"
        kubelet_config_feature_gates: "{{{{ item.gates }}}}"
        kubelet_config_extra: "{{{{ item.extra }}}}"
        __document: "{{{{ lookup('ansible.builtin.template', '{template}') | ansible.builtin.from_yaml }}}}"
        kubelet_config_document: "{{{{ __document }}}}"
    - ansible.builtin.copy:
        dest: {out}
        content: "{{{{ results | to_json }}}}"
        mode: "0600"
"""


def merge_all(tmp_path: Path, cases: list[tuple[dict, dict, dict]]) -> list[dict]:
    """[(current, gates, extra)] -> [{document, merged}], all in one ansible-playbook run."""
    (tmp_path / "cases.yml").write_text(
        yaml.safe_dump({"cases": [{"current": c, "gates": g, "extra": e} for c, g, e in cases]})
    )
    out = tmp_path / "out.json"
    play = tmp_path / "play.yml"
    play.write_text(
        PLAY.format(
            defaults=ROLE / "defaults" / "main.yml",
            vars=ROLE / "vars" / "main.yml",
            cases=tmp_path / "cases.yml",
            template=ROLE / "templates" / "kubelet-config.v1beta1.yaml.j2",
            out=out,
        )
    )
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    argv += ["-e", f"ansible_python_interpreter={sys.executable}", str(play)]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(out.read_text())


KUBEADM_WROTE = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "readOnlyPort": 0}


GATE = "ExtendWebSocketsToKubelet"
# (featureGates of the current file or None for none, kubelet_config_feature_gates, featureGates wanted)
GATE_CASES = [
    # the day-one fix on a file kubeadm wrote without featureGates (a cluster of the earlier release)
    (None, {GATE: False}, {GATE: False}),
    # null removes the gate, and featureGates with it (the file had none before)
    ({GATE: False}, {GATE: None}, None),
    # a removed gate that is not there: nothing changes
    (None, {GATE: None}, None),
    # gates set by hand stay
    ({"Foo": True, GATE: False}, {GATE: None}, {"Foo": True}),
    ({"Foo": True}, {GATE: False}, {"Foo": True, GATE: False}),
    # an empty featureGates the file had stays (no change for nothing)
    ({}, {GATE: None}, {}),
    # true overrides false
    ({GATE: False}, {GATE: True}, {GATE: True}),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    cases = []
    for current_gates, gates, _want in GATE_CASES:
        current = dict(KUBEADM_WROTE, clusterDNS=["10.96.0.10"])
        if current_gates is not None:
            current["featureGates"] = current_gates
        cases.append((current, gates, {}))
    cases.append((dict(KUBEADM_WROTE), {"A": False, "B": None}, {}))
    cases.append((dict(KUBEADM_WROTE), {"B": None}, {}))
    cases.append((dict(KUBEADM_WROTE), {"A": False}, {"featureGates": {"C": True}}))
    return merge_all(tmp_path_factory.mktemp("kubelet_config"), cases)


@pytest.mark.parametrize("index", range(len(GATE_CASES)))
def test_feature_gates_merge(results: list[dict], index: int) -> None:
    merged = results[index]["merged"]
    assert merged.get("featureGates") == GATE_CASES[index][2], GATE_CASES[index]
    assert merged["clusterDNS"] == ["10.96.0.10"], "a field kubeadm wrote was lost"
    assert merged["healthzPort"] == 10248


def test_document_leaves_null_gates_out(results: list[dict]) -> None:
    """What kubeadm init and join get: set gates only; no featureGates at all when none is set."""
    assert results[len(GATE_CASES)]["document"]["featureGates"] == {"A": False}
    assert "featureGates" not in results[len(GATE_CASES) + 1]["document"]


def test_extra_feature_gates_merge_with_owned(results: list[dict]) -> None:
    got = results[len(GATE_CASES) + 2]
    assert got["document"]["featureGates"] == {"A": False, "C": True}
    assert got["merged"]["featureGates"] == {"A": False, "C": True}
