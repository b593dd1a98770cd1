"""Shared fixtures for the unit tests.

The modules import each other as ``ansible_collections.kubelab.kubeadm...``. To make that
import work from a plain checkout, a symlink ``build/collections/ansible_collections/kubelab/
kubeadm -> <repo>`` is created and ``build/collections`` is put on ``sys.path``
(``ansible_collections`` is a namespace package, so the collections shipped with the
``ansible`` package stay importable too).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

import pytest

REPO = Path(__file__).resolve().parents[2]
_COLLECTIONS = REPO / "build" / "collections"
_LINK = _COLLECTIONS / "ansible_collections" / "kubelab" / "kubeadm"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(REPO, _LINK)
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils import _internal as module_internal  # noqa: E402
from ansible.module_utils import basic  # noqa: E402

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # pragma: no cover - ansible-core <= 2.18
    from ansible.module_utils.common.text.converters import to_bytes

    @contextmanager
    def patch_module_args(args=None):
        payload = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))
        with patch.object(basic, "_ANSIBLE_ARGS", payload):
            yield


class AnsibleExitJson(Exception):
    """Raised in place of AnsibleModule.exit_json; args[0] is the result dict."""


class AnsibleFailJson(Exception):
    """Raised in place of AnsibleModule.fail_json; args[0] is the result dict."""


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, **kwargs):
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


@pytest.fixture(autouse=True)
def _patch_exit_fail():
    # Modules run on the node, never in the controller: once a test has imported controller code (a filter
    # plugin imports ansible.errors), module_utils would send warnings to the controller's display instead.
    with (
        patch.multiple(basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json),
        patch.object(module_internal, "is_controller", False),
    ):
        yield


@pytest.fixture
def run_module():
    """run_module(main, args, check_mode=False, diff=False) -> (result dict, failed bool)."""

    def _run(main, args, check_mode=False, diff=False):
        args = dict(args)
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            try:
                main()
            except AnsibleExitJson as e:
                return e.args[0], False
            except AnsibleFailJson as e:
                return e.args[0], True
        raise AssertionError("module returned without exit_json or fail_json")

    return _run
