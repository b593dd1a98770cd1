#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: systemd_units
short_description: Enable and start several systemd units in one task, only those that are not yet
version_added: 0.2.0
description:
  - For each of O(units), asks systemd whether it is enabled (C(systemctl is-enabled)) and active (C(systemctl
    is-active)), as M(ansible.builtin.systemd_service) does, and enables or starts only the units that are not,
    with one C(systemctl enable) and one C(systemctl start) for all of them (systemd orders the starts by the
    units' dependencies).
  - One task for the units of a component instead of one per unit - a node that has them all enabled and running
    is asked once.
  - A unit that systemd does not know, or a masked unit that is to be enabled, fails the task naming it and the fix;
    nothing is changed then.
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be enabled or started; changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  units:
    description:
      - The units, in the order they are to be started.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The unit's name with its type, for example C(docker.service) or C(docker.socket).
        type: str
        required: true
      enabled:
        description:
          - Enable the unit (V(true)); V(false) or omitted leaves its enablement as it is.
        type: bool
        default: false
      started:
        description:
          - Start the unit when it is not active (V(true)); V(false) or omitted leaves it as it is.
        type: bool
        default: false
  daemon_reload:
    description:
      - Run C(systemctl daemon-reload) first (after unit files changed). Not reported as a change of its own.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Enable and start containerd and Docker
  kubelab.kubeadm.systemd_units:
    daemon_reload: "{{ units_result is changed }}"
    units:
      - {name: containerd.service, enabled: true, started: true}
      - {name: docker.socket, enabled: true}
      - {name: docker.service, enabled: true, started: true}
"""

RETURN = r"""
enabled:
  description: The units that were (in check mode, would be) enabled.
  returned: success
  type: list
  elements: str
  sample: [docker.service]
started:
  description: The units that were (in check mode, would be) started.
  returned: success
  type: list
  elements: str
  sample: [containerd.service, docker.service]
"""

from ansible.module_utils.basic import AnsibleModule

_C = {"LC_ALL": "C"}


def _systemctl(module: AnsibleModule, systemctl: str, *args: str) -> tuple:
    return module.run_command([systemctl, *args], environ_update=_C)


def plan(module: AnsibleModule, systemctl: str, units: list) -> tuple:
    """(units to enable, units to start), or fail naming a unit systemd does not know or that is masked."""
    to_enable, to_start = [], []
    for unit in units:
        name = unit["name"]
        _rc, load_state, _err = _systemctl(module, systemctl, "show", "--property=LoadState", "--value", "--", name)
        load_state = load_state.strip()
        if load_state in ("not-found", ""):
            module.fail_json(
                msg=f"systemd does not know the unit {name} (LoadState {load_state or 'unknown'}): install its unit "
                "file first (and run systemctl daemon-reload); nothing was changed"
            )
        if unit["enabled"]:
            rc, state, _err = _systemctl(module, systemctl, "is-enabled", "--", name)
            if state.strip().startswith("masked"):
                module.fail_json(
                    msg=f"{name} is masked, so it cannot be enabled: `systemctl unmask {name}` if it is meant to run "
                    "(someone masked it on purpose?); nothing was changed"
                )
            if rc != 0:
                to_enable.append(name)
        if unit["started"]:
            rc, _out, _err = _systemctl(module, systemctl, "is-active", "--quiet", "--", name)
            if rc != 0:
                to_start.append(name)
    return to_enable, to_start


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "units": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "enabled": {"type": "bool", "default": False},
                    "started": {"type": "bool", "default": False},
                },
            },
            "daemon_reload": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    systemctl = module.get_bin_path("systemctl", required=True)
    if module.params["daemon_reload"] and not module.check_mode:
        rc, _out, err = _systemctl(module, systemctl, "daemon-reload")
        if rc != 0:
            module.fail_json(msg=f"systemctl daemon-reload failed: {err.strip()}")
    to_enable, to_start = plan(module, systemctl, module.params["units"])
    if not module.check_mode:
        for verb, names in (("enable", to_enable), ("start", to_start)):
            if names:
                rc, out, err = _systemctl(module, systemctl, verb, "--", *names)
                if rc != 0:
                    module.fail_json(
                        msg=f"systemctl {verb} {' '.join(names)} failed: {(err or out).strip()}; see "
                        f"`journalctl -u {names[-1]}` and `systemctl status {' '.join(names)}`",
                        enabled=to_enable if verb == "start" else [],
                    )
    module.exit_json(changed=bool(to_enable or to_start), enabled=to_enable, started=to_start)


if __name__ == "__main__":
    main()
