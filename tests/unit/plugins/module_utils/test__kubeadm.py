"""Tests for plugins/module_utils/_kubeadm.py: binary lookup, running, error mapping, kubeconfig."""

from __future__ import annotations

import base64
import os
import stat
import sys
from unittest.mock import MagicMock, patch

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _kubeadm
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import KubeadmError, KubeadmRunner

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
import lab_bundle

TOKEN = "abcdef.0123456789abcdef"


def fake_module(bin_path="/usr/bin/kubeadm", result=(0, "ok\n", "")):
    module = MagicMock()
    module.get_bin_path.return_value = bin_path
    module.run_command.return_value = result
    return module


# --- files -------------------------------------------------------------------------------------


def test_check_readable_file(tmp_path):
    good = tmp_path / "admin.conf"
    good.write_text("x")
    assert _kubeadm.check_readable_file(str(good), "kubeconfig", "HINT") == str(good)
    with pytest.raises(KubeadmError, match=r"kubeconfig .*missing does not exist: HINT"):
        _kubeadm.check_readable_file(str(tmp_path / "missing"), "kubeconfig", "HINT")
    with pytest.raises(KubeadmError, match=r"is not a regular file: HINT"):
        _kubeadm.check_readable_file(str(tmp_path), "kubeconfig", "HINT")
    with pytest.raises(KubeadmError, match=r"kubeconfig is empty: HINT"):
        _kubeadm.check_readable_file("", "kubeconfig", "HINT")
    with (
        patch.object(_kubeadm.os, "access", return_value=False),
        pytest.raises(KubeadmError, match=r"not readable by this user: run the task with become: true"),
    ):
        _kubeadm.check_readable_file(str(good), "kubeconfig", "HINT")


def test_read_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"data")
    assert _kubeadm.read_file(str(path), "ca_cert_path", "HINT") == b"data"
    with (
        patch("builtins.open", side_effect=OSError("I/O error")),
        pytest.raises(KubeadmError, match=r"could not be read \(I/O error\): HINT"),
    ):
        _kubeadm.read_file(str(path), "ca_cert_path", "HINT")


# --- the runner --------------------------------------------------------------------------------


def test_runner_finds_kubeadm_in_path():
    module = fake_module()
    runner = KubeadmRunner(module, None, "/etc/kubernetes/admin.conf")
    assert runner.binary == "/usr/bin/kubeadm"
    assert runner.binary == "/usr/bin/kubeadm"
    module.get_bin_path.assert_called_once_with(
        "kubeadm", required=False, opt_dirs=["/usr/local/bin", "/usr/bin", "/opt/bin"]
    )


def test_runner_missing_kubeadm():
    runner = KubeadmRunner(fake_module(bin_path=None))
    with pytest.raises(KubeadmError, match=r"kubeadm was not found in PATH.*install it .*or set kubeadm_path"):
        runner.run(["version"], action="x")


def test_runner_kubeadm_path(tmp_path):
    binary = tmp_path / "kubeadm"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    module = fake_module()
    assert KubeadmRunner(module, str(binary)).binary == str(binary)
    module.get_bin_path.assert_not_called()
    with pytest.raises(KubeadmError, match=r"kubeadm_path .*nope does not exist"):
        assert KubeadmRunner(module, str(tmp_path / "nope")).binary
    with pytest.raises(KubeadmError, match=r"is not an executable file"):
        assert KubeadmRunner(module, str(tmp_path)).binary
    binary.chmod(0o644)
    with (
        patch.object(_kubeadm.os, "access", return_value=False),
        pytest.raises(KubeadmError, match=r"is not an executable file: fix kubeadm_path or its mode"),
    ):
        assert KubeadmRunner(module, str(binary)).binary
    assert not binary.stat().st_mode & stat.S_IXUSR


def test_runner_builds_argv_and_runs_without_a_shell():
    module = fake_module(result=(0, "out", "err"))
    runner = KubeadmRunner(module, None, "/etc/kubernetes/admin.conf")
    assert runner.run(["token", "list", "-o", "json"], action="listing") == (0, "out", "err")
    module.run_command.assert_called_once_with(
        ["/usr/bin/kubeadm", "token", "list", "-o", "json", "--kubeconfig", "/etc/kubernetes/admin.conf"],
        environ_update={"LC_ALL": "C", "LANG": "C"},
    )
    runner.run(["config", "images", "list"], action="images", cluster=False)
    assert module.run_command.call_args[0][0] == ["/usr/bin/kubeadm", "config", "images", "list"]
    assert KubeadmRunner(module).command(["version"]) == ["/usr/bin/kubeadm", "version"]


def test_runner_error_names_command_reason_and_fix_without_secrets():
    stderr = (
        f'error: a token with id "abcdef" already exists ({TOKEN})\n'
        "To see the stack trace of this error execute with --v=5 or higher\n"
    )
    module = fake_module(result=(1, f"printed {TOKEN}", stderr))
    runner = KubeadmRunner(module, None, "/etc/kubernetes/admin.conf")
    runner.secrets.add(TOKEN)
    with pytest.raises(KubeadmError) as info:
        runner.run(["token", "create", TOKEN], action="creating bootstrap token abcdef")
    err = info.value
    assert str(err) == err.msg
    assert err.msg.startswith("creating bootstrap token abcdef failed: `/usr/bin/kubeadm token create ")
    assert 'exited with 1: error: a token with id "abcdef" already exists' in err.msg
    assert err.details["rc"] == 1
    assert err.details["cmd"] == ("/usr/bin/kubeadm token create ******** --kubeconfig /etc/kubernetes/admin.conf")
    for value in (err.msg, err.details["stderr"], err.details["stdout"], err.details["cmd"]):
        assert TOKEN not in value
        assert "0123456789abcdef" not in value


@pytest.mark.parametrize(
    ("stderr", "hint"),
    [
        (
            "error: failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file",
            "kubeconfig could not",
        ),
        (
            'error: Get "https://10.0.2.8:6443/api/v1/...": dial tcp 10.0.2.8:6443: connect: connection refused',
            "API server is not reachable",
        ),
        ("error: tls: failed to verify certificate: x509: certificate signed by unknown authority", "TLS trust failed"),
        ("error: Unauthorized", "refused the credentials"),
        ("Error: unknown shorthand flag: 'o' in -o", "kubeadm >= 1.15"),
        ("error: open /etc/kubernetes/pki/ca.key: permission denied", "become: true"),
    ],
)
def test_error_hints(stderr, hint):
    runner = KubeadmRunner(fake_module(result=(1, "", stderr + "\nTo see the stack trace of this error\n")))
    with pytest.raises(KubeadmError, match=hint) as info:
        runner.run(["token", "list"], action="listing")
    assert stderr.split("\n")[0][:40] in info.value.msg


def test_error_without_output_and_without_hint():
    runner = KubeadmRunner(fake_module(result=(2, "", "")))
    with pytest.raises(KubeadmError, match=r"exited with 2: no error output$"):
        runner.run(["token", "list"], action="listing")
    runner = KubeadmRunner(fake_module(result=(3, "something odd\n\n", "")))
    with pytest.raises(KubeadmError, match=r"exited with 3: something odd$"):
        runner.run(["token", "list"], action="listing")


def test_iter_json_objects_recovers_after_a_broken_object():
    text = '{\n    "kind": "BootstrapToken",\n    "broken\n{\n    "a": 1\n}\n[1, 2]\n{"b": [\n{"c": 2}]}\n'
    assert list(_kubeadm.iter_json_objects(text)) == [{"a": 1}, {"b": [{"c": 2}]}]


# --- kubeconfig --------------------------------------------------------------------------------

CA_PEM = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


def write_kubeconfig(tmp_path, body):
    path = tmp_path / "admin.conf"
    path.write_text(body)
    return str(path)


def kubeconfig_yaml(server="https://10.0.2.8:6443", ca_line=None, current="kubernetes-admin@kubernetes"):
    ca_line = ca_line if ca_line is not None else f"certificate-authority-data: {base64.b64encode(CA_PEM).decode()}"
    return f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    {ca_line}
    server: {server}
  name: kubernetes
- cluster:
    server: https://other:6443
  name: other
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
- context:
    cluster: missing
    user: x
  name: broken
current-context: {current}
users:
- name: kubernetes-admin
  user: {{}}
"""


def test_read_kubeconfig(tmp_path):
    info = _kubeadm.read_kubeconfig(write_kubeconfig(tmp_path, kubeconfig_yaml()))
    assert info == {"name": "kubernetes", "server": "https://10.0.2.8:6443", "ca_data": CA_PEM, "ca_file": None}


def test_read_kubeconfig_relative_ca_file(tmp_path):
    body = kubeconfig_yaml(ca_line="certificate-authority: pki/ca.crt")
    info = _kubeadm.read_kubeconfig(write_kubeconfig(tmp_path, body))
    assert info["ca_file"] == os.path.join(str(tmp_path), "pki/ca.crt")
    assert info["ca_data"] is None
    body = kubeconfig_yaml(ca_line="certificate-authority: /x/ca.crt")
    info = _kubeadm.read_kubeconfig(write_kubeconfig(tmp_path, body))
    assert info["ca_file"] == "/x/ca.crt"


def test_read_kubeconfig_single_cluster_without_current_context(tmp_path):
    body = "clusters:\n- name: solo\n  cluster:\n    server: https://h:6443\n"
    assert _kubeadm.read_kubeconfig(write_kubeconfig(tmp_path, body))["name"] == "solo"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (kubeconfig_yaml(current="nope"), "current-context 'nope' is not among its contexts"),
        (kubeconfig_yaml(current="broken"), "cluster 'missing' of the current context is not among its clusters"),
        (kubeconfig_yaml(current='""'), "has no current-context"),
        (kubeconfig_yaml(server='""'), "cluster 'kubernetes' has no server"),
        (kubeconfig_yaml(ca_line="certificate-authority-data: '!!notbase64!!'"), "is not base64"),
        ("clusters: [\n", "is not valid YAML"),
        ("- a\n- b\n", "no mapping at the top"),
        ("clusters: {a: 1}\n", "clusters is not a list of named entries"),
        ("contexts:\n- {context: {}}\n", "contexts is not a list of named entries"),
    ],
)
def test_read_kubeconfig_errors(tmp_path, body, message):
    with pytest.raises(KubeadmError, match=message):
        _kubeadm.read_kubeconfig(write_kubeconfig(tmp_path, body))


def test_read_kubeconfig_missing(tmp_path):
    with pytest.raises(KubeadmError, match=r"kubeconfig .* does not exist: run the task on the control-plane node"):
        _kubeadm.read_kubeconfig(str(tmp_path / "admin.conf"))


# Without PyYAML (a bare air-gapped node), kubectl converts the kubeconfig to JSON.
LAB_KUBECTL = lab_bundle.binary("kubectl")
REAL_KUBECTL = LAB_KUBECTL if os.access(LAB_KUBECTL, os.X_OK) else None


class _SubprocessModule:
    """Just enough of AnsibleModule: finds the real kubectl and runs it."""

    def __init__(self, kubectl):
        self.kubectl = kubectl

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return self.kubectl if name == "kubectl" else None

    def run_command(self, cmd, environ_update=None):
        import subprocess

        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.skipif(REAL_KUBECTL is None, reason=f"no kubectl at {LAB_KUBECTL}: build the lab's bundle (make bundle)")
def test_read_kubeconfig_without_pyyaml_uses_real_kubectl(tmp_path):
    path = write_kubeconfig(tmp_path, kubeconfig_yaml())
    with_yaml = _kubeadm.read_kubeconfig(path)
    with patch.object(_kubeadm, "HAS_YAML", False):
        without = _kubeadm.read_kubeconfig(path, _SubprocessModule(REAL_KUBECTL))
    assert without == with_yaml
    assert without["server"] == "https://10.0.2.8:6443"


def test_read_kubeconfig_without_pyyaml_or_kubectl(tmp_path):
    path = write_kubeconfig(tmp_path, kubeconfig_yaml())
    module = fake_module()
    module.get_bin_path.return_value = None
    with patch.object(_kubeadm, "HAS_YAML", False), pytest.raises(KubeadmError, match=r"PyYAML .* or kubectl"):
        _kubeadm.read_kubeconfig(path, module)
    with patch.object(_kubeadm, "HAS_YAML", False), pytest.raises(KubeadmError, match="install python3-yaml"):
        _kubeadm.read_kubeconfig(path)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (
            (1, "", "error: open /nope: no such file or directory\n"),
            r"reading the kubeconfig .* with kubectl failed: `/usr/local/bin/kubectl config view --raw -o json"
            r" --kubeconfig .*` exited with 1: error: open /nope: no such file.*Fix: run the task on the control-plane",
        ),
        ((0, "not json", ""), "printed no JSON"),
    ],
)
def test_read_kubeconfig_kubectl_errors(tmp_path, result, message):
    path = write_kubeconfig(tmp_path, kubeconfig_yaml())
    module = fake_module(bin_path="/usr/local/bin/kubectl", result=result)
    with patch.object(_kubeadm, "HAS_YAML", False), pytest.raises(KubeadmError, match=message):
        _kubeadm.read_kubeconfig(path, module)


def test_a_failing_kubectl_never_echoes_its_stdout(tmp_path):
    """kubectl config view --raw prints the client key: a failure shows stderr only."""
    path = write_kubeconfig(tmp_path, kubeconfig_yaml())
    module = fake_module(bin_path="/usr/local/bin/kubectl", result=(1, "client-key-data: S3CRET", "error: boom\n"))
    with patch.object(_kubeadm, "HAS_YAML", False), pytest.raises(KubeadmError) as info:
        _kubeadm.read_kubeconfig(path, module)
    assert "stdout" not in info.value.details
    assert info.value.details["stderr"] == "error: boom"
    assert "S3CRET" not in info.value.msg
    assert module.run_command.call_args.kwargs == {"environ_update": {"LC_ALL": "C", "LANG": "C"}}
