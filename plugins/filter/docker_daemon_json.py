# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter docker_daemon_json_merge: the docker_engine role's settings merged into a node's daemon.json.

The role owns a few settings (OWNED below, plus every key of docker_engine_daemon_options_extra); all
other keys of the node's file are kept as they are. An owned setting the node's file sets otherwise is
overwritten, except where the other value would break the cluster (GUARDED): then the merge reports a
conflict and the role refuses before writing.
"""

from __future__ import annotations

import copy
import json

CGROUP_DRIVER_OPT = "native.cgroupdriver="


def _cgroup_drivers(exec_opts):
    return [opt.split("=", 1)[1].strip() for opt in exec_opts if _is_cgroup_opt(opt)]


def _is_cgroup_opt(opt):
    return isinstance(opt, str) and opt.replace(" ", "").startswith(CGROUP_DRIVER_OPT)


def _parse(text, path):
    if not (text or "").strip():
        return {}, None
    try:
        current = json.loads(text)
    except ValueError as exc:
        return None, (f"{path} is not valid JSON ({exc}): Docker would not start with it either. Fix the file (or move"
                      f" it away) and run again; nothing has been written.")
    if not isinstance(current, dict):
        return None, f"{path} holds a JSON {type(current).__name__}, not an object: fix it and run again."
    return current, None


def _exec_opts(current, options, path):
    """The node's exec-opts with the role's cgroup driver entry in place of its own; conflict messages."""
    wanted = [opt for opt in options.get("exec-opts") or [] if _is_cgroup_opt(opt)]
    theirs = current.get("exec-opts") or []
    if not isinstance(theirs, list):
        return None, [f"{path}: exec-opts is {theirs!r}, not a list; make it a list (or remove it) and run again."]
    want = _cgroup_drivers(wanted)
    other = sorted(set(_cgroup_drivers(theirs)) - set(want))
    if want and other:
        return None, [
            f"{path} sets exec-opts {CGROUP_DRIVER_OPT}{', '.join(other)} but the cluster is set up with"
            f" {CGROUP_DRIVER_OPT}{want[0]} (docker_engine_cgroup_driver): the kubelet and Docker must use the same"
            f" cgroup driver. Remove that entry from exec-opts (the role writes its own) or set"
            f" docker_engine_cgroup_driver: {other[0]}; nothing has been written."
        ]
    merged = []
    for opt in theirs:
        keep = (wanted[0] if wanted else None) if _is_cgroup_opt(opt) else opt
        if keep is not None and keep not in merged:
            merged.append(keep)
    merged += [opt for opt in wanted if opt not in merged]
    return merged, []


def _log_driver(current, options, path):
    theirs = current.get("log-driver")
    if theirs is not None and theirs != options["log-driver"]:
        return [
            f"{path} sets log-driver {theirs!r} but cri-dockerd reads container logs only from Docker's"
            f" {options['log-driver']} files (kubectl logs would fail): remove log-driver from {path}, or set it in"
            f" docker_engine_daemon_options_extra if you really mean it; nothing has been written."
        ]
    return []


def docker_daemon_json_merge(text, options, extra=None, path="/etc/docker/daemon.json"):
    """Merge the role's options (and extra, whole keys) into the daemon.json text of a node.

    Returns {current, content, differs, kept, conflicts}: current and content as dicts (content is what to
    write; differs: it differs from current as data, so formatting alone never rewrites the file); kept: the
    node's settings the role does not own; conflicts: messages naming each key whose value would break the
    cluster (content is null then: nothing is to be written).
    """
    extra = dict(extra or {})
    current, error = _parse(text, path)
    if error:
        return {"current": None, "content": None, "differs": False, "kept": [], "conflicts": [error]}
    content = copy.deepcopy(current)
    conflicts = []
    role = {key: value for key, value in options.items() if key not in extra}

    if "exec-opts" in role:
        merged, found = _exec_opts(current, role, path)
        conflicts += found
        if merged or "exec-opts" in current:
            content["exec-opts"] = merged
    if "log-driver" in role:
        conflicts += _log_driver(current, role, path)
        content["log-driver"] = role["log-driver"]
    if role.get("log-opts"):
        theirs = current.get("log-opts")
        content["log-opts"] = {**(theirs if isinstance(theirs, dict) else {}), **role["log-opts"]}
    if role.get("registry-mirrors"):  # [] leaves the node's mirrors alone
        content["registry-mirrors"] = list(role["registry-mirrors"])
    for key, value in role.items():
        if key not in ("exec-opts", "log-driver", "log-opts", "registry-mirrors"):
            content[key] = value
    content.update(extra)

    # kept: what the node's file has that the role left alone (whole keys, and log-opts' other options)
    kept = [key for key in current if key not in extra and key not in options]
    if "registry-mirrors" in current and not role.get("registry-mirrors", True):
        kept.append("registry-mirrors")
    if isinstance(current.get("log-opts"), dict) and role.get("log-opts"):
        kept += [f"log-opts.{key}" for key in current["log-opts"] if key not in role["log-opts"]]
    if conflicts:
        return {"current": current, "content": None, "differs": False, "kept": sorted(kept), "conflicts": conflicts}
    return {"current": current, "content": content, "differs": content != current, "kept": sorted(kept),
            "conflicts": []}


class FilterModule:
    def filters(self):
        return {"docker_daemon_json_merge": docker_daemon_json_merge}
