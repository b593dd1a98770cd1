# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline bundle: manifest parsing and validation, sha256, verification, manifest writing.

The format is described in docs/bundle.md. This file uses the Python standard library only (no
Ansible imports), so builders outside Ansible can load it by path, e.g. tests/lab/build::

    spec = importlib.util.spec_from_file_location("_bundle", "plugins/module_utils/_bundle.py")
    bundle = importlib.util.module_from_spec(spec); spec.loader.exec_module(bundle)
    bundle.write_manifest(bundle_dir, meta, images)

Every problem is raised as :class:`BundleError`; ``str(error)`` names each file and the fix.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
CHUNK_SIZE = 1024 * 1024

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

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$")
_ARCH = re.compile(r"^[a-z0-9_]+$")


class BundleError(Exception):
    """A bundle problem. ``problems`` lists each one; ``str()`` joins them after a headline."""

    def __init__(self, headline: str, problems: list[str] | None = None):
        self.headline = headline
        self.problems = list(problems or [])
        text = headline
        if self.problems:
            text += "\n" + "\n".join("- " + p for p in self.problems)
        super().__init__(text)


# --------------------------------------------------------------------------- small helpers


def normalize_version(version: str) -> str:
    """'v1.36.3' -> '1.36.3' (the manifest stores versions without the v)."""
    version = str(version).strip()
    return version[1:] if version[:1] in ("v", "V") else version


def sha256_file(path: str, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex sha256 of a file, read in chunks (bundles hold multi-GB image archives)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


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
    if path in (MANIFEST_NAME, SUMS_NAME):
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


def normalize_ref(ref: str) -> str:
    """Docker's short form of a reference (docker.io/library/x:t -> x:t) for comparisons."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    if ref.startswith("library/"):
        return ref[len("library/") :]
    return ref


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        if not isinstance(entry.get("sha256"), str) or not _HEX64.match(entry["sha256"]):
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


# --------------------------------------------------------------------------- verification


def _compare(entry: dict, actual_size: int, actual_sha: str | None) -> str | None:
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


def verify_files(bundle_dir: str, manifest: dict, checksum: bool = True) -> tuple[int, list[str]]:
    """Check every listed file exists inside bundle_dir with the recorded size (and sha256).

    Returns (number of files that passed, problems).
    """
    root = os.path.realpath(bundle_dir)
    problems, passed = [], 0
    for entry in manifest["files"]:
        full = os.path.join(bundle_dir, *entry["path"].split("/"))
        real = os.path.realpath(full)
        if not real.startswith(root + os.sep):
            problems.append(
                f"{entry['path']}: resolves outside the bundle directory (a symlink?): replace it with the file"
            )
            continue
        try:
            info = os.stat(real)
        except FileNotFoundError:
            problems.append(f"{entry['path']}: missing (expected sha256 {entry['sha256']}): copy the complete bundle")
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{entry['path']}: not a regular file")
            continue
        actual_sha = sha256_file(real) if checksum else None
        problem = _compare(entry, info.st_size, actual_sha)
        if problem:
            problems.append(problem)
        else:
            passed += 1
    return passed, problems


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


def sums_problems(bundle_dir: str, manifest: dict, manifest_raw: bytes) -> list[str]:
    """SHA256SUMS must agree with the manifest (it is what people check by hand)."""
    path = os.path.join(bundle_dir, SUMS_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return [f"{SUMS_NAME} is missing: rebuild the bundle (kubelab.kubeadm.bundle_manifest writes it)"]
    try:
        sums = parse_sha256sums(text)
    except BundleError as exc:
        return [str(exc)]
    return _sums_against(sums, manifest, hashlib.sha256(manifest_raw).hexdigest())


def _sums_against(sums: dict[str, str], manifest: dict, manifest_sha: str) -> list[str]:
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


def unlisted_files(bundle_dir: str, manifest: dict) -> list[str]:
    """Files in bundle_dir that the manifest does not list (reported, not fatal)."""
    listed = {entry["path"] for entry in manifest["files"]} | {MANIFEST_NAME, SUMS_NAME}
    found = []
    for dirpath, dirnames, filenames in os.walk(bundle_dir):
        dirnames.sort()
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), bundle_dir).replace(os.sep, "/")
            if rel not in listed:
                found.append(rel)
    return found


def verify_bundle(
    bundle_dir: str,
    *,
    kubernetes_version: str | None = None,
    architecture: str | None = None,
    require_components=(),
    require_images=(),
    checksum: bool = True,
) -> dict:
    """Verify a bundle directory. Returns {manifest, verified_files, unlisted}; raises BundleError."""
    manifest, raw = load_manifest(bundle_dir)
    problems = identity_problems(manifest, kubernetes_version, architecture)
    problems += requirement_problems(manifest, require_components, require_images)
    verified, file_problems = verify_files(bundle_dir, manifest, checksum)
    problems += file_problems
    problems += sums_problems(bundle_dir, manifest, raw)
    if problems:
        raise BundleError(f"bundle {bundle_dir} failed verification:", problems)
    return {"manifest": manifest, "verified_files": verified, "unlisted": unlisted_files(bundle_dir, manifest)}


def describe(manifest: dict, bundle_dir: str | None) -> dict:
    """files_by_component and images, with absolute paths when the bundle is a directory."""

    def absolute(rel):
        return os.path.join(bundle_dir, *rel.split("/")) if bundle_dir else ""

    by_component: dict[str, list[dict]] = {}
    by_path = {}
    for entry in manifest["files"]:
        item = dict(entry, abs_path=absolute(entry["path"]))
        by_path[entry["path"]] = item
        by_component.setdefault(entry["component"], []).append(item)
    images = []
    for entry in manifest.get("images", []):
        archive = by_path[entry["archive"]]
        images.append(
            dict(
                entry, archive_path=archive["abs_path"], archive_size=archive["size"], archive_sha256=archive["sha256"]
            )
        )
    return {"files_by_component": by_component, "images": images}


# --------------------------------------------------------------------------- tarballs of a bundle


def _tar_prefix(names) -> str | None:
    """'' when manifest.json is at the tarball's root, 'dir/' when under one top directory."""
    if MANIFEST_NAME in names:
        return ""
    for name in sorted(names):
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == MANIFEST_NAME:
            return parts[0] + "/"
    return None


def _stream_member(handle, target: str | None, hashing: bool, keep: bool) -> tuple[str, list[bytes]]:
    """Copy one tar member to target (if any) while hashing it; keep its bytes when asked."""
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    with open(target if target else os.devnull, "wb") as out:
        while True:
            chunk = handle.read(CHUNK_SIZE)
            if not chunk:
                break
            if hashing:
                digest.update(chunk)
            if keep:
                chunks.append(chunk)
            if target:
                out.write(chunk)
    return digest.hexdigest(), chunks


def scan_tarball(path: str, checksum: bool = True, extract_to: str | None = None) -> dict:
    """Read a tarball of a bundle once, optionally writing its regular files under extract_to.

    Returns {prefix, manifest_raw, sums_raw, actual: {rel: (size, sha or None)}, problems}; rel
    paths are relative to the bundle root inside the tarball ('' or one top directory).
    """
    actual: dict[str, tuple[int, str | None]] = {}
    blobs: dict[str, bytes] = {}
    problems = []
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                name = name.rstrip("/")
                if not name or member.isdir():
                    continue
                if not member.isfile():
                    problems.append(
                        f"{name}: the tarball holds a link or special file; a bundle holds regular files only"
                    )
                    continue
                parts = name.split("/")
                if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
                    problems.append(f"{name}: unsafe path in the tarball (absolute or with '..'): not unpacked")
                    continue
                keep = parts[-1] in (MANIFEST_NAME, SUMS_NAME) and len(parts) <= 2
                target = None
                if extract_to is not None:
                    target = os.path.join(extract_to, *parts)
                    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                sha, chunks = _stream_member(archive.extractfile(member), target, checksum or keep, keep)
                if target is not None:
                    os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
                if keep:
                    blobs[name] = b"".join(chunks)
                actual[name] = (member.size, sha if checksum else None)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{path} is not a readable tarball ({exc}): copy it again") from None
    prefix = _tar_prefix(set(actual))
    if prefix is None:
        raise BundleError(f"{path} holds no {MANIFEST_NAME} at its root or under one top directory: is it a bundle?")
    return {
        "prefix": prefix,
        "manifest_raw": blobs[prefix + MANIFEST_NAME],
        "sums_raw": blobs.get(prefix + SUMS_NAME),
        "actual": {name[len(prefix) :]: value for name, value in actual.items() if name.startswith(prefix)},
        "problems": problems,
    }


def _check_scan(scan: dict, kubernetes_version, architecture, require_components, require_images) -> dict:
    manifest = parse_manifest(scan["manifest_raw"])
    problems = list(scan["problems"])
    problems += identity_problems(manifest, kubernetes_version, architecture)
    problems += requirement_problems(manifest, require_components, require_images)
    verified = 0
    for entry in manifest["files"]:
        found = scan["actual"].get(entry["path"])
        if found is None:
            problems.append(f"{entry['path']}: missing from the tarball (expected sha256 {entry['sha256']})")
            continue
        problem = _compare(entry, found[0], found[1])
        if problem:
            problems.append(problem)
        else:
            verified += 1
    if scan["sums_raw"] is None:
        problems.append(f"{SUMS_NAME} is missing from the tarball: rebuild the bundle")
    else:
        try:
            sums = parse_sha256sums(scan["sums_raw"].decode("utf-8", "replace"))
        except BundleError as exc:
            problems.append(str(exc))
        else:
            problems += _sums_against(sums, manifest, hashlib.sha256(scan["manifest_raw"]).hexdigest())
    listed = {entry["path"] for entry in manifest["files"]} | {MANIFEST_NAME, SUMS_NAME}
    return {
        "manifest": manifest,
        "verified_files": verified,
        "unlisted": sorted(set(scan["actual"]) - listed),
        "problems": problems,
    }


def verify_tarball(
    path: str,
    *,
    kubernetes_version: str | None = None,
    architecture: str | None = None,
    require_components=(),
    require_images=(),
    checksum: bool = True,
) -> dict:
    """Verify a tarball of a bundle without unpacking it. Returns {manifest, verified_files, unlisted}."""
    scan = scan_tarball(path, checksum)
    result = _check_scan(scan, kubernetes_version, architecture, require_components, require_images)
    problems = result.pop("problems")
    if problems:
        raise BundleError(f"bundle tarball {path} failed verification:", problems)
    return result


def unpack_tarball(
    path: str,
    dest: str,
    *,
    kubernetes_version: str | None = None,
    architecture: str | None = None,
    require_components=(),
    require_images=(),
) -> dict:
    """Unpack a bundle tarball into dest, which must not exist yet or be empty.

    The tarball is read once into a staging directory next to dest while every file is hashed;
    only when everything verifies is the staging directory renamed to dest. On any problem the
    staging directory is removed and dest is left as it was. Returns {manifest, verified_files,
    unlisted} of dest.
    """
    dest = os.path.abspath(dest)
    if os.path.lexists(dest) and not (os.path.isdir(dest) and not os.listdir(dest)):
        raise BundleError(f"{dest} exists and is not an empty directory: unpack into a new or empty directory")
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".bundle-unpack-")
    try:
        scan = scan_tarball(path, True, extract_to=staging)
        result = _check_scan(scan, kubernetes_version, architecture, require_components, require_images)
        problems = result.pop("problems")
        if problems:
            raise BundleError(f"bundle tarball {path} failed verification (nothing was unpacked):", problems)
        root = os.path.join(staging, scan["prefix"].rstrip("/")) if scan["prefix"] else staging
        os.chmod(root, 0o755)  # noqa: S103 - the bundle directory is world-readable, like every file in it
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.rename(root, dest)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- writing a manifest


def compute_file_entries(bundle_dir: str) -> list[dict]:
    """Entries {path, size, sha256, component} for every file of bundle_dir, sorted by path.

    Raises BundleError for files off the layout, symlinks and special files.
    """
    if not os.path.isdir(bundle_dir):
        raise BundleError(f"bundle directory {bundle_dir} does not exist")
    entries, problems = [], []
    for dirpath, dirnames, filenames in os.walk(bundle_dir):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, bundle_dir).replace(os.sep, "/")
            if rel in (MANIFEST_NAME, SUMS_NAME):
                continue
            info = os.lstat(full)
            if not stat.S_ISREG(info.st_mode):
                problems.append(f"{rel}: a symlink or special file; put the real file in the bundle")
                continue
            component = component_for_path(rel)
            if component is None:
                problems.append(f"{rel}: not part of the bundle layout (docs/bundle.md): remove it")
                continue
            entries.append({"path": rel, "size": info.st_size, "sha256": sha256_file(full), "component": component})
    if problems:
        raise BundleError(f"{bundle_dir} holds files a bundle cannot list:", problems)
    return sorted(entries, key=lambda e: e["path"])


def read_docker_archive(archive_path: str) -> dict:
    """From a `docker save` archive: {config_digest: 'sha256:<hex>', repo_tags: [...]} of its one image.

    Handles the legacy layout (Config '<hex>.json') and the OCI layout of Docker >= 25
    (Config 'blobs/sha256/<hex>').
    """
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            try:
                member = archive.getmember("manifest.json")
            except KeyError:
                raise BundleError(f"{archive_path} has no manifest.json: is it a `docker save` archive?") from None
            entries = json.loads(archive.extractfile(member).read())
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise BundleError(f"{archive_path} is not a readable `docker save` archive ({exc})") from None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise BundleError(f"{archive_path} must hold exactly one image (one `docker save <ref>` per archive)")
    config = str(entries[0].get("Config", ""))
    hexdigest = config.rsplit("/", 1)[-1]
    hexdigest = hexdigest.removesuffix(".json")
    if not _HEX64.match(hexdigest):
        raise BundleError(f"{archive_path}: cannot read the image config digest from Config={config!r}")
    return {"config_digest": "sha256:" + hexdigest, "repo_tags": list(entries[0].get("RepoTags") or [])}


def build_manifest(bundle_dir: str, meta: dict, images: list[dict], created: str | None = None) -> dict:
    """The manifest dict for bundle_dir from meta (kubernetes_version, architecture, builder,
    image_repository, versions) and image entries ({ref, group, id, archive?, config_digest?}).

    archive defaults to images/<ref with / and : as _>.tar; config_digest is read from the archive
    (and checked against it when given); the archive must carry ref in its RepoTags.
    """
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise BundleError(f"unknown manifest keys {', '.join(unknown)}: allowed are {', '.join(META_KEYS)}")
    missing = [key for key in ("kubernetes_version", "architecture") if not meta.get(key)]
    if missing:
        raise BundleError(f"the manifest needs {' and '.join(missing)}")
    files = compute_file_entries(bundle_dir)
    image_entries, problems = [], []
    for image in images:
        ref = image.get("ref")
        if not isinstance(ref, str) or not ref:
            problems.append(f"image entry {image!r} has no ref")
            continue
        archive = image.get("archive") or image_archive_path(ref)
        entry = {"ref": ref, "archive": archive, "id": image.get("id"), "config_digest": image.get("config_digest")}
        entry["group"] = image.get("group")
        full = os.path.join(bundle_dir, *archive.split("/")) if not relpath_problem(archive) else None
        if full and not os.path.isfile(full):
            problems.append(f"image {ref}: its archive {archive} does not exist: export it with `docker save {ref}`")
        elif full:
            try:
                found = read_docker_archive(full)
            except BundleError as exc:
                problems.append(f"image {ref}: {exc}")
            else:
                if entry["config_digest"] and entry["config_digest"] != found["config_digest"]:
                    problems.append(
                        f"image {ref}: config_digest {entry['config_digest']} given, but {archive} holds "
                        f"{found['config_digest']}: export the image again"
                    )
                entry["config_digest"] = found["config_digest"]
                if normalize_ref(ref) not in [normalize_ref(tag) for tag in found["repo_tags"]]:
                    problems.append(
                        f"image {ref}: {archive} is tagged {found['repo_tags'] or 'with no name'}, not {ref}: "
                        f"export it with `docker save {ref}`"
                    )
        image_entries.append(entry)
    if problems:
        raise BundleError(f"cannot write the manifest of {bundle_dir}:", problems)
    manifest = {
        "format_version": FORMAT_VERSION,
        "kubernetes_version": normalize_version(meta["kubernetes_version"]),
        "architecture": meta["architecture"],
        "created": created or meta.get("created") or utc_now(),
        "builder": meta.get("builder", ""),
        "image_repository": meta.get("image_repository", ""),
        "versions": {str(k): normalize_version(v) for k, v in (meta.get("versions") or {}).items()},
        "files": files,
        "images": image_entries,
    }
    try:
        return parse_manifest(manifest)
    except BundleError as exc:
        raise BundleError(f"cannot write the manifest of {bundle_dir}:", exc.problems) from None


def render_manifest(manifest: dict) -> str:
    return json.dumps(manifest, indent=2) + "\n"


def render_sha256sums(manifest: dict, manifest_text: str) -> str:
    lines = [f"{entry['sha256']}  {entry['path']}" for entry in sorted(manifest["files"], key=lambda e: e["path"])]
    lines.append(f"{hashlib.sha256(manifest_text.encode('utf-8')).hexdigest()}  {MANIFEST_NAME}")
    return "\n".join(lines) + "\n"


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write_atomic(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_manifest(
    bundle_dir: str,
    meta: dict,
    images: list[dict],
    created: str | None = None,
    check_mode: bool = False,
) -> dict:
    """Write <bundle_dir>/manifest.json and SHA256SUMS for the files now in bundle_dir.

    meta: {kubernetes_version, architecture, builder?, image_repository?, versions?}
    images: [{ref, group ('kubeadm'|'pod_network'|'test'), id ('sha256:...'), archive?, config_digest?}]
    Idempotent: when nothing but the creation time would change, the existing files are kept.
    Returns {changed, manifest, manifest_path, sha256sums_path, before, after} (before/after: the
    manifest.json text). Raises BundleError.
    """
    manifest_path = os.path.join(bundle_dir, MANIFEST_NAME)
    sums_path = os.path.join(bundle_dir, SUMS_NAME)
    manifest = build_manifest(bundle_dir, meta, images, created)
    before = _read_text(manifest_path)
    if before is not None and not created and not meta.get("created"):
        try:
            old = json.loads(before)
        except ValueError:
            old = None
        if isinstance(old, dict) and isinstance(old.get("created"), str):
            if dict(old, created=manifest["created"]) == manifest:
                manifest["created"] = old["created"]
    after = render_manifest(manifest)
    sums = render_sha256sums(manifest, after)
    changed = before != after or _read_text(sums_path) != sums
    if changed and not check_mode:
        _write_atomic(manifest_path, after)
        _write_atomic(sums_path, sums)
    return {
        "changed": changed,
        "manifest": manifest,
        "manifest_path": manifest_path,
        "sha256sums_path": sums_path,
        "before": before,
        "after": after,
    }
