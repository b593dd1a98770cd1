# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline bundle's format: layout, manifest parsing and validation, SHA256SUMS.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Controller-side code (bundle_verify, bundle_manifest; builders outside Ansible through _bundle.py),
standard library only. What a manifest must say is described in docs/bundle.md; every problem is
raised or returned naming the file or entry and the fix.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import (
    HEX64,
    SIGNATURE_NAME,
    BundleError,
    normalize_ref,
)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
# The files that describe the bundle: never listed in it, never refused as off the layout.
DESCRIBING = (MANIFEST_NAME, SUMS_NAME, SIGNATURE_NAME)

COMPONENTS = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "docker",
    "cri_dockerd",
    "cni_plugins",
    "crictl",
    "image",
    "pod_network_manifest",
)
# Components a bundle holds at most one file of (the roles pick "the" docker archive, ...).
SINGLE_COMPONENTS = ("kubeadm", "kubelet", "kubectl", "docker", "cri_dockerd", "cni_plugins", "crictl")
# kubeadm: `kubeadm config images list`; pod_network: the pod network's; test: images only tests run
# (agnhost), loaded on the nodes only when asked (cluster_load_test_images).
IMAGE_GROUPS = ("kubeadm", "pod_network", "test")
META_KEYS = ("kubernetes_version", "architecture", "created", "builder", "image_repository", "versions")

# Where each component lives in the layout (docs/bundle.md).
LAYOUT = (
    (re.compile(r"^bin/kubeadm$"), "kubeadm"),
    (re.compile(r"^bin/kubelet$"), "kubelet"),
    (re.compile(r"^bin/kubectl$"), "kubectl"),
    (re.compile(r"^archives/docker-[^/]+\.tgz$"), "docker"),
    (re.compile(r"^archives/cri-dockerd-[^/]+\.tgz$"), "cri_dockerd"),
    (re.compile(r"^archives/cni-plugins-linux-[^/]+\.tgz$"), "cni_plugins"),
    (re.compile(r"^archives/crictl-v[^/]+\.tar\.gz$"), "crictl"),
    (re.compile(r"^images/[^/]+\.tar$"), "image"),
    (re.compile(r"^manifests/[^/]+\.ya?ml$"), "pod_network_manifest"),
)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$")
_ARCH = re.compile(r"^[a-z0-9_]+$")


# --------------------------------------------------------------------------- small helpers


def normalize_version(version: str) -> str:
    """'v1.36.3' -> '1.36.3' (the manifest stores versions without the v)."""
    version = str(version).strip()
    return version[1:] if version[:1] in ("v", "V") else version


def relpath_problem(path: object) -> str | None:
    """Why ``path`` is not a safe bundle-relative path, or None when it is."""
    if not isinstance(path, str) or not path:
        return "the path must be a non-empty string"
    if path.startswith("/"):
        return "the path must be relative to the bundle directory, not absolute"
    if "\\" in path or any(c in path for c in ("\n", "\r", "\0")):
        return "the path must use '/' separators and contain no backslash, newline or NUL"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "the path must not contain '..', '.' or empty components"
    if path in DESCRIBING:
        return f"{path} describes the bundle and is not listed in it"
    return None


def component_for_path(path: str) -> str | None:
    """The component a layout path belongs to (docs/bundle.md), or None for a path off the layout."""
    for pattern, component in LAYOUT:
        if pattern.match(path):
            return component
    return None


def image_archive_path(ref: str) -> str:
    """images/<ref with / and : as _>.tar, e.g. images/registry.k8s.io_pause_3.10.1.tar."""
    return "images/" + re.sub(r"[/:]", "_", ref) + ".tar"


# --------------------------------------------------------------------------- manifest parsing


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _file_problems(files: object) -> tuple[list[str], dict[str, dict]]:
    problems: list[str] = []
    by_path: dict[str, dict] = {}
    if not isinstance(files, list):
        return ["'files' must be a list of {path, size, sha256, component}"], by_path
    counts: dict[str, list[str]] = {}
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be an object with path, size, sha256, component")
            continue
        path = entry.get("path")
        why = relpath_problem(path)
        if why:
            problems.append(f"{where} path {path!r}: {why}")
            continue
        where = f"file {path}"
        if path in by_path:
            problems.append(f"{where} is listed twice")
            continue
        by_path[path] = entry
        if not _is_int(entry.get("size")) or entry["size"] < 0:
            problems.append(f"{where}: size must be a non-negative integer, got {entry.get('size')!r}")
        if not isinstance(entry.get("sha256"), str) or not HEX64.match(entry["sha256"]):
            problems.append(f"{where}: sha256 must be 64 lowercase hex digits, got {entry.get('sha256')!r}")
        component = entry.get("component")
        if component not in COMPONENTS:
            problems.append(f"{where}: component {component!r} is not one of {', '.join(COMPONENTS)}")
            continue
        counts.setdefault(component, []).append(path)
    for component in SINGLE_COMPONENTS:
        paths = counts.get(component, [])
        if len(paths) > 1:
            problems.append(
                f"component {component} has {len(paths)} files ({', '.join(paths)}); a bundle holds one: "
                "remove the stale ones"
            )
    return problems, by_path


def _image_entry_problems(entry: dict, by_path: dict[str, dict], archives: set[str]) -> list[str]:
    where = f"image {entry['ref']}"
    problems = []
    archive = entry.get("archive")
    why = relpath_problem(archive)
    if why:
        problems.append(f"{where}: archive {archive!r}: {why}")
    elif archive in archives:
        problems.append(f"{where}: archive {archive} is used by another image too")
    else:
        archives.add(archive)
        listed = by_path.get(archive)
        if listed is None:
            problems.append(f"{where}: its archive {archive} is not in 'files'")
        elif listed.get("component") != "image":
            problems.append(f"{where}: its archive {archive} has component {listed.get('component')!r}, not image")
    for key in ("id", "config_digest"):
        value = entry.get(key)
        if not isinstance(value, str) or not _DIGEST.match(value):
            problems.append(f"{where}: {key} must be 'sha256:' + 64 lowercase hex digits, got {value!r}")
    if entry.get("group") not in IMAGE_GROUPS:
        problems.append(f"{where}: group {entry.get('group')!r} is not one of {', '.join(IMAGE_GROUPS)}")
    return problems


def _image_problems(images: object, by_path: dict[str, dict]) -> list[str]:
    if not isinstance(images, list):
        return ["'images' must be a list of {ref, archive, id, config_digest, group}"]
    problems: list[str] = []
    refs: set[str] = set()
    archives: set[str] = set()
    for index, entry in enumerate(images):
        if not isinstance(entry, dict):
            problems.append(f"images[{index}] must be an object with ref, archive, id, config_digest, group")
            continue
        ref = entry.get("ref")
        if not isinstance(ref, str) or not ref or any(c.isspace() for c in ref):
            problems.append(f"images[{index}]: ref must be an image reference like registry.k8s.io/pause:3.10.1")
            continue
        if ref in refs:
            problems.append(f"image {ref} is listed twice")
        refs.add(ref)
        problems.extend(_image_entry_problems(entry, by_path, archives))
    for path, entry in sorted(by_path.items()):
        if entry.get("component") == "image" and path not in archives:
            problems.append(
                f"file {path} is an image archive no entry of 'images' refers to: remove it or list its image"
            )
    return problems


def parse_manifest(data: str | bytes | dict) -> dict:
    """Parse and validate a manifest (JSON text or an already decoded dict). Returns the dict.

    Raises BundleError listing every problem found.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise BundleError(f"{MANIFEST_NAME} is not valid JSON ({exc}): rebuild the bundle") from None
    if not isinstance(data, dict):
        raise BundleError(f"{MANIFEST_NAME} must hold a JSON object")
    problems: list[str] = []
    fmt = data.get("format_version")
    if not _is_int(fmt):
        problems.append(f"format_version must be the integer {FORMAT_VERSION}, got {fmt!r}")
    elif fmt > FORMAT_VERSION:
        problems.append(
            f"format_version {fmt} is newer than this collection understands ({FORMAT_VERSION}): "
            "upgrade kubelab.kubeadm"
        )
    elif fmt != FORMAT_VERSION:
        problems.append(f"format_version must be {FORMAT_VERSION}, got {fmt}")
    version = data.get("kubernetes_version")
    if not isinstance(version, str) or not _VERSION.match(version):
        problems.append(f"kubernetes_version must look like 1.36.3 (no leading v), got {version!r}")
    arch = data.get("architecture")
    if not isinstance(arch, str) or not _ARCH.match(arch):
        problems.append(f"architecture must be a name like amd64 or arm64, got {arch!r}")
    for key in ("created", "builder", "image_repository"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key} must be a string, got {data[key]!r}")
    versions = data.get("versions", {})
    if not isinstance(versions, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
    ):
        problems.append("versions must map component names to version strings")
    file_problems, by_path = _file_problems(data.get("files"))
    problems.extend(file_problems)
    problems.extend(_image_problems(data.get("images", []), by_path))
    if problems:
        raise BundleError(f"{MANIFEST_NAME} is not a valid bundle manifest:", problems)
    return data


def load_manifest(bundle_dir: str) -> tuple[dict, bytes]:
    """Read and validate <bundle_dir>/manifest.json. Returns (manifest, raw bytes)."""
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    if not os.path.isdir(bundle_dir):
        raise BundleError(f"bundle directory {bundle_dir} does not exist: build it with playbooks/bundle.yml")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise BundleError(
            f"{path} does not exist: {bundle_dir} is not a bundle directory (build one with playbooks/bundle.yml)"
        ) from None
    return parse_manifest(raw), raw


def identity_problems(
    manifest: dict, kubernetes_version: str | None = None, architecture: str | None = None
) -> list[str]:
    """The manifest's version and architecture against what the inventory asks for."""
    problems = []
    if kubernetes_version and normalize_version(kubernetes_version) != manifest["kubernetes_version"]:
        problems.append(
            f"the bundle holds Kubernetes {manifest['kubernetes_version']} but {normalize_version(kubernetes_version)} "
            "is asked for: build a bundle for that version or set the version to the bundle's"
        )
    if architecture and architecture != manifest["architecture"]:
        problems.append(
            f"the bundle is for architecture {manifest['architecture']} but the nodes need {architecture}: "
            "build a bundle for that architecture"
        )
    return problems


def requirement_problems(manifest: dict, components=(), images=()) -> list[str]:
    """Components that must have a file and image references that must be listed."""
    problems = []
    present = {entry["component"] for entry in manifest["files"]}
    for component in components:
        if component not in present:
            problems.append(f"the bundle has no {component} file: rebuild it with that component")
    refs = {normalize_ref(entry["ref"]) for entry in manifest.get("images", [])}
    for ref in images:
        if normalize_ref(ref) not in refs:
            problems.append(
                f"image {ref} is needed but not in the bundle: rebuild the bundle for this version and image repository"
            )
    return problems


def asked_problems(
    manifest: dict,
    kubernetes_version: str | None = None,
    architecture: str | None = None,
    require_components=(),
    require_images=(),
) -> list[str]:
    """What the caller asks of a bundle against its manifest: these keywords are the ``**asked`` of
    verify_bundle, verify_tarball and unpack_tarball (None or empty: not checked)."""
    return identity_problems(manifest, kubernetes_version, architecture) + requirement_problems(
        manifest, require_components, require_images
    )


# --------------------------------------------------------------------------- checks of the files


def file_problem(entry: dict, actual_size: int, actual_sha: str | None) -> str | None:
    """The mismatch of a file against its manifest entry (actual_sha None: sizes only), or None."""
    path, size, sha = entry["path"], entry["size"], entry["sha256"]
    if actual_size != size:
        text = f"{path}: size mismatch: expected {size} bytes, actual {actual_size} bytes"
        if actual_sha is not None:
            text += f"; sha256 expected {sha}, actual {actual_sha}"
        return text + " (damaged or replaced: copy the bundle again)"
    if actual_sha is not None and actual_sha != sha:
        return (
            f"{path}: sha256 mismatch: expected {sha}, actual {actual_sha} (damaged or replaced: copy the bundle again)"
        )
    return None


def parse_sha256sums(text: str) -> dict[str, str]:
    """`sha256sum` output (`<hex>  <path>` or `<hex> *<path>`) -> {path: hex}."""
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line)
        if not match:
            raise BundleError(f"{SUMS_NAME} line {number} is not '<sha256>  <path>': {line!r}")
        sums[match.group(2)] = match.group(1).lower()
    return sums


def sums_against(sums: dict[str, str], manifest: dict, manifest_sha: str) -> list[str]:
    """SHA256SUMS (parsed) against the manifest and the sha256 of manifest.json."""
    problems = []
    expected = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    expected[MANIFEST_NAME] = manifest_sha
    for name, sha in sorted(expected.items()):
        if name not in sums:
            problems.append(f"{SUMS_NAME} has no line for {name}: rebuild it with kubelab.kubeadm.bundle_manifest")
        elif sums[name] != sha:
            problems.append(f"{SUMS_NAME} disagrees with the manifest on {name}: {sums[name]} != {sha}")
    for name in sorted(set(sums) - set(expected)):
        problems.append(f"{SUMS_NAME} lists {name}, which the manifest does not")
    return problems
