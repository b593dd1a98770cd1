"""kubeadm_images_info through AnsibleModule on recorded `kubeadm config images list -o json` outputs."""

from __future__ import annotations

import os
import sys
from unittest.mock import patch

import pytest
from ansible.module_utils import basic
from ansible_collections.kubelab.kubeadm.plugins.modules import kubeadm_images_info

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from fake_kubeadm import KUBEADM, FakeKubeadm, fixture


@pytest.fixture
def fake():
    fake = FakeKubeadm(None)
    fake.outputs["config images list"] = fixture("images_v1.36.3.json")
    return fake


@pytest.fixture
def run(run_module):
    def _run(fake, args, **kwargs):
        with (
            patch.object(basic.AnsibleModule, "run_command", new=fake.run_command),
            patch.object(basic.AnsibleModule, "get_bin_path", return_value=KUBEADM),
        ):
            return run_module(kubeadm_images_info.main, args, **kwargs)

    return _run


def test_images_by_version(run, fake):
    result, failed = run(fake, {"kubernetes_version": "1.36.3"}, check_mode=True)
    assert not failed, result
    assert result["changed"] is False
    assert result["images"][0] == "registry.k8s.io/kube-apiserver:v1.36.3"
    assert result["by_component"]["pause"] == "registry.k8s.io/pause:3.10.2"
    assert result["by_component"]["coredns"] == "registry.k8s.io/coredns/coredns:v1.14.2"
    assert result["by_component"]["etcd"] == "registry.k8s.io/etcd:3.6.8-0"
    assert result["kubernetes_version"] == "v1.36.3"
    assert fake.calls == [[KUBEADM, "config", "images", "list", "-o", "json", "--kubernetes-version", "v1.36.3"]]


def test_images_with_repository(run, fake):
    fake.outputs["config images list"] = fixture("images_v1.36.3_mirror.json")
    result, failed = run(fake, {"kubernetes_version": "v1.36.3", "image_repository": "registry.example.lan:5000/k8s"})
    assert not failed, result
    assert result["by_component"]["coredns"] == "registry.example.lan:5000/k8s/coredns:v1.14.2"
    assert fake.calls[0][-2:] == ["--image-repository", "registry.example.lan:5000/k8s"]


def test_images_with_config(run, fake, tmp_path):
    config = tmp_path / "kubeadm.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.3\n")
    result, failed = run(fake, {"config_path": str(config)})
    assert not failed, result
    assert fake.calls[0][-2:] == ["--config", str(config)]


def test_klog_noise_on_stdout(run, fake):
    fake.outputs["config images list"] = fixture("images_v1.36.3_klog_on_stdout.txt")
    result, failed = run(fake, {"kubernetes_version": "1.36.3"})
    assert not failed, result
    assert len(result["images"]) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "one of the following is required: kubernetes_version, config_path"),
        ({"kubernetes_version": "1.36.3", "config_path": "/x"}, "mutually exclusive: kubernetes_version|config_path"),
        ({"image_repository": "r", "config_path": "/x"}, "mutually exclusive: image_repository|config_path"),
        ({"kubernetes_version": "stable"}, "not an exact version"),
        ({"kubernetes_version": "1.36.3", "image_repository": "https://r.example"}, "image_repository"),
        ({"config_path": "/nonexistent/kubeadm.yaml"}, "config_path /nonexistent/kubeadm.yaml does not exist"),
    ],
)
def test_bad_input(run, fake, args, message):
    result, failed = run(fake, args)
    assert failed
    assert message in result["msg"]
    assert fake.calls == []


def test_kubeadm_failure(run, fake):
    fake.failures["config images list"] = [
        (1, "", 'error: could not convert cfg to an internal cfg: version "v9.9.9" is not supported\n')
    ]
    result, failed = run(fake, {"kubernetes_version": "9.9.9"})
    assert failed
    assert "listing the images kubeadm needs failed" in result["msg"]
    assert "is not supported" in result["msg"]
    assert result["rc"] == 1


def test_missing_kubeadm(run_module):
    with patch.object(basic.AnsibleModule, "get_bin_path", return_value=None):
        result, failed = run_module(kubeadm_images_info.main, {"kubernetes_version": "1.36.3"})
    assert failed
    assert "kubeadm was not found" in result["msg"]
