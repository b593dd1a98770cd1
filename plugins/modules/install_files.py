#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: install_files
short_description: Install verified files and archives on a node, only what differs, in one task
version_added: 0.2.0
description:
  - Installs a list of O(items) on the managed node - a file, the contents of a tar archive, or a small generated file
    (a systemd unit) - and changes only what differs from what the node has.
  - An item with O(items[].src) is a file on the controller (for example from the offline bundle) with a pinned
    O(items[].sha256). The action plugin first asks the node which items it lacks, copies only those, and the node
    checks each copy's sha256 right before it is used; nothing of a file that does not match is installed.
  - What was installed from a source is recorded on the node, in O(state_dir). An item whose record has the same sha256
    and destination, and whose installed files still have the recorded size, modification time, mode and owner, is
    up to date without being copied or read again. A file changed on the node after it was installed is installed anew.
  - Files are replaced by a rename of a complete copy in the same directory, so a running program's binary is never
    half written.
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: The action plugin copies the sources the node lacks (and only those).
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Reports which items would be installed; copies and changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  items:
    description:
      - What to install, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - A name for the item, unique within the node's O(state_dir) (the record's file name).
        type: str
        required: true
      src:
        description:
          - The source file on the controller (with O(items[].remote_src) on the node). Needs O(items[].sha256).
        type: path
      remote_src:
        description:
          - O(items[].src) is already on the node (for example downloaded there with a pinned checksum).
        type: bool
        default: false
      sha256:
        description:
          - The sha256 the source must have.
        type: str
      content:
        description:
          - The file's content, instead of O(items[].src) (small generated files such as systemd units).
        type: str
      dest:
        description:
          - The file to install, or with O(items[].unpack) the directory the archive is unpacked into.
        type: path
        required: true
      unpack:
        description:
          - The source is a tar archive (optionally gzip-compressed); its regular files and symbolic links are
            installed under O(items[].dest). Absolute member names and names with C(..) are refused.
        type: bool
        default: false
      strip_components:
        description:
          - With O(items[].unpack), leading path components removed from each member name (as C(tar --strip-components)).
        type: int
        default: 0
      mode:
        description:
          - The mode of an installed file (an octal string). With O(items[].unpack) each member keeps its own mode.
        type: str
        default: "0644"
      record:
        description:
          - Keep a record of the install and answer from it next time. V(false) for files the caller removes again
            (such as image archives after C(docker load)) - the item is then always copied and checked.
        type: bool
        default: true
  state_dir:
    description:
      - Where the records of what was installed from each source are kept on the node.
    type: path
    default: /var/lib/kubelab/installed
  _phase:
    description:
      - Internal, set by the action plugin - C(plan) only reads what the node lacks, C(install) installs it.
    type: str
    choices: [plan, install]
    default: install
  _transferred:
    description:
      - Internal, set by the action plugin - the controller's sources have been copied to the node.
    type: bool
    default: false
notes:
  - Owner and group of every installed file are root.
"""

EXAMPLES = r"""
- name: Install kubeadm and the CNI plugins from the bundle, and the kubelet unit
  kubelab.kubeadm.install_files:
    items:
      - name: kubeadm
        src: /srv/bundle/bin/kubeadm
        sha256: "{{ kubeadm_sha256 }}"
        dest: /usr/local/bin/kubeadm
        mode: "0755"
      - name: cni-plugins
        src: /srv/bundle/archives/cni-plugins-linux-amd64.tgz
        sha256: "{{ cni_sha256 }}"
        dest: /opt/cni/bin
        unpack: true
      - name: kubelet.service
        content: "{{ lookup('ansible.builtin.template', 'kubelet.service.j2') }}"
        dest: /etc/systemd/system/kubelet.service
  notify: Restart the kubelet if it runs
"""

RETURN = r"""
items:
  description: Per item, in order - its name, C(status) (C(up to date), C(installed), or in check mode C(would install))
    and the installed files that changed.
  returned: success
  type: list
  elements: dict
  sample: [{name: kubeadm, status: installed, reason: not installed yet, changed_files: [/usr/local/bin/kubeadm]}]
changed_files:
  description: Every file written.
  returned: success
  type: list
  elements: str
"""

import hashlib
import json
import os
import stat
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import CHUNK_SIZE, sha256_file

# Bumped when what a record means changes: older records are then not trusted (everything is compared again).
_RECORD_FORMAT = 1


class InstallError(Exception):
    """A problem with an item: the message names it and the fix."""


def _mode(text: str) -> int:
    try:
        value = int(str(text), 8)
    except ValueError:
        raise InstallError(f"mode {text!r} is not an octal mode such as 0644") from None
    if not 0 <= value <= 0o7777:
        raise InstallError(f"mode {text!r} is not an octal mode such as 0644")
    return value


def _record_path(state_dir: str, name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise InstallError(f"item name {name!r} must be a plain file name (no '/', not starting with '.')")
    return os.path.join(state_dir, name + ".json")


def _identity(item: dict) -> dict:
    """What a record must match besides the installed files: the source and how it was installed."""
    return {
        "format": _RECORD_FORMAT,
        "sha256": item["sha256"],
        "dest": item["dest"],
        "unpack": item["unpack"],
        "strip_components": item["strip_components"],
        "mode": item["mode"] if not item["unpack"] else None,
    }


def _file_state(path: str) -> dict | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "mode": stat.S_IMODE(st.st_mode),
        "kind": "link" if stat.S_ISLNK(st.st_mode) else ("file" if stat.S_ISREG(st.st_mode) else "other"),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def plan_item(item: dict, state_dir: str) -> tuple[bool, str]:
    """(needed, reason) for one item, from the node's record or, for content items, the file itself."""
    if item["content"] is not None:
        reason = _content_differs(item)
    elif not item["record"]:
        reason = "not recorded (always copied)"
    else:
        reason = _record_differs(item, state_dir)
    return bool(reason), reason or "up to date"


def _content_differs(item: dict) -> str:
    data = item["content"].encode("utf-8")
    current = _file_state(item["dest"])
    if current is None:
        return "not installed yet"
    if current["kind"] != "file" or current["size"] != len(data):
        return "content differs"
    with open(item["dest"], "rb") as handle:
        if handle.read() != data:
            return "content differs"
    if current["mode"] != _mode(item["mode"]) or current["uid"] != 0 or current["gid"] != 0:
        return "mode or owner differs"
    return ""


def _record_differs(item: dict, state_dir: str) -> str:
    try:
        with open(_record_path(state_dir, item["name"]), encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return "not installed yet"
    except (OSError, ValueError):
        return "the record of the last install cannot be read"
    if not isinstance(record, dict) or record.get("identity") != _identity(item) or not record.get("files"):
        return "another version or destination"
    for path, recorded in sorted(record["files"].items()):
        now = _file_state(path)
        if now is None:
            return f"{path} is gone"
        if any(now[key] != recorded.get(key) for key in ("size", "mtime_ns", "mode", "kind", "uid", "gid")):
            return f"{path} changed since it was installed"
    return ""


def _same_file(path: str, size: int, sha256: str, mode: int) -> bool:
    st = _file_state(path)
    return (
        st is not None
        and st["kind"] == "file"
        and st["size"] == size
        and st["mode"] == mode
        and st["uid"] == 0
        and st["gid"] == 0
        and sha256_file(path) == sha256
    )


def _write_temp(dest: str, chunks) -> tuple[str, str]:
    """Write `chunks` to a new file beside `dest` (flushed to disk); (its path, the sha256 of what was written)."""
    directory = os.path.dirname(dest) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubelab-", dir=directory)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, digest.hexdigest()


def _commit(tmp: str, dest: str, mode: int) -> None:
    """Give the new file `mode` and root, and rename it over `dest` (readers see the old or the new file whole)."""
    try:
        os.chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        os.rename(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _write_atomic(dest: str, chunks, mode: int) -> None:
    tmp, _digest = _write_temp(dest, chunks)
    _commit(tmp, dest, mode)


def _read_chunks(handle):
    return iter(lambda: handle.read(CHUNK_SIZE), b"")


def _install_plain(item: dict, src: str) -> list:
    mode = _mode(item["mode"])
    size = os.path.getsize(src)
    if _same_file(item["dest"], size, item["sha256"], mode):
        return []
    with open(src, "rb") as handle:
        _write_atomic(item["dest"], _read_chunks(handle), mode)
    return [item["dest"]]


def _member_target(dest: str, name: str, strip: int, archive: str) -> str | None:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise InstallError(f"{archive} has the member {name!r}, which points outside its directory: nothing installed")
    parts = parts[strip:]
    return os.path.join(dest, *parts) if parts else None


def _install_archive(item: dict, src: str) -> list:
    dest, strip, changed = item["dest"], item["strip_components"], []
    try:
        archive = tarfile.open(src, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise InstallError(f"{item['name']}: {src} is not a readable tar archive ({exc}): nothing installed") from None
    with archive:
        members = archive.getmembers()
        # Every name is checked before the first file is written.
        targets = [(_member_target(dest, m.name, strip, item["name"]), m) for m in members]
        for target, member in targets:
            if target is None or member.isdir():
                continue
            if member.issym():
                if os.path.islink(target) and os.readlink(target) == member.linkname:
                    continue
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                tmp = os.path.join(os.path.dirname(target), f".kubelab-link-{os.getpid()}")
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(member.linkname, tmp)
                os.rename(tmp, target)
                changed.append(target)
            elif member.isfile():
                # One pass over the member: written beside the target while hashed, kept only when it differs.
                mode = member.mode & 0o7777
                tmp, digest = _write_temp(target, _read_chunks(archive.extractfile(member)))
                if _same_file(target, member.size, digest, mode):
                    os.unlink(tmp)
                    continue
                _commit(tmp, target, mode)
                changed.append(target)
            else:
                raise InstallError(
                    f"{item['name']}: the member {member.name!r} is neither a file, a directory nor a symbolic link: "
                    "nothing more installed"
                )
        return [t for t, m in targets if t is not None and (m.isfile() or m.issym())], changed


def install_item(item: dict, state_dir: str) -> tuple[str, list]:
    """Install one item whose source is on the node now; (status, changed files)."""
    if item["content"] is not None:
        data = item["content"].encode("utf-8")
        mode = _mode(item["mode"])
        if _same_file(item["dest"], len(data), hashlib.sha256(data).hexdigest(), mode):
            return "up to date", []
        _write_atomic(item["dest"], [data], mode)
        return "installed", [item["dest"]]
    src = item["src"]
    try:
        actual = sha256_file(src)
    except OSError as exc:
        raise InstallError(f"{item['name']}: cannot read {src} on this node ({exc}): nothing installed") from None
    if actual != item["sha256"]:
        raise InstallError(
            f"{item['name']}: the copy {src} on this node has sha256 {actual}, expected {item['sha256']}: nothing of it "
            "was installed. The source changed on the controller or on its way; check the bundle (`sha256sum -c "
            "SHA256SUMS` in its directory) or the pinned checksum, and run again."
        )
    if item["unpack"]:
        files, changed = _install_archive(item, src)
    else:
        changed = _install_plain(item, src)
        files = [item["dest"]]
    if not item["record"]:
        return ("installed" if changed else "up to date"), changed
    record = {"identity": _identity(item), "files": {path: _file_state(path) for path in files}}
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    data = (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8")
    _write_atomic(_record_path(state_dir, item["name"]), [data], 0o644)
    return ("installed" if changed else "up to date"), changed


def check_items(items: list) -> None:
    names = [i["name"] for i in items]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise InstallError(f"item names must be unique; given more than once: {', '.join(doubled)}")
    for item in items:
        if (item["src"] is None) == (item["content"] is None):
            raise InstallError(f"{item['name']}: give either src (with sha256) or content")
        if item["src"] is not None and not _is_sha256(item["sha256"]):
            raise InstallError(f"{item['name']}: sha256 must be the 64 hex digits of the source's sha256")
        if item["content"] is not None and item["unpack"]:
            raise InstallError(f"{item['name']}: unpack needs src (an archive), not content")
        if item["unpack"] and item["strip_components"] < 0:
            raise InstallError(f"{item['name']}: strip_components cannot be negative")
        _mode(item["mode"])
        _record_path("/", item["name"])


def _is_sha256(text) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def run(params: dict, check_mode: bool) -> dict:
    """One pass: phase 'plan' (what the node lacks, read only) or 'install' (sources already on the node)."""
    items, state_dir = params["items"], params["state_dir"]
    check_items(items)
    results, written = [], []
    for item in items:
        needed, reason = plan_item(item, state_dir)
        entry = {"name": item["name"], "status": "up to date", "reason": reason, "changed_files": []}
        if needed and check_mode:  # either phase: the action plugin returns the plan as it is in check mode
            entry["status"] = "would install"
        elif needed and params["_phase"] == "plan":
            entry["status"] = "needed"
        elif needed:
            if item["src"] is not None and not item["remote_src"] and not params["_transferred"]:
                raise InstallError(
                    f"{item['name']}: src is on the controller; run this module as a task (its action copies it)"
                )
            entry["status"], entry["changed_files"] = install_item(item, state_dir)
            written.extend(entry["changed_files"])
        results.append(entry)
    return {
        "changed": bool(written) or any(r["status"] == "would install" for r in results),
        "items": results,
        "changed_files": written,
    }


ITEM_SPEC = {
    "name": {"type": "str", "required": True},
    "src": {"type": "path"},
    "remote_src": {"type": "bool", "default": False},
    "sha256": {"type": "str"},
    "content": {"type": "str"},
    "dest": {"type": "path", "required": True},
    "unpack": {"type": "bool", "default": False},
    "strip_components": {"type": "int", "default": 0},
    "mode": {"type": "str", "default": "0644"},
    "record": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "items": {"type": "list", "elements": "dict", "required": True, "options": ITEM_SPEC},
            "state_dir": {"type": "path", "default": "/var/lib/kubelab/installed"},
            # set by the action plugin: 'plan' asks what is needed, 'install' runs with the copies in place
            "_phase": {"type": "str", "default": "install", "choices": ["plan", "install"]},
            "_transferred": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        result = run(module.params, module.check_mode)
    except InstallError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot install: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
