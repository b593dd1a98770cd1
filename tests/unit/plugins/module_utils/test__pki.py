"""Tests for plugins/module_utils/_pki.py with CA certificates generated here (RSA and ECDSA),
pins cross-checked against the documented openssl pipeline."""

from __future__ import annotations

import base64
import os
import sys
from unittest.mock import MagicMock

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _pki
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import KubeadmError, KubeadmRunner
from ansible_collections.kubelab.kubeadm.plugins.module_utils._pki import PkiError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from certs import KEY_TYPES, make_ca, openssl_pin
from fake_kubeadm import fixture


@pytest.fixture(scope="module")
def cas():
    return {key_type: make_ca(key_type) for key_type in KEY_TYPES}


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("use_cryptography", [True, False])
def test_pin_matches_openssl(cas, key_type, use_cryptography):
    pem = cas[key_type]
    expected = openssl_pin(pem)
    assert _pki.ca_pins(pem, "ca.crt", use_cryptography=use_cryptography) == [expected]


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_raw_spki_equals_reencoded_spki(cas, key_type):
    (der,) = _pki.pem_certificates(cas[key_type], "ca.crt")
    assert _pki.raw_spki(der) == _pki.spki_der(der, use_cryptography=True)


def test_bundle_pins_every_certificate_in_order_once(cas):
    bundle = cas["ec384"] + b"\n" + cas["rsa2048"] + cas["ec384"]
    assert _pki.ca_pins(bundle, "bundle") == [openssl_pin(cas["ec384"]), openssl_pin(cas["rsa2048"])]
    assert _pki.ca_pins(bundle, "bundle") == _pki.ca_pins(bundle, "bundle", use_cryptography=False)


def test_default_backend_is_cryptography_when_installed(cas):
    assert _pki.HAS_CRYPTOGRAPHY
    (der,) = _pki.pem_certificates(cas["ec256"], "ca.crt")
    assert _pki.pin(der) == openssl_pin(cas["ec256"])


def test_pem_errors(cas):
    with pytest.raises(PkiError, match=r"holds no PEM certificate"):
        _pki.pem_certificates(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "ca.crt")
    with pytest.raises(PkiError, match=r"holds no PEM certificate"):
        _pki.pem_certificates(None, "ca.crt")
    broken = cas["ec256"] + b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
    with pytest.raises(PkiError, match=r"certificate 2 in ca.crt is not valid base64"):
        _pki.pem_certificates(broken, "ca.crt")


@pytest.mark.parametrize("use_cryptography", [True, False])
def test_garbage_certificate(use_cryptography):
    der = base64.b64encode(b"\x30\x03\x02\x01\x01")
    garbage = b"-----BEGIN CERTIFICATE-----\n" + der + b"\n-----END CERTIFICATE-----\n"
    with pytest.raises(PkiError, match=r"certificate 1 in ca.crt: not a valid X.509 certificate"):
        _pki.ca_pins(garbage, "ca.crt", use_cryptography=use_cryptography)


def test_raw_spki_rejects_malformed_der(cas):
    (der,) = _pki.pem_certificates(cas["rsa2048"], "ca.crt")
    for bad in (
        b"",
        b"\x31\x00",
        der[:40],
        b"\x30\x02\x02\x00",
        b"\x30\x85" + b"\x00" * 10,
        b"\x30\x03\x30\x01\x05",
        b"\x30\x04\x30\x02\xa0\x00",
        b"\x30\x80",
    ):
        with pytest.raises(ValueError, match=r"DER|tbsCertificate|subjectPublicKeyInfo"):
            _pki.raw_spki(bad)
    # a v1 certificate has no [0] version element: still read correctly
    tbs_v1 = b"\x02\x01\x01" + b"\x30\x00" * 4 + b"\x30\x03\x01\x01\xff"
    cert_v1 = b"\x30" + bytes([len(tbs_v1) + 2]) + b"\x30" + bytes([len(tbs_v1)]) + tbs_v1
    assert _pki.raw_spki(cert_v1) == b"\x30\x03\x01\x01\xff"
    with pytest.raises(ValueError, match=r"no subjectPublicKeyInfo"):
        _pki.raw_spki(cert_v1[:-5] + b"\x02\x03\x01\x01\xff")


@pytest.mark.parametrize(
    ("server", "endpoint"),
    [
        ("https://10.0.2.8:6443", "10.0.2.8:6443"),
        ("https://10.0.2.8:6443/", "10.0.2.8:6443"),
        ("HTTPS://cp.example.lan", "cp.example.lan:443"),
        ("https://[fd00::8]:6443", "[fd00::8]:6443"),
        (" https://k8s-api:8443 ", "k8s-api:8443"),
    ],
)
def test_api_server_endpoint(server, endpoint):
    assert _pki.api_server_endpoint(server) == endpoint


@pytest.mark.parametrize(
    "server",
    [
        "http://10.0.2.8:6443",
        "10.0.2.8:6443",
        "https://h:6443/k8s",
        "https://h:0",
        "https://h:99999",
        "https://",
        "unix:///run/api.sock",
    ],
)
def test_api_server_endpoint_rejects(server):
    with pytest.raises(KubeadmError, match=r"kubeconfig's server"):
        _pki.api_server_endpoint(server)


# --- join_info ---------------------------------------------------------------------------------


def setup_cluster(tmp_path, ca_pem, kubeconfig_ca_pem=None, ca_in_kubeconfig="data"):
    pki = tmp_path / "pki"
    pki.mkdir(exist_ok=True)
    (pki / "ca.crt").write_bytes(ca_pem)
    kc_ca = kubeconfig_ca_pem if kubeconfig_ca_pem is not None else ca_pem
    if ca_in_kubeconfig == "data":
        ca_line = f"certificate-authority-data: {base64.b64encode(kc_ca).decode()}"
    elif ca_in_kubeconfig == "file":
        (tmp_path / "kc-ca.crt").write_bytes(kc_ca)
        ca_line = "certificate-authority: kc-ca.crt"
    else:
        ca_line = "insecure-skip-tls-verify: true"
    (tmp_path / "admin.conf").write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
        f"    {ca_line}\n    server: https://10.0.2.8:6443\n  name: lab\n"
        "contexts:\n- context:\n    cluster: lab\n    user: admin\n  name: admin@lab\ncurrent-context: admin@lab\n"
        "users:\n- name: admin\n  user: {}\n"
    )
    return {
        "kubeconfig": str(tmp_path / "admin.conf"),
        "ca_cert_path": str(pki / "ca.crt"),
        "certificate_key": False,
        "config_path": None,
    }


def runner_with(result=None):
    result = result or (0, fixture("upload_certs.txt"), "")
    module = MagicMock()
    module.get_bin_path.return_value = "/usr/bin/kubeadm"
    module.run_command.return_value = result
    return KubeadmRunner(module, None, "/etc/kubernetes/admin.conf"), module


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("where", ["data", "file"])
def test_join_info(tmp_path, cas, key_type, where):
    params = setup_cluster(tmp_path, cas[key_type], ca_in_kubeconfig=where)
    runner, module = runner_with()
    result = _pki.join_info(runner, params)
    pin = openssl_pin(cas[key_type])
    assert result == {
        "changed": False,
        "api_server_endpoint": "10.0.2.8:6443",
        "ca_cert_hashes": [pin],
        "cluster_name": "lab",
        "join_discovery": {"apiServerEndpoint": "10.0.2.8:6443", "caCertHashes": [pin]},
        "warnings": [],
    }
    module.run_command.assert_not_called()


def test_join_info_refuses_cas_of_different_clusters(tmp_path, cas):
    params = setup_cluster(tmp_path, cas["rsa2048"], kubeconfig_ca_pem=cas["ec256"])
    with pytest.raises(PkiError, match=r"does not match the certificate authority of kubeconfig .*different clusters"):
        _pki.join_info(runner_with()[0], params)


def test_join_info_partial_overlap_warns(tmp_path, cas):
    params = setup_cluster(tmp_path, cas["rsa2048"] + cas["ec256"], kubeconfig_ca_pem=cas["ec256"])
    result = _pki.join_info(runner_with()[0], params)
    assert result["ca_cert_hashes"] == [openssl_pin(cas["rsa2048"]), openssl_pin(cas["ec256"])]
    assert "only partly agree" in result["warnings"][0]


def test_join_info_kubeconfig_without_ca_warns(tmp_path, cas):
    params = setup_cluster(tmp_path, cas["ec384"], ca_in_kubeconfig="none")
    result = _pki.join_info(runner_with()[0], params)
    assert result["ca_cert_hashes"] == [openssl_pin(cas["ec384"])]
    assert "could not be cross-checked" in result["warnings"][0]


def test_join_info_missing_files(tmp_path, cas):
    params = setup_cluster(tmp_path, cas["ec256"])
    with pytest.raises(KubeadmError, match=r"ca_cert_path .*nope.crt does not exist: run the task"):
        _pki.join_info(runner_with()[0], dict(params, ca_cert_path=str(tmp_path / "nope.crt")))
    params = setup_cluster(tmp_path, cas["ec256"], ca_in_kubeconfig="file")
    os.remove(tmp_path / "kc-ca.crt")
    with pytest.raises(KubeadmError, match=r"certificate-authority of kubeconfig .*kc-ca.crt does not exist"):
        _pki.join_info(runner_with()[0], params)


def test_join_info_certificate_key(tmp_path, cas):
    params = dict(setup_cluster(tmp_path, cas["ec256"]), certificate_key=True)
    runner, module = runner_with()
    result = _pki.join_info(runner, params)
    assert result["changed"] is True
    assert result["certificate_key"] == "f9ea00c50ef12a386949dfb84b3abb2aa1053cc84f3792cd4b8aa6cc42c1fd57"
    assert module.run_command.call_args[0][0] == [
        "/usr/bin/kubeadm",
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
    ]


def test_join_info_certificate_key_with_config(tmp_path, cas):
    config = tmp_path / "kubeadm-init.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
    params = dict(setup_cluster(tmp_path, cas["ec256"]), certificate_key=True, config_path=str(config))
    runner, module = runner_with()
    _pki.join_info(runner, params)
    assert f"--config={config}" in module.run_command.call_args[0][0]
    with pytest.raises(KubeadmError, match=r"config_path .* does not exist"):
        _pki.join_info(runner, dict(params, config_path=str(tmp_path / "missing.yaml")))


def test_join_info_certificate_key_check_mode(tmp_path, cas):
    params = dict(setup_cluster(tmp_path, cas["ec256"]), certificate_key=True)
    runner, module = runner_with()
    result = _pki.join_info(runner, params, check_mode=True)
    assert result["changed"] is True
    assert result["certificate_key"] is None
    module.run_command.assert_not_called()


def test_upload_certs_unexpected_output_does_not_leak_a_key():
    key = "f9ea00c50ef12a386949dfb84b3abb2aa1053cc84f3792cd4b8aa6cc42c1fd57"
    runner, _module = runner_with((0, f"[upload-certs] Using certificate key:\n{key}\nsurprise trailer\n", ""))
    with pytest.raises(PkiError, match=r"last output line is not a certificate key") as info:
        _pki.upload_certs(runner)
    assert key not in repr(info.value.details)
    assert "********" in info.value.details["stdout"]
    runner, _module = runner_with((0, "", ""))
    with pytest.raises(PkiError, match=r"not a certificate key"):
        _pki.upload_certs(runner)


def test_upload_certs_failure():
    stderr = "error: error execution phase upload-certs: unable to create *v1.Role: Unauthorized\n"
    runner, _module = runner_with((1, "", stderr))
    with pytest.raises(KubeadmError, match=r"uploading the control-plane certificates .* refused the credentials"):
        _pki.upload_certs(runner)
