# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of kubelab.kubeadm.install_files: copy to the node only what it lacks.

One module run on the node says which items it lacks (phase 'plan', read only); only their sources are
copied, into the task's temporary directory on the node; a second module run checks each copy's sha256
and installs it (phase 'install'). A node that has everything costs one module run and no copy - the
reason for this plugin: ansible.builtin.copy + stat + unarchive per file would ask the node several
times per file and read every file on both sides each time (the same two-step as ansible.builtin.unarchive).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

_MODULE = "kubelab.kubeadm.install_files"


class ActionModule(ActionBase):
    # The node's temporary directory is made only when a source has to be copied (_send): a node that has
    # everything is asked once, with no mkdir/rm round trips around it.
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        items = args.get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise AnsibleActionFail("items must be a list of dicts (name, src or content, dest, ...)")
        try:
            plan = self._execute_module(
                module_name=_MODULE, module_args={**args, "_phase": "plan"}, task_vars=task_vars
            )
            # In check mode the node's answer already says what would be installed ("would install", changed).
            if plan.get("failed") or self._play_context.check_mode:
                return self._finish(result, plan)
            needed = {i["name"] for i in plan.get("items", []) if i.get("status") == "needed"}
            if not needed:
                return self._finish(result, plan)
            install_items = [self._with_copy(item) for item in items if item.get("name") in needed]
            installed = self._execute_module(
                module_name=_MODULE,
                module_args={**args, "items": install_items, "_phase": "install", "_transferred": True},
                task_vars=task_vars,
            )
            if installed.get("failed"):
                return self._finish(result, installed)
            by_name = {i["name"]: i for i in installed.get("items", [])}
            merged = [by_name.get(i["name"], i) for i in plan.get("items", [])]
            return self._finish(result, {**installed, "items": merged})
        finally:
            if self._connection._shell.tmpdir:
                self._remove_tmp_path(self._connection._shell.tmpdir)

    def _with_copy(self, item: dict) -> dict:
        """The item as the install phase gets it: a controller source replaced by its copy on the node."""
        if item.get("src") is None or item.get("remote_src"):
            return item
        return {**item, "src": self._send(item["name"], item["src"])}

    def _send(self, name: str, src: str) -> str:
        """Copy a controller file into the task's temporary directory on the node; its path there."""
        try:
            local = self._loader.get_real_file(self._find_needle("files", src), decrypt=False)
        except Exception as exc:  # AnsibleError subclasses and OS errors alike: name the item
            raise AnsibleActionFail(f"{name}: cannot read {src} on the controller: {to_text(exc)}") from None
        if not self._connection._shell.tmpdir:
            self._make_tmp_path()
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, f"src-{os.path.basename(src)}")
        self._transfer_file(local, remote)
        self._fixup_perms2((self._connection._shell.tmpdir, remote))
        return remote

    @staticmethod
    def _finish(result: dict, module_result: dict) -> dict:
        result.update(module_result)
        result.pop("invocation", None)
        return result
