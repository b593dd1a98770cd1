# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verifying an offline bundle directory, and the logic of the bundle_verify module.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Controller-side code (bundle_verify runs on the controller before any node is touched; builders
outside Ansible reach verify_bundle through _bundle.py), standard library only. Every listed file
must exist inside the bundle with its recorded size and sha256, and SHA256SUMS must agree with the
manifest; any difference is named with the expected and the actual value.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError, sha256_file
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import (
    DESCRIBING,
    MANIFEST_NAME,
    SUMS_NAME,
    asked_problems,
    file_problem,
    load_manifest,
    parse_sha256sums,
    sums_against,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_tarball import unpack_tarball, verify_tarball
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import ModuleError

# --------------------------------------------------------------------------- a bundle directory


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
        problem = file_problem(entry, info.st_size, actual_sha)
        if problem:
            problems.append(problem)
        else:
            passed += 1
    return passed, problems


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
    return sums_against(sums, manifest, hashlib.sha256(manifest_raw).hexdigest())


def unlisted_files(bundle_dir: str, manifest: dict) -> list[str]:
    """Files in bundle_dir that the manifest does not list (reported, not fatal)."""
    listed = {entry["path"] for entry in manifest["files"]} | set(DESCRIBING)
    found = []
    for dirpath, dirnames, filenames in os.walk(bundle_dir):
        dirnames.sort()
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), bundle_dir).replace(os.sep, "/")
            if rel not in listed:
                found.append(rel)
    return found


def verify_bundle(bundle_dir: str, *, checksum: bool = True, **asked) -> dict:
    """Verify a bundle directory. Returns {manifest, verified_files, unlisted}; raises BundleError.

    asked: kubernetes_version, architecture, require_components, require_images (asked_problems).
    """
    manifest, raw = load_manifest(bundle_dir)
    problems = asked_problems(manifest, **asked)
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


# --------------------------------------------------------------------------- the bundle_verify module


def verify_path(params: dict, check_mode: bool = False) -> dict:
    """bundle_verify: the whole run on a directory or a tarball. Returns the module result.

    Raises BundleError (with the problems) or ModuleError (the bundle cannot be read).
    """
    try:
        return _verify_path(params, check_mode)
    except OSError as exc:
        raise ModuleError(f"cannot read the bundle at {params['path']}: {exc}") from None


def _verify_path(params: dict, check_mode: bool) -> dict:
    path = params["path"]
    asked = {key: params[key] for key in ("kubernetes_version", "architecture", "require_components", "require_images")}
    changed = False
    if os.path.isdir(path):
        bundle_dir = path
        result = verify_bundle(path, checksum=params["checksum"], **asked)
    elif os.path.isfile(path) and tarfile.is_tarfile(path):
        bundle_dir = params["unpack_dir"] or ""
        if bundle_dir and os.path.isfile(os.path.join(bundle_dir, MANIFEST_NAME)):
            result = _verify_unpacked(path, bundle_dir, params["checksum"], asked)
        elif bundle_dir and not check_mode:
            result = unpack_tarball(path, bundle_dir, **asked)
            changed = True
        else:
            result = verify_tarball(path, checksum=params["checksum"], **asked)
            changed = bool(bundle_dir)
            bundle_dir = "" if check_mode else bundle_dir
    elif os.path.exists(path):
        raise BundleError(f"{path} is neither a bundle directory nor a tarball of one")
    else:
        raise BundleError(f"{path} does not exist: build the bundle with playbooks/bundle.yml and copy it there")
    described = describe(result["manifest"], os.path.abspath(bundle_dir) if bundle_dir else None)
    return {
        "changed": changed,
        "bundle_dir": os.path.abspath(bundle_dir) if bundle_dir else "",
        "manifest": result["manifest"],
        "files_by_component": described["files_by_component"],
        "images": described["images"],
        "verified_files": result["verified_files"],
        "unlisted_files": result["unlisted"],
    }


def _verify_unpacked(tarball: str, bundle_dir: str, checksum: bool, asked: dict) -> dict:
    """unpack_dir already holds a bundle: it must be this tarball's, then verify it in place."""
    unpacked, _raw = load_manifest(bundle_dir)
    packed = verify_tarball(tarball, checksum=False)["manifest"]
    if unpacked != packed:
        raise BundleError(
            f"{bundle_dir} already holds another bundle (Kubernetes {unpacked['kubernetes_version']}, "
            f"created {unpacked.get('created', '?')}) than {tarball}: choose another unpack_dir or remove it"
        )
    return verify_bundle(bundle_dir, checksum=checksum, **asked)
