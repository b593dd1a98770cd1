"""Unit tests of plugins/module_utils/_bundle.py on real files, tarballs and a real `docker save` archive."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle as B

_spec = importlib.util.spec_from_file_location("bundle_builder", Path(__file__).with_name("bundle_builder.py"))
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


@pytest.fixture
def bundle(tmp_path):
    root = bb.make_bundle(tmp_path / "bundle")
    B.write_manifest(str(root), bb.META, bb.IMAGES)
    return root


def manifest_of(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- helpers


def test_normalize_version():
    assert B.normalize_version("v1.36.3") == "1.36.3"
    assert B.normalize_version(" 1.36.3 ") == "1.36.3"
    assert B.normalize_version("V1.2.3") == "1.2.3"


def test_sha256_file_in_chunks(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    expected = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert B.sha256_file(str(path), chunk_size=7) == expected


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
    problem = B.relpath_problem(path)
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
    assert B.component_for_path(path) == component


def test_image_archive_path_and_normalize_ref():
    assert B.image_archive_path("registry.k8s.io/pause:3.10.1") == "images/registry.k8s.io_pause_3.10.1.tar"
    assert B.image_archive_path("ghcr.io/flannel-io/flannel:v0.28.9") == "images/ghcr.io_flannel-io_flannel_v0.28.9.tar"
    assert B.normalize_ref("docker.io/library/busybox:1") == "busybox:1"
    assert B.normalize_ref("docker.io/flannel/flannel:v1") == "flannel/flannel:v1"
    assert B.normalize_ref("library/busybox:1") == "busybox:1"
    assert B.normalize_ref("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"


def test_utc_now_format():
    assert len(B.utc_now()) == 20
    assert B.utc_now().endswith("Z")


# --------------------------------------------------------------------------- parse_manifest


def test_parse_manifest_accepts_a_written_manifest(bundle):
    text = (bundle / "manifest.json").read_text()
    manifest = B.parse_manifest(text)
    assert manifest["format_version"] == 1
    assert B.parse_manifest(text.encode()) == manifest
    assert B.parse_manifest(manifest) is manifest


def test_parse_manifest_rejects_bad_json_and_non_objects():
    with pytest.raises(B.BundleError, match="not valid JSON"):
        B.parse_manifest("{nope")
    with pytest.raises(B.BundleError, match="JSON object"):
        B.parse_manifest("[]")


def _mutated(bundle: Path, mutate) -> list[str]:
    manifest = copy.deepcopy(manifest_of(bundle))
    mutate(manifest)
    with pytest.raises(B.BundleError) as info:
        B.parse_manifest(manifest)
    return info.value.problems


def _file(manifest, path):
    return next(f for f in manifest["files"] if f["path"] == path)


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
        (lambda m: _file(m, "bin/kubeadm").update(size=True), "size must be a non-negative integer"),
        (lambda m: _file(m, "bin/kubeadm").update(size=-1), "size must be a non-negative integer"),
        (lambda m: _file(m, "bin/kubeadm").update(sha256="ABC"), "sha256 must be 64 lowercase hex"),
        (lambda m: _file(m, "bin/kubeadm").update(component="helm"), "component 'helm' is not one of"),
        (
            lambda m: m["files"].append(
                dict(_file(m, "archives/docker-29.7.2.tgz"), path="archives/docker-28.0.0.tgz")
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
    with pytest.raises(B.BundleError, match="does not exist: build it"):
        B.load_manifest(str(tmp_path / "nope"))
    with pytest.raises(B.BundleError, match="is not a bundle directory"):
        B.load_manifest(str(tmp_path))


def test_identity_and_requirement_problems(bundle):
    manifest = manifest_of(bundle)
    assert B.identity_problems(manifest, "v1.36.3", "amd64") == []
    assert B.identity_problems(manifest) == []
    problems = B.identity_problems(manifest, "1.35.0", "arm64")
    assert "holds Kubernetes 1.36.3 but 1.35.0" in problems[0]
    assert "architecture amd64 but the nodes need arm64" in problems[1]
    assert B.requirement_problems(manifest, ["kubeadm", "image"], ["docker.io/" + bb.IMAGE_REF]) == []
    problems = B.requirement_problems(manifest, ["kubeadm"], ["registry.k8s.io/pause:3.10.1"])
    assert problems == [
        "image registry.k8s.io/pause:3.10.1 is needed but not in the bundle: rebuild the bundle for this version "
        "and image repository"
    ]
    manifest["files"] = [f for f in manifest["files"] if f["component"] != "crictl"]
    assert "has no crictl file" in B.requirement_problems(manifest, ["crictl"])[0]


# --------------------------------------------------------------------------- verify a directory


def test_verify_bundle_ok(bundle):
    result = B.verify_bundle(
        str(bundle),
        kubernetes_version="1.36.3",
        architecture="amd64",
        require_components=list(B.COMPONENTS),
        require_images=[bb.IMAGE_REF],
    )
    assert result["verified_files"] == 9
    assert result["unlisted"] == []
    described = B.describe(result["manifest"], str(bundle))
    assert described["images"][0]["archive_path"] == str(bundle / bb.IMAGE_ARCHIVE)
    assert described["images"][0]["archive_size"] == bb.IMAGE_FIXTURE.stat().st_size
    assert described["files_by_component"]["kubeadm"][0]["abs_path"] == str(bundle / "bin/kubeadm")
    assert B.describe(result["manifest"], None)["images"][0]["archive_path"] == ""


def test_one_changed_byte_names_file_expected_and_actual(bundle):
    archive = bundle / "archives/cni-plugins-linux-amd64-v1.9.1.tgz"
    expected = _file(manifest_of(bundle), "archives/cni-plugins-linux-amd64-v1.9.1.tgz")["sha256"]
    flip_byte(archive)
    actual = B.sha256_file(str(archive))
    with pytest.raises(B.BundleError) as info:
        B.verify_bundle(str(bundle))
    message = str(info.value)
    assert (
        f"archives/cni-plugins-linux-amd64-v1.9.1.tgz: sha256 mismatch: expected {expected}, actual {actual}" in message
    )
    # without checksums, a same-size change goes unnoticed (sizes only), by design of checksum=false
    assert B.verify_bundle(str(bundle), checksum=False)["verified_files"] == 9


def test_size_mismatch_missing_not_regular_and_symlink(bundle, tmp_path):
    manifest = manifest_of(bundle)
    with open(bundle / "bin/kubelet", "ab") as handle:
        handle.write(b"x")
    (bundle / "bin/kubectl").unlink()
    (bundle / "archives/crictl-v1.36.0-linux-amd64.tar.gz").unlink()
    (bundle / "archives/crictl-v1.36.0-linux-amd64.tar.gz").mkdir()
    outside = tmp_path / "outside"
    outside.write_bytes(b"x")
    (bundle / "bin/kubeadm").unlink()
    (bundle / "bin/kubeadm").symlink_to(outside)
    with pytest.raises(B.BundleError) as info:
        B.verify_bundle(str(bundle))
    problems = info.value.problems
    kubelet = _file(manifest, "bin/kubelet")
    assert any(
        p.startswith(f"bin/kubelet: size mismatch: expected {kubelet['size']} bytes, actual {kubelet['size'] + 1}")
        and f"sha256 expected {kubelet['sha256']}, actual {B.sha256_file(str(bundle / 'bin/kubelet'))}" in p
        for p in problems
    ), problems
    assert any(p.startswith("bin/kubectl: missing (expected sha256") for p in problems)
    assert "archives/crictl-v1.36.0-linux-amd64.tar.gz: not a regular file" in problems
    assert any(p.startswith("bin/kubeadm: resolves outside the bundle directory") for p in problems)
    assert str(info.value).startswith(f"bundle {bundle} failed verification:\n- ")


def test_identity_mismatch_fails_verification(bundle):
    with pytest.raises(B.BundleError, match=r"holds Kubernetes 1\.36\.3 but 1\.37\.0"):
        B.verify_bundle(str(bundle), kubernetes_version="1.37.0")


def test_sha256sums_checks(bundle):
    sums = bundle / "SHA256SUMS"
    good = sums.read_text()
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=bundle, check=False).returncode == 0
    sums.unlink()
    with pytest.raises(B.BundleError, match="SHA256SUMS is missing"):
        B.verify_bundle(str(bundle))
    sums.write_text("not a line\n")
    with pytest.raises(B.BundleError, match="line 1 is not"):
        B.verify_bundle(str(bundle))
    lines = good.splitlines()
    sums.write_text("\n".join(lines[1:]) + "\n" + "0" * 64 + "  extra.txt\n\n")
    with pytest.raises(B.BundleError) as info:
        B.verify_bundle(str(bundle))
    assert any("has no line for archives/cni-plugins" in p for p in info.value.problems)
    assert any("lists extra.txt, which the manifest does not" in p for p in info.value.problems)
    wrong = lines[0].replace(lines[0][:64], "f" * 64)
    sums.write_text("\n".join([wrong, *lines[1:]]) + "\n")
    with pytest.raises(B.BundleError, match="disagrees with the manifest on archives/cni"):
        B.verify_bundle(str(bundle))


def test_parse_sha256sums_binary_marker():
    assert B.parse_sha256sums("A" * 64 + " *bin/kubeadm\n") == {"bin/kubeadm": "a" * 64}


def test_unlisted_files_are_reported(bundle):
    (bundle / "notes.txt").write_text("hello")
    assert B.verify_bundle(str(bundle))["unlisted"] == ["notes.txt"]


# --------------------------------------------------------------------------- tarballs


@pytest.mark.parametrize("top", ["bundle", None, "."])
def test_verify_tarball_and_unpack(bundle, tmp_path, top):
    tarball = bb.tar_bundle(bundle, tmp_path / "bundle.tar.gz", top=top)
    result = B.verify_tarball(str(tarball), kubernetes_version="1.36.3", require_components=["image"])
    assert result["verified_files"] == 9
    assert B.verify_tarball(str(tarball), checksum=False)["verified_files"] == 9
    dest = tmp_path / "unpacked" / "b"
    assert B.unpack_tarball(str(tarball), str(dest))["verified_files"] == 9
    assert os.access(dest / "bin/kubeadm", os.X_OK)
    assert not os.access(dest / bb.IMAGE_ARCHIVE, os.X_OK)
    assert (dest / "SHA256SUMS").read_text() == (bundle / "SHA256SUMS").read_text()
    assert [p.name for p in (tmp_path / "unpacked").iterdir()] == ["b"]  # no staging directory left
    with pytest.raises(B.BundleError, match="is not an empty directory"):
        B.unpack_tarball(str(tarball), str(dest))


def test_unpack_into_an_empty_directory(bundle, tmp_path):
    tarball = bb.tar_bundle(bundle, tmp_path / "bundle.tar", top=None)
    dest = tmp_path / "empty"
    dest.mkdir()
    assert B.unpack_tarball(str(tarball), str(dest))["manifest"]["kubernetes_version"] == "1.36.3"


def test_corrupt_tarball_is_neither_accepted_nor_unpacked(bundle, tmp_path):
    flip_byte(bundle / "bin/kubectl", 3)
    tarball = bb.tar_bundle(bundle, tmp_path / "bundle.tar.gz")
    with pytest.raises(
        B.BundleError, match=r"bin/kubectl: sha256 mismatch: expected [0-9a-f]{64}, actual [0-9a-f]{64}"
    ):
        B.verify_tarball(str(tarball))
    dest = tmp_path / "out"
    with pytest.raises(B.BundleError, match="nothing was unpacked"):
        B.unpack_tarball(str(tarball), str(dest))
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle-unpack")] == []


def _tar_with(tmp_path: Path, bundle: Path, extra) -> Path:
    tarball = tmp_path / "odd.tar"
    with tarfile.open(tarball, "w") as archive:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=path.relative_to(bundle).as_posix())
        extra(archive)
    return tarball


def test_tarball_with_links_unsafe_paths_and_missing_files(bundle, tmp_path):
    def extra(archive):
        link = tarfile.TarInfo("bin/evil")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        data = b"x"
        info = tarfile.TarInfo("../escape")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    (bundle / "bin/kubelet").unlink()
    tarball = _tar_with(tmp_path, bundle, extra)
    with pytest.raises(B.BundleError) as info:
        B.verify_tarball(str(tarball))
    problems = info.value.problems
    assert any(p.startswith("bin/evil: the tarball holds a link") for p in problems)
    assert any(p.startswith("../escape: unsafe path") for p in problems)
    assert any(p.startswith("bin/kubelet: missing from the tarball") for p in problems)


def test_tarball_without_manifest_or_sums(bundle, tmp_path):
    (bundle / "SHA256SUMS").unlink()
    tarball = _tar_with(tmp_path, bundle, lambda archive: None)
    with pytest.raises(B.BundleError, match="SHA256SUMS is missing from the tarball"):
        B.verify_tarball(str(tarball))
    (bundle / "SHA256SUMS").write_text("garbage\n")
    tarball = _tar_with(tmp_path, bundle, lambda archive: None)
    with pytest.raises(B.BundleError, match="SHA256SUMS line 1"):
        B.verify_tarball(str(tarball))
    (bundle / "manifest.json").unlink()
    tarball = _tar_with(tmp_path, bundle, lambda archive: None)
    with pytest.raises(B.BundleError, match=r"holds no manifest\.json"):
        B.verify_tarball(str(tarball))
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(B.BundleError, match="not a readable tarball"):
        B.verify_tarball(str(broken))


# --------------------------------------------------------------------------- writing


def test_compute_file_entries_rejects_off_layout_and_symlinks(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    entries = B.compute_file_entries(str(root))
    assert [e["path"] for e in entries] == sorted(e["path"] for e in entries)
    assert {e["component"] for e in entries} == set(B.COMPONENTS)
    (root / "bin/kubeadm.sha256").write_text("x")
    (root / "bin/link").symlink_to(root / "bin/kubeadm")
    with pytest.raises(B.BundleError) as info:
        B.compute_file_entries(str(root))
    assert "bin/kubeadm.sha256: not part of the bundle layout (docs/bundle.md): remove it" in info.value.problems
    assert "bin/link: a symlink or special file; put the real file in the bundle" in info.value.problems
    with pytest.raises(B.BundleError, match="does not exist"):
        B.compute_file_entries(str(tmp_path / "none"))


def test_read_docker_archive_legacy_fixture():
    found = B.read_docker_archive(str(bb.IMAGE_FIXTURE))
    assert found == {"config_digest": bb.IMAGE_ID, "repo_tags": [bb.IMAGE_REF]}


def _docker_archive(path: Path, manifest) -> Path:
    with tarfile.open(path, "w") as archive:
        if manifest is not None:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_read_docker_archive_oci_layout_and_errors(tmp_path):
    hexd = "ab" * 32
    oci = _docker_archive(tmp_path / "oci.tar", [{"Config": f"blobs/sha256/{hexd}", "RepoTags": ["x:1"]}])
    assert B.read_docker_archive(str(oci)) == {"config_digest": f"sha256:{hexd}", "repo_tags": ["x:1"]}
    untagged = _docker_archive(tmp_path / "u.tar", [{"Config": f"{hexd}.json", "RepoTags": None}])
    assert B.read_docker_archive(str(untagged))["repo_tags"] == []
    with pytest.raises(B.BundleError, match=r"has no manifest\.json"):
        B.read_docker_archive(str(_docker_archive(tmp_path / "n.tar", None)))
    with pytest.raises(B.BundleError, match="exactly one image"):
        B.read_docker_archive(str(_docker_archive(tmp_path / "2.tar", [{"Config": "a"}, {"Config": "b"}])))
    with pytest.raises(B.BundleError, match="cannot read the image config digest"):
        B.read_docker_archive(str(_docker_archive(tmp_path / "c.tar", [{"Config": "nothex.json"}])))
    (tmp_path / "t.tar").write_text("plain text")
    with pytest.raises(B.BundleError, match="not a readable `docker save` archive"):
        B.read_docker_archive(str(tmp_path / "t.tar"))


def test_write_manifest_is_idempotent_and_sums_pass_sha256sum(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    first = B.write_manifest(str(root), bb.META, bb.IMAGES, check_mode=True)
    assert first["changed"] is True
    assert not (root / "manifest.json").exists()
    first = B.write_manifest(str(root), bb.META, bb.IMAGES)
    assert first["changed"] is True
    assert first["before"] is None
    image = first["manifest"]["images"][0]
    assert image == {
        "ref": bb.IMAGE_REF,
        "archive": bb.IMAGE_ARCHIVE,
        "id": bb.IMAGE_ID,
        "config_digest": bb.IMAGE_ID,
        "group": "kubeadm",
    }
    assert (root / "manifest.json").stat().st_mode & 0o777 == 0o644
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=root, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 10
    second = B.write_manifest(str(root), bb.META, bb.IMAGES)
    assert second["changed"] is False
    assert second["manifest"]["created"] == first["manifest"]["created"]
    # a changed file changes the manifest
    (root / "bin/kubectl").write_bytes(b"new kubectl")
    third = B.write_manifest(str(root), bb.META, bb.IMAGES)
    assert third["changed"] is True
    assert third["before"] == first["after"]
    # an explicit creation time is recorded as given
    fourth = B.write_manifest(str(root), dict(bb.META, created="2026-01-01T00:00:00Z"), bb.IMAGES)
    assert fourth["manifest"]["created"] == "2026-01-01T00:00:00Z"
    assert fourth["changed"] is True
    # a damaged SHA256SUMS alone is rewritten
    (root / "SHA256SUMS").write_text("x\n")
    assert B.write_manifest(str(root), bb.META, bb.IMAGES, created="2026-01-01T00:00:00Z")["changed"] is True
    assert B.verify_bundle(str(root))["verified_files"] == 9


def test_write_manifest_replaces_an_unparsable_manifest(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    (root / "manifest.json").write_text("{broken")
    assert B.write_manifest(str(root), bb.META, bb.IMAGES)["changed"] is True
    assert B.verify_bundle(str(root))["verified_files"] == 9


@pytest.mark.parametrize(
    ("meta", "images", "fragment"),
    [
        (dict(bb.META, colour="blue"), bb.IMAGES, "unknown manifest keys colour"),
        ({"architecture": "amd64"}, bb.IMAGES, "needs kubernetes_version"),
        (bb.META, [{"group": "kubeadm", "id": bb.IMAGE_ID}], "has no ref"),
        (bb.META, [dict(bb.IMAGES[0], ref="registry.k8s.io/pause:3.10.1")], "does not exist: export it"),
        (bb.META, [dict(bb.IMAGES[0], config_digest="sha256:" + "0" * 64)], "export the image again"),
        (
            bb.META,
            [dict(bb.IMAGES[0], ref="kubelab.invalid/other:1", archive=bb.IMAGE_ARCHIVE)],
            "not kubelab.invalid/other:1",
        ),
        (bb.META, [dict(bb.IMAGES[0], group="addons")], "group 'addons' is not one of"),
        (bb.META, [], "no entry of 'images' refers to"),
    ],
)
def test_write_manifest_refuses_bad_input(tmp_path, meta, images, fragment):
    root = bb.make_bundle(tmp_path / "b")
    with pytest.raises(B.BundleError) as info:
        B.write_manifest(str(root), meta, images)
    assert fragment in str(info.value)
    assert not (root / "manifest.json").exists()


def test_write_manifest_unreadable_image_archive(tmp_path):
    root = bb.make_bundle(tmp_path / "b")
    (root / bb.IMAGE_ARCHIVE).write_text("not a tar")
    with pytest.raises(B.BundleError, match="not a readable `docker save` archive"):
        B.write_manifest(str(root), bb.META, bb.IMAGES)


def test_write_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    root = bb.make_bundle(tmp_path / "b")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(B.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        B.write_manifest(str(root), bb.META, bb.IMAGES)
    assert sorted(p.name for p in root.iterdir()) == ["archives", "bin", "images", "manifests"]


def test_copied_bundle_still_verifies(bundle, tmp_path):
    copy_dir = tmp_path / "copy"
    shutil.copytree(bundle, copy_dir)
    assert B.verify_bundle(str(copy_dir))["verified_files"] == 9
