"""kubeadm_token_info through AnsibleModule on kubeadm's recorded `token list -o json` outputs."""

from __future__ import annotations

import json
import os
import sys
from unittest.mock import patch

import pytest
from ansible.module_utils import basic
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _token
from ansible_collections.kubelab.kubeadm.plugins.modules import kubeadm_token_info

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from fake_kubeadm import KUBEADM, NOW, FakeKubeadm, fixture

SECRETS = [
    "0123456789abcdef",
    "a1b2c3d4e5f6g7h8",
    "q0w9e8r7t6y5u4i3",
    "abcdefghij012345",
    "zyxwvutsrq987654",
    "abcdefghijklmnop",
]


@pytest.fixture
def run(run_module, tmp_path):
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text("apiVersion: v1\n")

    def _run(fake, args=None, **kwargs):
        args = dict({"kubeconfig": str(kubeconfig)}, **(args or {}))
        with (
            patch.object(basic.AnsibleModule, "run_command", new=fake.run_command),
            patch.object(basic.AnsibleModule, "get_bin_path", return_value=KUBEADM),
            patch.object(_token, "utcnow", return_value=NOW),
        ):
            return run_module(kubeadm_token_info.main, args, **kwargs)

    return _run


@pytest.mark.parametrize(
    "listing", ["token_list_v1alpha1.json", "token_list_v1alpha2.json", "token_list_v1alpha3.json"]
)
def test_lists_tokens_without_secrets(run, listing):
    fake = FakeKubeadm(listing)
    result, failed = run(fake, check_mode=True)
    assert not failed, result
    assert result["changed"] is False
    tokens = {t["token_id"]: t for t in result["tokens"]}
    assert list(tokens) == ["abcdef", "jn7k2m", "kl8s2x", "old123", "prx9kc", "tz0800"]
    assert tokens["jn7k2m"] == {
        "token_id": "jn7k2m",
        "description": "kubelab join token",
        "usages": ["authentication", "signing"],
        "groups": ["system:bootstrappers:kubeadm:default-node-token", "system:bootstrappers:kubelab:workers"],
        "expires": "2026-11-29T09:00:00Z",
        "expired": False,
        "remaining_seconds": 23 * 3600,
        "is_upload_certs_proxy": False,
    }
    assert (tokens["kl8s2x"]["expires"], tokens["kl8s2x"]["remaining_seconds"]) == (None, None)
    assert (tokens["old123"]["expired"], tokens["old123"]["remaining_seconds"]) == (True, 0)
    assert tokens["prx9kc"]["is_upload_certs_proxy"] is True
    assert tokens["prx9kc"]["usages"] == [] and tokens["prx9kc"]["groups"] == []
    assert tokens["prx9kc"]["remaining_seconds"] == 3600
    assert tokens["tz0800"]["expires"] == "2026-11-29T10:00:00Z"
    text = json.dumps(result)
    assert not any(secret in text for secret in SECRETS)
    assert fake.calls[0][:5] == [KUBEADM, "token", "list", "-o", "json"]
    assert fake.calls[0][5] == "--kubeconfig"


def test_no_tokens(run):
    result, failed = run(FakeKubeadm(None))
    assert not failed
    assert result["tokens"] == []
    assert fixture("token_list_empty.json") == ""


def test_kubeadm_failure(run):
    fake = FakeKubeadm()
    fake.failures["token list"] = [(1, "", "error: failed to load admin kubeconfig: open x: permission denied\n")]
    result, failed = run(fake)
    assert failed
    assert "listing bootstrap tokens failed" in result["msg"]
    assert "kubeconfig could not be loaded" in result["msg"]


def test_missing_kubeconfig(run, tmp_path):
    fake = FakeKubeadm()
    result, failed = run(fake, {"kubeconfig": str(tmp_path / "missing.conf")})
    assert failed
    assert "missing.conf does not exist" in result["msg"]
    assert fake.calls == []


def test_kubeadm_path(run, tmp_path):
    fake = FakeKubeadm()
    binary = tmp_path / "kubeadm"
    binary.write_text("")
    binary.chmod(0o755)
    fake_binary = FakeKubeadm()

    def run_command(_module, args, **kwargs):
        assert args[0] == str(binary)
        return fake_binary.run_command([KUBEADM, *args[1:]], **kwargs)

    fake.run_command = run_command.__get__(fake)
    result, failed = run(fake, {"kubeadm_path": str(binary)})
    assert not failed, result
    assert len(result["tokens"]) == 6
    result, failed = run(fake, {"kubeadm_path": str(tmp_path / "nope")})
    assert failed
    assert "kubeadm_path" in result["msg"]
    assert "does not exist" in result["msg"]
