"""Unit tests of plugins/module_utils/_bundle_manifest.py: layout, manifest parsing, SHA256SUMS parsing."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_manifest as BM
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError

_spec = importlib.util.spec_from_file_location("bundle_builder", Path(__file__).with_name("bundle_builder.py"))
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


def test_image_archive_path():
    assert BM.image_archive_path("registry.k8s.io/pause:3.10.1") == "images/registry.k8s.io_pause_3.10.1.tar"
    assert (
        BM.image_archive_path("ghcr.io/flannel-io/flannel:v0.28.9") == "images/ghcr.io_flannel-io_flannel_v0.28.9.tar"
    )


def test_normalize_version():
    assert BM.normalize_version("v1.36.3") == "1.36.3"
    assert BM.normalize_version(" 1.36.3 ") == "1.36.3"
    assert BM.normalize_version("V1.2.3") == "1.2.3"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("bin/kubeadm", None),
        ("images/registry.k8s.io_pause_3.10.1.tar", None),
        ("", "non-empty"),
        (None, "non-empty"),
        ("/etc/passwd", "not absolute"),
        ("bin/../../etc", "'..'"),
        ("bin//kubeadm", "empty components"),
        ("./bin/kubeadm", "'.'"),
        ("bin\\kubeadm", "backslash"),
        ("bin/kube\nadm", "newline"),
        ("manifest.json", "describes the bundle"),
        ("SHA256SUMS", "describes the bundle"),
    ],
)
def test_relpath_problem(path, fragment):
    problem = BM.relpath_problem(path)
    if fragment is None:
        assert problem is None
    else:
        assert fragment in problem


@pytest.mark.parametrize(
    ("path", "component"),
    [
        ("bin/kubeadm", "kubeadm"),
        ("bin/kubelet", "kubelet"),
        ("bin/kubectl", "kubectl"),
        ("archives/docker-29.7.2.tgz", "docker"),
        ("archives/cri-dockerd-0.4.3.amd64.tgz", "cri_dockerd"),
        ("archives/cni-plugins-linux-amd64-v1.9.1.tgz", "cni_plugins"),
        ("archives/crictl-v1.36.0-linux-amd64.tar.gz", "crictl"),
        ("images/registry.k8s.io_pause_3.10.1.tar", "image"),
        ("manifests/kube-flannel.yml", "pod_network_manifest"),
        ("manifests/calico.yaml", "pod_network_manifest"),
        ("bin/kubeadm.sha256", None),
        ("notes.txt", None),
        ("images/sub/x.tar", None),
    ],
)
def test_component_for_path(path, component):
    assert BM.component_for_path(path) == component


def test_parse_manifest_accepts_a_written_manifest(bundle):
    text = (bundle / "manifest.json").read_text()
    manifest = BM.parse_manifest(text)
    assert manifest["format_version"] == 1
    assert BM.parse_manifest(text.encode()) == manifest
    assert BM.parse_manifest(manifest) is manifest


def test_parse_manifest_rejects_bad_json_and_non_objects():
    with pytest.raises(BundleError, match="not valid JSON"):
        BM.parse_manifest("{nope")
    with pytest.raises(BundleError, match="JSON object"):
        BM.parse_manifest("[]")


def _mutated(bundle: Path, mutate) -> list[str]:
    manifest = copy.deepcopy(bb.manifest_of(bundle))
    mutate(manifest)
    with pytest.raises(BundleError) as info:
        BM.parse_manifest(manifest)
    return info.value.problems


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda m: m.pop("format_version"), "format_version must be the integer 1"),
        (lambda m: m.update(format_version=2), "newer than this collection understands"),
        (lambda m: m.update(format_version=0), "format_version must be 1, got 0"),
        (lambda m: m.update(format_version=True), "format_version must be the integer"),
        (lambda m: m.update(kubernetes_version="v1.36.3"), "no leading v"),
        (lambda m: m.update(architecture="AMD 64"), "architecture must be"),
        (lambda m: m.update(created=5), "created must be a string"),
        (lambda m: m.update(versions=["1"]), "versions must map"),
        (lambda m: m.update(versions={"docker": 29}), "versions must map"),
        (lambda m: m.update(files={}), "'files' must be a list"),
        (lambda m: m["files"].append("bin/x"), "files[9] must be an object"),
        (lambda m: m["files"].append(dict(m["files"][0], path="../evil")), "'..'"),
        (lambda m: m["files"].append(dict(m["files"][0])), "is listed twice"),
        (lambda m: bb.file_entry(m, "bin/kubeadm").update(size=True), "size must be a non-negative integer"),
        (lambda m: bb.file_entry(m, "bin/kubeadm").update(size=-1), "size must be a non-negative integer"),
        (lambda m: bb.file_entry(m, "bin/kubeadm").update(sha256="ABC"), "sha256 must be 64 lowercase hex"),
        (lambda m: bb.file_entry(m, "bin/kubeadm").update(component="helm"), "component 'helm' is not one of"),
        (
            lambda m: m["files"].append(
                dict(bb.file_entry(m, "archives/docker-29.7.2.tgz"), path="archives/docker-28.0.0.tgz")
            ),
            "component docker has 2 files",
        ),
        (lambda m: m.update(images={}), "'images' must be a list"),
        (lambda m: m["images"].append(1), "images[1] must be an object"),
        (lambda m: m["images"][0].update(ref="bad ref"), "ref must be an image reference"),
        (lambda m: m["images"].append(dict(m["images"][0])), "is listed twice"),
        (lambda m: m["images"][0].update(archive="/abs.tar"), "not absolute"),
        (lambda m: m["images"][0].update(archive="images/other.tar"), "is not in 'files'"),
        (lambda m: m["images"][0].update(archive="bin/kubeadm"), "has component 'kubeadm', not image"),
        (lambda m: m["images"][0].update(id="sha256:xyz"), "id must be 'sha256:'"),
        (lambda m: m["images"][0].update(config_digest=None), "config_digest must be"),
        (lambda m: m["images"][0].update(group="addons"), "group 'addons' is not one of"),
        (lambda m: m.update(images=[]), "no entry of 'images' refers to"),
    ],
)
def test_parse_manifest_names_each_problem(bundle, mutate, fragment):
    problems = _mutated(bundle, mutate)
    assert any(fragment in p for p in problems), problems


def test_parse_manifest_archive_shared_by_two_images(bundle):
    def mutate(m):
        m["images"].append(dict(m["images"][0], ref="kubelab.invalid/other:1"))

    assert any("is used by another image too" in p for p in _mutated(bundle, mutate))


def test_load_manifest_errors(tmp_path):
    with pytest.raises(BundleError, match="does not exist: build it"):
        BM.load_manifest(str(tmp_path / "nope"))
    with pytest.raises(BundleError, match="is not a bundle directory"):
        BM.load_manifest(str(tmp_path))


def test_identity_and_requirement_problems(bundle):
    manifest = bb.manifest_of(bundle)
    assert BM.identity_problems(manifest, "v1.36.3", "amd64") == []
    assert BM.identity_problems(manifest) == []
    problems = BM.identity_problems(manifest, "1.35.0", "arm64")
    assert "holds Kubernetes 1.36.3 but 1.35.0" in problems[0]
    assert "architecture amd64 but the nodes need arm64" in problems[1]
    assert BM.requirement_problems(manifest, ["kubeadm", "image"], ["docker.io/" + bb.IMAGE_REF]) == []
    problems = BM.requirement_problems(manifest, ["kubeadm"], ["registry.k8s.io/pause:3.10.1"])
    assert problems == [
        "image registry.k8s.io/pause:3.10.1 is needed but not in the bundle: rebuild the bundle for this version "
        "and image repository"
    ]
    manifest["files"] = [f for f in manifest["files"] if f["component"] != "crictl"]
    assert "has no crictl file" in BM.requirement_problems(manifest, ["crictl"])[0]


def test_parse_sha256sums_binary_marker():
    assert BM.parse_sha256sums("A" * 64 + " *bin/kubeadm\n") == {"bin/kubeadm": "a" * 64}
