"""kubeadm_join_info through AnsibleModule, with CA certificates generated in the test."""

from __future__ import annotations

import base64
import os
import re
import sys
from unittest.mock import patch

import pytest
from ansible.module_utils import basic
from ansible_collections.kubelab.kubeadm.plugins.modules import kubeadm_join_info

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from certs import make_ca, openssl_pin
from fake_kubeadm import KUBEADM, FakeKubeadm, fixture

KEY = "f9ea00c50ef12a386949dfb84b3abb2aa1053cc84f3792cd4b8aa6cc42c1fd57"


@pytest.fixture(scope="module")
def ca():
    return make_ca("ec256")


@pytest.fixture
def cluster(tmp_path, ca):
    (tmp_path / "ca.crt").write_bytes(ca)
    (tmp_path / "admin.conf").write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
        f"    certificate-authority-data: {base64.b64encode(ca).decode()}\n"
        "    server: https://10.0.2.8:6443\n  name: kubernetes\n"
        "contexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n"
        "  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\n"
    )
    return {"kubeconfig": str(tmp_path / "admin.conf"), "ca_cert_path": str(tmp_path / "ca.crt")}


@pytest.fixture
def run(run_module):
    def _run(fake, args, **kwargs):
        with (
            patch.object(basic.AnsibleModule, "run_command", new=fake.run_command),
            patch.object(basic.AnsibleModule, "get_bin_path", return_value=KUBEADM),
            patch.object(basic.AnsibleModule, "warn") as warn,
        ):
            result, failed = run_module(kubeadm_join_info.main, args, **kwargs)
        result["warnings"] = [c.args[0] for c in warn.call_args_list]
        return result, failed

    return _run


def test_join_info(run, cluster, ca):
    fake = FakeKubeadm(None)
    result, failed = run(fake, cluster, check_mode=True)
    assert not failed, result
    pin = openssl_pin(ca)
    assert result["changed"] is False
    assert result["api_server_endpoint"] == "10.0.2.8:6443"
    assert result["ca_cert_hashes"] == [pin]
    assert result["cluster_name"] == "kubernetes"
    assert result["join_discovery"] == {"apiServerEndpoint": "10.0.2.8:6443", "caCertHashes": [pin]}
    assert "certificate_key" not in result
    assert result["warnings"] == []
    assert fake.calls == []


def test_certificate_key(run, cluster):
    fake = FakeKubeadm(None)
    fake.outputs["init phase upload-certs"] = fixture("upload_certs.txt")
    result, failed = run(fake, dict(cluster, certificate_key=True))
    assert not failed, result
    assert result["changed"] is True
    assert result["certificate_key"] == KEY
    assert fake.calls == [
        [KUBEADM, "init", "phase", "upload-certs", "--upload-certs", "--kubeconfig", cluster["kubeconfig"]]
    ]


def test_certificate_key_check_mode(run, cluster):
    fake = FakeKubeadm(None)
    result, failed = run(fake, dict(cluster, certificate_key=True), check_mode=True)
    assert not failed
    assert (result["changed"], result["certificate_key"]) == (True, None)
    assert fake.calls == []


def test_certificate_key_failure(run, cluster):
    fake = FakeKubeadm(None)
    fake.failures["init phase upload-certs"] = [
        (1, "", "error: error execution phase upload-certs: open /etc/kubernetes/pki/ca.crt: permission denied\n")
    ]
    result, failed = run(fake, dict(cluster, certificate_key=True))
    assert failed
    assert "uploading the control-plane certificates" in result["msg"]
    assert "become: true" in result["msg"]


def test_mismatching_ca_fails(run, cluster):
    with open(cluster["ca_cert_path"], "wb") as handle:
        handle.write(make_ca("rsa2048"))
    result, failed = run(FakeKubeadm(None), cluster)
    assert failed
    assert "they belong to different clusters" in result["msg"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("kubeconfig", "kubeconfig .*/nope does not exist"),
        ("ca_cert_path", "ca_cert_path .*/nope does not exist"),
    ],
)
def test_missing_files(run, cluster, tmp_path, key, message):
    result, failed = run(FakeKubeadm(None), dict(cluster, **{key: str(tmp_path / "nope")}))
    assert failed
    assert re.search(message, result["msg"])
    assert "control-plane" in result["msg"]


def test_ca_file_without_certificate(run, cluster):
    with open(cluster["ca_cert_path"], "w") as handle:
        handle.write("not a certificate\n")
    result, failed = run(FakeKubeadm(None), cluster)
    assert failed
    assert "holds no PEM certificate" in result["msg"]


def test_kubeconfig_without_ca_warns(run, cluster):
    with open(cluster["kubeconfig"]) as handle:
        text = handle.read()
    with open(cluster["kubeconfig"], "w") as handle:
        handle.write(re.sub(r"certificate-authority-data: \S+", "insecure-skip-tls-verify: true", text))
    result, failed = run(FakeKubeadm(None), cluster)
    assert not failed, result
    assert len(result["ca_cert_hashes"]) == 1
    assert "could not be cross-checked" in result["warnings"][0]
