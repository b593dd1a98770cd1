"""The modules against a REAL kubeadm binary, talking to fake_apiserver.py on 127.0.0.1.

Needs a real kubeadm: $KUBEADM_BIN, or bin/kubeadm of the lab's bundle (`make bundle` builds it
from the Go modules; `make units` builds it first, and fails on a skip). Nothing here leaves the
machine: the API server is on loopback and every `config images list` call gets an exact
--kubernetes-version.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import sys

import pytest
from ansible_collections.kubelab.kubeadm.plugins.modules import (
    kubeadm_images_info,
    kubeadm_join_info,
    kubeadm_token,
    kubeadm_token_info,
)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from certs import KEY_TYPES, openssl_pin
from fake_apiserver import FakeApiServer, bootstrap_secret
from fake_kubeadm import fixture
from lab_bundle import binary

KUBEADM = os.environ.get("KUBEADM_BIN") or binary("kubeadm")
pytestmark = pytest.mark.skipif(
    not os.access(KUBEADM, os.X_OK), reason=f"no kubeadm binary at {KUBEADM}: build the lab's bundle (make bundle)"
)


@pytest.fixture
def api(tmp_path):
    with FakeApiServer(str(tmp_path)) as server:
        yield server


def module_args(api, **args):
    return dict({"kubeconfig": api.kubeconfig, "kubeadm_path": KUBEADM}, **args)


def test_token_lifecycle(run_module, api):
    args = module_args(api, description="kubelab join token", ttl="2h", min_ttl="1h")
    created, failed = run_module(kubeadm_token.main, args, diff=True)
    assert not failed, created
    assert created["changed"] is True
    assert created["expires"]
    token_id = created["token_id"]
    secret = api.secrets[f"bootstrap-token-{token_id}"]
    assert base64.b64decode(secret["data"]["description"]).decode() == "kubelab join token"
    assert base64.b64decode(secret["data"]["token-secret"]).decode() == created["token"].split(".")[1]

    again, failed = run_module(kubeadm_token.main, args)
    assert not failed, again
    assert (again["changed"], again["reused"], again["token"]) == (False, True, created["token"])

    info, failed = run_module(kubeadm_token_info.main, module_args(api))
    assert not failed, info
    (listed,) = info["tokens"]
    assert listed["token_id"] == token_id
    assert listed["expires"] == created["expires"]
    assert 7100 < listed["remaining_seconds"] <= 7200
    assert created["token"].split(".")[1] not in repr(info)

    absent = module_args(api, state="absent", token_id=token_id)
    check, _failed = run_module(kubeadm_token.main, absent, check_mode=True)
    assert check["changed"] is True
    assert f"bootstrap-token-{token_id}" in api.secrets
    gone, failed = run_module(kubeadm_token.main, module_args(api, state="absent", token_id=token_id))
    assert not failed, gone
    assert gone["changed"] is True
    assert api.secrets == {}
    gone, _failed = run_module(kubeadm_token.main, module_args(api, state="absent", token_id=token_id))
    assert gone["changed"] is False


def test_existing_upload_certs_proxy_and_expired_tokens_are_not_reused(run_module, api):
    api.add(
        bootstrap_secret(
            "prx9kc.zyxwvutsrq987654",
            "2099-01-01T00:00:00Z",
            "Proxy for managing TTL for the kubeadm-certs secret",
            usages=(),
            groups=(),
        )
    )
    api.add(bootstrap_secret("old123.abcdefghij012345", "2020-01-01T00:00:00Z", "kubelab join token"))
    result, failed = run_module(kubeadm_token.main, module_args(api, description="kubelab join token"))
    assert not failed, result
    assert result["changed"] is True
    assert result["token_id"] not in ("prx9kc", "old123")
    info, _failed = run_module(kubeadm_token_info.main, module_args(api))
    flags = {t["token_id"]: (t["expired"], t["is_upload_certs_proxy"]) for t in info["tokens"]}
    assert flags["prx9kc"] == (False, True)
    assert flags["old123"] == (True, False)


def test_create_race_is_reported_and_the_other_token_kept(run_module, api):
    """Another process creates the same id between our list and our create: kubeadm refuses, we say so."""
    api.add(bootstrap_secret("given1.0000000000000001", "2099-01-01T00:00:00Z", "someone else's"))
    api.hidden.add("bootstrap-token-given1")
    result, failed = run_module(kubeadm_token.main, module_args(api, token="given1.0000000000000001"))
    assert failed
    assert "creating bootstrap token given1 failed" in result["msg"]
    assert 'a token with id "given1" already exists' in result["msg"]
    assert "created by someone else meanwhile" in result["msg"]
    assert "0000000000000001" not in result["msg"] + result["cmd"] + result["stderr"]
    assert "bootstrap-token-given1" in api.secrets
    assert ("DELETE", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-given1") not in api.requests


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_join_info_pins_equal_kubeadms_own(run_module, tmp_path, key_type):
    with FakeApiServer(str(tmp_path), key_type=key_type) as api:
        ca = tmp_path / "ca.crt"
        ca.write_bytes(api.ca_pem)
        result, failed = run_module(kubeadm_join_info.main, module_args(api, ca_cert_path=str(ca)))
        assert not failed, result
        join = subprocess.run(
            [KUBEADM, "token", "create", "--print-join-command", "--kubeconfig", api.kubeconfig],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    argv = shlex.split(join)
    kubeadm_pins = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--discovery-token-ca-cert-hash"]
    assert result["ca_cert_hashes"] == kubeadm_pins == [openssl_pin(api.ca_pem)]
    assert argv[2] == result["api_server_endpoint"] == api.server_url[len("https://") :]
    assert result["cluster_name"] == "kubernetes"


def test_join_info_certificate_key(run_module, api, tmp_path):
    pki = tmp_path / "pki"
    (pki / "etcd").mkdir(parents=True)
    for name in ("ca", "front-proxy-ca", "etcd/ca"):
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(pki / f"{name}.key"),
                "-out",
                str(pki / f"{name}.crt"),
                "-subj",
                f"/CN={name.replace('/', '-')}",
                "-days",
                "1",
            ],
            check=True,
            capture_output=True,
        )
    subprocess.run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
        check=True,
        capture_output=True,
    )
    config = tmp_path / "kubeadm-init.yaml"
    config.write_text(
        f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.3\n"
        f"certificatesDir: {pki}\n"
    )
    ca = tmp_path / "ca.crt"
    ca.write_bytes(api.ca_pem)
    args = module_args(api, ca_cert_path=str(ca), certificate_key=True, config_path=str(config))
    result, failed = run_module(kubeadm_join_info.main, args)
    assert not failed, result
    assert result["changed"] is True
    assert len(result["certificate_key"]) == 64
    int(result["certificate_key"], 16)
    assert "kubeadm-certs" in api.secrets
    proxies = [
        s
        for s in api.secrets.values()
        if s["data"].get("description")
        == base64.b64encode(b"Proxy for managing TTL for the kubeadm-certs secret").decode()
    ]
    assert len(proxies) == 1  # the 2h token upload-certs creates, which kubeadm_token_info flags
    info, _failed = run_module(kubeadm_token_info.main, module_args(api))
    assert [t["is_upload_certs_proxy"] for t in info["tokens"]] == [True]


def test_images_info_real(run_module):
    result, failed = run_module(kubeadm_images_info.main, {"kubernetes_version": "1.36.3", "kubeadm_path": KUBEADM})
    assert not failed, result
    assert result["images"] == [
        line.strip(' ",') for line in fixture("images_v1.36.3.json").splitlines() if line.startswith("        ")
    ]
    args = {
        "kubernetes_version": "v1.36.3",
        "kubeadm_path": KUBEADM,
        "image_repository": "registry.example.lan:5000/k8s",
    }
    result, failed = run_module(kubeadm_images_info.main, args)
    assert not failed, result
    assert result["by_component"]["coredns"] == "registry.example.lan:5000/k8s/coredns:v1.14.2"
