#!/usr/bin/env python3
"""A stand-in for the `vagrant` CLI, for testing create.yml / destroy.yml where no VM can run.

It is NOT a Vagrant: it starts nothing. It answers exactly the commands the scenario playbooks
use, in Vagrant's own output formats (read from Vagrant 2.3.4: lib/vagrant/ui.rb `machine`
lines `<time>,<target>,<type>,<data>`, plugins/commands/box/command/list.rb, and
templates/commands/ssh_config/config.erb), keeps the machines' states in
$VAGRANT_CWD/.vagrant/fake-state.json, and appends every call to $FAKE_VAGRANT_LOG, so a test
can prove what the playbooks ran, and in which order.

FAKE_VAGRANT_BOXES lists the added boxes as "name:provider name:provider".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _machine(target: str, kind: str, *data: str) -> None:
    cleaned = [d.replace(",", "%!(VAGRANT_COMMA)").replace("\n", "\\n") for d in data]
    print(",".join([str(int(time.time())), target, kind, *cleaned]))


def _project() -> Path:
    cwd = Path(os.environ.get("VAGRANT_CWD", "."))
    if not (cwd / "Vagrantfile").is_file():
        print(f"A Vagrant environment or target machine is required (no Vagrantfile in {cwd}).", file=sys.stderr)
        sys.exit(1)
    return cwd


def _nodes(cwd: Path) -> list[str]:
    settings = json.loads((cwd / "molecule-vagrant.json").read_text())
    return [n["name"] for n in settings["nodes"]]


def _load_state(cwd: Path) -> dict:
    path = cwd / ".vagrant" / "fake-state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(cwd: Path, state: dict) -> None:
    path = cwd / ".vagrant" / "fake-state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))


def _box_list() -> int:
    boxes = os.environ.get("FAKE_VAGRANT_BOXES", "").split()
    if not boxes:
        _machine("", "ui", "warn", "There are no installed boxes! Use `vagrant box add` to add some.")
    for box in boxes:
        name, provider = box.rsplit(":", 1)
        _machine("", "box-name", name)
        _machine("", "box-provider", provider)
        _machine("", "box-version", "12.20250126.1")
    return 0


def _status(cwd: Path, argv: list[str]) -> int:
    state = _load_state(cwd)
    for node in _nodes(cwd):
        provider = state.get(node, {}).get("provider", "virtualbox")
        _machine(node, "metadata", "provider", provider)
        _machine(node, "provider-name", provider)
        _machine(node, "state", state.get(node, {}).get("state", "not_created"))
    return 0


def _up(cwd: Path, argv: list[str]) -> int:
    state = _load_state(cwd)
    provider = next((a.split("=", 1)[1] for a in argv if a.startswith("--provider=")), "virtualbox")
    for node in _nodes(cwd):
        key = cwd / ".vagrant" / "machines" / node / provider / "private_key"
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_text("not a key\n")
        state[node] = {"state": "running", "provider": provider}
        print(f"==> {node}: Machine booted and ready!")
    _save_state(cwd, state)
    return 0


def _ssh_config(cwd: Path, argv: list[str]) -> int:
    state = _load_state(cwd)
    node = argv[1]
    if state.get(node, {}).get("state") != "running":
        print(
            "The provider for this Vagrant-managed machine is reporting that it is not yet ready for SSH.",
            file=sys.stderr,
        )
        return 1
    key = cwd / ".vagrant" / "machines" / node / state[node]["provider"] / "private_key"
    identity = f'"{key}"' if " " in str(key) else str(key)
    print(
        f"Host {node}\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  UserKnownHostsFile /dev/null\n"
        f"  StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile {identity}\n"
        "  IdentitiesOnly yes\n  LogLevel FATAL\n"
    )
    return 0


def _destroy(cwd: Path, argv: list[str]) -> int:
    state = _load_state(cwd)
    for node in _nodes(cwd):
        if state.get(node, {}).get("state", "not_created") != "not_created":
            print(f"==> {node}: Destroying VM and associated drives...")
        state[node] = {"state": "not_created"}
    _save_state(cwd, state)
    return 0


PROJECT_COMMANDS = {"status": _status, "up": _up, "ssh-config": _ssh_config, "destroy": _destroy}


def main(argv: list[str]) -> int:
    with Path(os.environ["FAKE_VAGRANT_LOG"]).open("a") as log:
        log.write(json.dumps({"argv": argv, "cwd": os.environ.get("VAGRANT_CWD", "")}) + "\n")
    if argv == ["--version"]:
        print("Vagrant 2.3.4")
        return 0
    if argv[:2] == ["box", "list"]:
        return _box_list()
    if argv and argv[0] in PROJECT_COMMANDS:
        return PROJECT_COMMANDS[argv[0]](_project(), argv)
    print(f"fake vagrant: unsupported command {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
