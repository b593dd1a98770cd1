"""Build small but real offline bundles for the unit tests (real tarballs, a real `docker save` archive)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IMAGE_FIXTURE = FIXTURES / "docker-save-20.10-hello.tar"
IMAGE_REF = "kubelab.invalid/fixture/hello:1.0"
IMAGE_ID = "sha256:95462d259337a1c5e5ff864d97c45d2500a2e317245a0556e581fa53ebe1bebd"
IMAGE_ARCHIVE = "images/kubelab.invalid_fixture_hello_1.0.tar"

META = {
    "kubernetes_version": "1.36.3",
    "architecture": "amd64",
    "builder": "tests/unit",
    "image_repository": "registry.k8s.io",
    "versions": {"kubernetes": "1.36.3", "docker": "29.7.2", "cri_dockerd": "0.4.3"},
}
IMAGES = [{"ref": IMAGE_REF, "group": "kubeadm", "id": IMAGE_ID}]


def make_tgz(path: Path, members: dict[str, bytes], executable: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if executable else 0o644
            archive.addfile(info, io.BytesIO(data))


def make_bundle(root: Path) -> Path:
    """A complete bundle layout (without manifest.json / SHA256SUMS) under root."""
    (root / "bin").mkdir(parents=True)
    for name in ("kubeadm", "kubelet", "kubectl"):
        (root / "bin" / name).write_bytes(b"#!/bin/sh\necho " + name.encode() + b" v1.36.3\n")
        (root / "bin" / name).chmod(0o755)
    make_tgz(root / "archives/docker-29.7.2.tgz", {f"docker/{n}": n.encode() for n in ("docker", "dockerd", "runc")})
    make_tgz(root / "archives/cri-dockerd-0.4.3.amd64.tgz", {"cri-dockerd/cri-dockerd": b"cri-dockerd"})
    make_tgz(root / "archives/cni-plugins-linux-amd64-v1.9.1.tgz", {"./bridge": b"bridge", "./portmap": b"portmap"})
    make_tgz(root / "archives/crictl-v1.36.0-linux-amd64.tar.gz", {"crictl": b"crictl"})
    (root / "images").mkdir()
    shutil.copyfile(IMAGE_FIXTURE, root / IMAGE_ARCHIVE)
    (root / "manifests").mkdir()
    (root / "manifests/kube-flannel.yml").write_text(
        "---\nkind: Namespace\napiVersion: v1\nmetadata: {name: kube-flannel}\n"
    )
    return root


def tar_bundle(bundle: Path, dest: Path, top: str | None = "bundle") -> Path:
    """A tar.gz of the bundle, under one top directory (or flat when top is None)."""
    with tarfile.open(dest, "w:gz") as archive:
        for path in sorted(bundle.rglob("*")):
            rel = path.relative_to(bundle).as_posix()
            archive.add(path, arcname=f"{top}/{rel}" if top else rel, recursive=False)
    return dest


def manifest_of(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def file_entry(manifest: dict, path: str) -> dict:
    """The manifest's files entry of path."""
    return next(f for f in manifest["files"] if f["path"] == path)


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
