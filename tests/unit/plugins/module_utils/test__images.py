"""Tests for plugins/module_utils/_images.py on recorded `kubeadm config images list -o json` outputs."""

from __future__ import annotations

import os
import sys
from unittest.mock import MagicMock

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _images
from ansible_collections.kubelab.kubeadm.plugins.module_utils._images import ImagesError
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import KubeadmError, KubeadmRunner

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from fake_kubeadm import fixture

V1_36_3 = {
    "kube-apiserver": "registry.k8s.io/kube-apiserver:v1.36.3",
    "kube-controller-manager": "registry.k8s.io/kube-controller-manager:v1.36.3",
    "kube-scheduler": "registry.k8s.io/kube-scheduler:v1.36.3",
    "kube-proxy": "registry.k8s.io/kube-proxy:v1.36.3",
    "coredns": "registry.k8s.io/coredns/coredns:v1.14.2",
    "pause": "registry.k8s.io/pause:3.10.2",
    "etcd": "registry.k8s.io/etcd:3.6.8-0",
}


@pytest.mark.parametrize(
    ("version", "normalized"),
    [
        ("1.36.3", "v1.36.3"),
        ("v1.36.3", "v1.36.3"),
        (" 1.30.0 ", "v1.30.0"),
        ("1.31.0-rc.1", "v1.31.0-rc.1"),
        ("v1.32.1+k3s1", "v1.32.1+k3s1"),
    ],
)
def test_normalize_version(version, normalized):
    assert _images.normalize_version(version) == normalized


@pytest.mark.parametrize("version", ["stable", "latest-1.30", "1.36", "v1", "", None, "vv1.2.3", "1.2.3.4"])
def test_normalize_version_rejects(version):
    with pytest.raises(ImagesError, match=r"not an exact version: give it as 1.36.3 or v1.36.3"):
        _images.normalize_version(version)


@pytest.mark.parametrize("repo", ["registry.k8s.io", "registry.example.lan:5000/k8s", "10.0.2.1:5000", "a/b/c"])
def test_check_repository(repo):
    assert _images.check_repository(repo) == repo


@pytest.mark.parametrize("repo", ["https://registry.k8s.io", "Registry.k8s.io", "registry.k8s.io/", "r/x:tag", ""])
def test_check_repository_rejects(repo):
    with pytest.raises(ImagesError, match=r"image_repository"):
        _images.check_repository(repo)


def test_parse_recorded_v1alpha3():
    images = _images.parse_images(fixture("images_v1.36.3.json"))
    assert images == list(V1_36_3.values())
    assert _images.by_component(images) == V1_36_3


def test_parse_recorded_mirror_drops_coredns_subpath():
    by = _images.by_component(_images.parse_images(fixture("images_v1.36.3_mirror.json")))
    assert by["coredns"] == "registry.example.lan:5000/k8s/coredns:v1.14.2"
    assert by["kube-apiserver"] == "registry.example.lan:5000/k8s/kube-apiserver:v1.36.3"
    assert sorted(by) == sorted(V1_36_3)


@pytest.mark.parametrize(
    ("name", "pause", "etcd", "coredns"),
    [
        (
            "images_v1.28.4_v1alpha2.json",
            "registry.k8s.io/pause:3.9",
            "registry.k8s.io/etcd:3.5.9-0",
            "registry.k8s.io/coredns/coredns:v1.10.1",
        ),
        (
            "images_v1.22.8_v1alpha1.json",
            "k8s.gcr.io/pause:3.5",
            "k8s.gcr.io/etcd:3.5.0-0",
            "k8s.gcr.io/coredns/coredns:v1.8.4",
        ),
    ],
)
def test_parse_older_output_versions(name, pause, etcd, coredns):
    by = _images.by_component(_images.parse_images(fixture(name)))
    assert (by["pause"], by["etcd"], by["coredns"]) == (pause, etcd, coredns)
    assert len(by) == 7


def test_klog_lines_on_stdout_do_not_break_parsing():
    text = fixture("images_v1.36.3_klog_on_stdout.txt")
    assert text.startswith("W1128")
    assert _images.parse_images(text) == list(V1_36_3.values())


def test_component_of():
    assert _images.component_of("registry.example.lan:5000/k8s/pause:3.10") == "pause"
    assert _images.component_of("registry.example.lan:5000/pause") == "pause"
    assert _images.component_of("registry.k8s.io/etcd@sha256:" + "a" * 64) == "etcd"
    assert _images.component_of("etcd:3.5.9-0") == "etcd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no object of kind Images"),
        (
            '{\n    "kind": "BootstrapToken",\n    "apiVersion": "output.kubeadm.k8s.io/v1alpha3"\n}\n',
            "no object of kind",
        ),
        ('{\n    "kind": "Images",\n    "apiVersion": "v1",\n    "images": ["a"]\n}\n', "no object of kind Images"),
        (
            '{\n    "kind": "Images",\n    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",\n    "images": []\n}\n',
            "images is not a list of image references",
        ),
        (
            '{\n    "kind": "Images",\n    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",\n    "images": [1]\n}\n',
            "images is not a list",
        ),
        ("registry.k8s.io/kube-apiserver:v1.36.3\nregistry.k8s.io/pause:3.10\n", "no object of kind Images"),
    ],
)
def test_parse_images_rejects(text, message):
    with pytest.raises(ImagesError, match=message):
        _images.parse_images(text)


def runner_with(result):
    module = MagicMock()
    module.get_bin_path.return_value = "/usr/bin/kubeadm"
    module.run_command.return_value = result
    return KubeadmRunner(module), module


def test_images_info_by_version():
    runner, module = runner_with((0, fixture("images_v1.36.3.json"), ""))
    result = _images.images_info(runner, {"kubernetes_version": "1.36.3", "image_repository": None})
    assert result == {
        "changed": False,
        "images": list(V1_36_3.values()),
        "by_component": V1_36_3,
        "kubernetes_version": "v1.36.3",
    }
    assert module.run_command.call_args[0][0] == [
        "/usr/bin/kubeadm",
        "config",
        "images",
        "list",
        "-o",
        "json",
        "--kubernetes-version",
        "v1.36.3",
    ]


def test_images_info_with_repository():
    runner, module = runner_with((0, fixture("images_v1.36.3_mirror.json"), ""))
    _images.images_info(runner, {"kubernetes_version": "v1.36.3", "image_repository": "registry.example.lan:5000/k8s"})
    assert module.run_command.call_args[0][0][-2:] == ["--image-repository", "registry.example.lan:5000/k8s"]


def test_images_info_with_config(tmp_path):
    config = tmp_path / "kubeadm.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.3\n")
    runner, module = runner_with((0, fixture("images_v1.36.3.json"), ""))
    result = _images.images_info(runner, {"config_path": str(config)})
    assert result["kubernetes_version"] is None
    assert module.run_command.call_args[0][0][-2:] == ["--config", str(config)]
    with pytest.raises(KubeadmError, match=r"config_path .* does not exist"):
        _images.images_info(runner, {"config_path": str(tmp_path / "missing.yaml")})


def test_images_info_errors():
    runner, module = runner_with((0, "", ""))
    with pytest.raises(ImagesError, match=r"kubernetes_version or config_path is required"):
        _images.images_info(runner, {})
    with pytest.raises(ImagesError, match=r"not an exact version"):
        _images.images_info(runner, {"kubernetes_version": "stable"})
    module.run_command.assert_not_called()
    with pytest.raises(ImagesError, match=r"unexpected .* output") as info:
        _images.images_info(runner, {"kubernetes_version": "1.36.3"})
    assert info.value.details["cmd"].endswith("--kubernetes-version v1.36.3")
    runner, module = runner_with((1, "", 'error: could not convert cfg to an internal cfg: version "x"\n'))
    with pytest.raises(KubeadmError, match=r"listing the images kubeadm needs failed: .* exited with 1: error: could"):
        _images.images_info(runner, {"kubernetes_version": "1.36.3"})
