"""docker_engine's daemon.json: the merge of the role's settings into a node's file (filter
kubelab.kubeadm.docker_daemon_json_merge), and the role's own task file (tasks/daemon_json.yml, run by the
real ansible-core with the role's defaults and vars) on files written here: the node's other keys are kept,
a file that already has the settings is not rewritten, a conflicting cgroup or log driver refuses the run
before anything is written. Writing, the backup and the Docker restart run in the lab (tests/lab)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_LINK = REPO / "build" / "collections" / "ansible_collections" / "kubelab" / "kubeadm"
if not _LINK.exists():  # as tests/unit/conftest.py makes it, for a run of tests/roles alone
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(REPO, _LINK)
sys.path.insert(0, str(REPO / "build" / "collections"))
from ansible_collections.kubelab.kubeadm.plugins.filter.docker_daemon_json import (  # noqa: E402
    FilterModule,
    docker_daemon_json_merge,
)

OPTIONS = {
    "exec-opts": ["native.cgroupdriver=systemd"],
    "log-driver": "json-file",
    "log-opts": {"max-size": "100m", "max-file": "3"},
    "registry-mirrors": [],
}
# What the role wrote before it merged (the whole file), and what it writes on a fresh node now.
ROLE_WROTE = OPTIONS
FRESH = {k: v for k, v in OPTIONS.items() if k != "registry-mirrors"}


def merge(current, options=None, extra=None):
    text = current if isinstance(current, str) else json.dumps(current, indent=4)
    return docker_daemon_json_merge(text, OPTIONS if options is None else options, extra)


def test_fresh_node_gets_the_role_settings():
    for text in ("", "  \n"):
        result = merge(text)
        assert result == {"current": {}, "content": FRESH, "differs": True, "kept": [], "conflicts": []}
    assert FilterModule().filters()["docker_daemon_json_merge"] is docker_daemon_json_merge


def test_file_the_role_wrote_is_unchanged():
    result = merge(ROLE_WROTE)
    assert result["content"] == ROLE_WROTE
    assert result["differs"] is False
    assert result["kept"] == ["registry-mirrors"]
    # formatting alone is no change
    assert merge(json.dumps(ROLE_WROTE, separators=(",", ":")))["differs"] is False


def test_keys_the_role_does_not_own_are_kept():
    node = {
        "data-root": "/srv/docker",
        "max-concurrent-downloads": 5,
        "exec-opts": ["native.umask=normal", "native.cgroupdriver=systemd"],
        "log-opts": {"max-size": "10m", "labels": "team"},
        "registry-mirrors": ["https://mirror.example"],
        "log-driver": "json-file",
    }
    result = merge(node)
    assert result["conflicts"] == []
    assert result["content"] == {
        "data-root": "/srv/docker",
        "max-concurrent-downloads": 5,
        "exec-opts": ["native.umask=normal", "native.cgroupdriver=systemd"],
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m", "max-file": "3", "labels": "team"},  # the role's size wins
        "registry-mirrors": ["https://mirror.example"],  # docker_engine_registry_mirrors is empty: left alone
    }
    assert result["differs"] is True
    assert result["kept"] == ["data-root", "log-opts.labels", "max-concurrent-downloads", "registry-mirrors"]


def test_owned_keys_take_the_role_values_and_extra_keys_whole():
    node = {"registry-mirrors": ["https://old.example"], "exec-opts": ["native.cgroupdriver = systemd"],
            "iptables": True, "bridge": "docker0"}
    options = {**OPTIONS, "registry-mirrors": ["https://mirror.example"]}
    result = merge(node, options, extra={"iptables": False, "log-opts": {"max-size": "5m"}})
    assert result["conflicts"] == []
    assert result["content"] == {
        "registry-mirrors": ["https://mirror.example"],
        "exec-opts": ["native.cgroupdriver=systemd"],
        "iptables": False,
        "bridge": "docker0",
        "log-driver": "json-file",
        "log-opts": {"max-size": "5m"},
    }
    assert result["kept"] == ["bridge"]


def test_extra_exec_opts_and_log_driver_are_the_users_own_choice():
    node = {"exec-opts": ["native.cgroupdriver=cgroupfs"], "log-driver": "journald"}
    extra = {"exec-opts": ["native.cgroupdriver=cgroupfs"], "log-driver": "local"}
    result = merge(node, extra=extra)
    assert result["conflicts"] == []
    assert result["content"]["exec-opts"] == ["native.cgroupdriver=cgroupfs"]
    assert result["content"]["log-driver"] == "local"


@pytest.mark.parametrize(
    ("node", "wanted"),
    [
        ({"exec-opts": ["native.cgroupdriver=cgroupfs"]},
         ["sets exec-opts native.cgroupdriver=cgroupfs but the cluster is set up with native.cgroupdriver=systemd",
          "docker_engine_cgroup_driver: cgroupfs", "nothing has been written"]),
        ({"exec-opts": "native.cgroupdriver=systemd"}, ["exec-opts is 'native.cgroupdriver=systemd', not a list"]),
        ({"log-driver": "journald"}, ["sets log-driver 'journald'", "kubectl logs would fail"]),
        ("{\"data-root\": ", ["is not valid JSON", "nothing has been written"]),
        ("[1, 2]", ["holds a JSON list, not an object"]),
    ],
    ids=["cgroup-driver", "exec-opts-not-a-list", "log-driver", "not-json", "not-an-object"],
)
def test_conflicts_refuse_and_name_the_key(node, wanted):
    result = merge(node)
    assert result["content"] is None
    assert result["differs"] is False
    text = " ".join(result["conflicts"])
    assert "/etc/docker/daemon.json" in text
    for part in wanted:
        assert part in text, text


def test_both_conflicts_are_reported_at_once():
    result = merge({"exec-opts": ["native.cgroupdriver=cgroupfs"], "log-driver": "syslog"})
    assert len(result["conflicts"]) == 2


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: kubelab.kubeadm.docker_engine
        tasks_from: daemon_json.yml
      vars:
        __docker_engine_daemon_json: "{{{{ item }}}}"
        docker_engine_registry_mirrors: {mirrors}
      loop: {files}
    - ansible.builtin.copy:
        dest: {out}
        content: "{{{{ __docker_engine_daemon_json_merge | to_json }}}}"
        mode: "0600"
"""


def play(tmp_path: Path, files: list[Path], mirrors: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out.json"
    book = tmp_path / "play.yml"
    book.write_text(PLAY.format(files=json.dumps([str(f) for f in files]), mirrors=json.dumps(mirrors), out=out))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_NOCOLOR="1")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    argv += ["-e", f"ansible_python_interpreter={sys.executable}", str(book)]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=300)
    return res, out


def test_role_task_file_merges_with_the_role_values(tmp_path):
    absent = tmp_path / "absent.json"
    user = tmp_path / "daemon.json"
    user.write_text(json.dumps({**ROLE_WROTE, "max-concurrent-downloads": 5}))
    res, out = play(tmp_path, [absent, user], ["https://mirror.example"])
    assert res.returncode == 0, res.stdout[-3000:]
    assert not absent.exists()  # reading writes nothing
    last = json.loads(out.read_text())  # the last file's merge
    assert last["content"] == {**ROLE_WROTE, "max-concurrent-downloads": 5, "registry-mirrors": ["https://mirror.example"]}
    assert last["differs"] is True
    assert last["kept"] == ["max-concurrent-downloads"]


def test_role_task_file_refuses_another_cgroup_driver(tmp_path):
    user = tmp_path / "daemon.json"
    before = json.dumps({"exec-opts": ["native.cgroupdriver=cgroupfs"], "data-root": "/srv/docker"})
    user.write_text(before)
    res, out = play(tmp_path, [user], [])
    flat = " ".join(res.stdout.split())
    assert res.returncode != 0
    assert f"localhost: {user} sets exec-opts native.cgroupdriver=cgroupfs" in flat, flat[-3000:]
    assert "Daemon.json | Refuse settings that would break the cluster" in flat
    assert user.read_text() == before
    assert not out.exists()
