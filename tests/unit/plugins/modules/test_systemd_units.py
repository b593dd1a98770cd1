"""systemd_units' decisions against a stand-in systemctl (the unit tier runs without systemd as PID 1; the lab's
nodes run the real one in every site.yml): only units that are not enabled or not active are acted on, with one
enable and one start for all of them; unknown and masked units fail before anything is changed."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from ansible_collections.kubelab.kubeadm.plugins.modules import systemd_units

# The stand-in: unit states from state.json ({unit: {"enabled": "enabled|disabled|masked", "active": bool}});
# every call is appended to calls.json.
FAKE = """#!{python}
import json, sys
here = {here!r}
state = json.load(open(here + "/state.json"))
calls = json.load(open(here + "/calls.json"))
args = sys.argv[1:]
calls.append(args)
json.dump(calls, open(here + "/calls.json", "w"))
verb, names = args[0], [a for a in args[1:] if not a.startswith("-")]
if verb == "show":
    print("loaded" if names[0] in state else "not-found")
elif verb == "is-enabled":
    s = state[names[0]]["enabled"]
    print(s)
    sys.exit(0 if s in ("enabled", "static") else 1)
elif verb == "is-active":
    sys.exit(0 if state[names[0]]["active"] else 3)
elif verb in ("enable", "start"):
    for n in names:
        state[n]["enabled" if verb == "enable" else "active"] = "enabled" if verb == "enable" else True
    json.dump(state, open(here + "/state.json", "w"))
"""


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    (tmp_path / "calls.json").write_text("[]")
    fake = tmp_path / "systemctl"
    fake.write_text(FAKE.format(python=sys.executable, here=str(tmp_path)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    class State:
        def set(self, units: dict) -> None:
            (tmp_path / "state.json").write_text(json.dumps(units))

        def get(self) -> dict:
            return json.loads((tmp_path / "state.json").read_text())

        def acts(self) -> list:
            return [c for c in json.loads((tmp_path / "calls.json").read_text()) if c[0] in ("enable", "start")]

    return State()


UNITS = [
    {"name": "containerd.service", "enabled": True, "started": True},
    {"name": "docker.socket", "enabled": True},
    {"name": "docker.service", "enabled": True, "started": True},
]


def test_only_what_differs_is_done_in_one_call_each(run_module, systemd):
    systemd.set(
        {
            "containerd.service": {"enabled": "enabled", "active": True},
            "docker.socket": {"enabled": "disabled", "active": False},
            "docker.service": {"enabled": "disabled", "active": False},
        }
    )
    result, failed = run_module(systemd_units.main, {"units": UNITS})
    assert not failed and result["changed"] is True
    assert result["enabled"] == ["docker.socket", "docker.service"] and result["started"] == ["docker.service"]
    assert systemd.acts() == [["enable", "--", "docker.socket", "docker.service"], ["start", "--", "docker.service"]]

    result, failed = run_module(systemd_units.main, {"units": UNITS})
    assert not failed and result["changed"] is False and len(systemd.acts()) == 2


def test_check_mode_reports_and_changes_nothing(run_module, systemd):
    systemd.set({n["name"]: {"enabled": "disabled", "active": False} for n in UNITS})
    result, failed = run_module(systemd_units.main, {"units": UNITS}, check_mode=True)
    assert not failed and result["changed"] is True and result["started"] == ["containerd.service", "docker.service"]
    assert systemd.acts() == []


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({}, "systemd does not know the unit docker.service"),
        ({"docker.service": {"enabled": "masked", "active": False}}, "docker.service is masked"),
    ],
)
def test_unknown_or_masked_units_fail_before_any_change(run_module, systemd, state, message):
    systemd.set({"containerd.service": {"enabled": "disabled", "active": False}, **state})
    result, failed = run_module(systemd_units.main, {"units": [UNITS[0], UNITS[2]]})
    assert failed and message in result["msg"] and "nothing was changed" in result["msg"]
    assert systemd.acts() == []
