# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A tarball of an offline bundle: verified as it is read, or unpacked once, verified, into place.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Controller-side code (bundle_verify), standard library only. The tarball holds the bundle at its
root or under one top directory; it is read once, as a stream, and every regular file is hashed
(and, when unpacking, written to a staging directory renamed into place only when all verified).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import CHUNK_SIZE, BundleError
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import (
    DESCRIBING,
    MANIFEST_NAME,
    SUMS_NAME,
    asked_problems,
    file_problem,
    parse_manifest,
    parse_sha256sums,
    sums_against,
)


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


def _check_scan(scan: dict, asked: dict) -> dict:
    manifest = parse_manifest(scan["manifest_raw"])
    problems = list(scan["problems"])
    problems += asked_problems(manifest, **asked)
    verified = 0
    for entry in manifest["files"]:
        found = scan["actual"].get(entry["path"])
        if found is None:
            problems.append(f"{entry['path']}: missing from the tarball (expected sha256 {entry['sha256']})")
            continue
        problem = file_problem(entry, found[0], found[1])
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
            problems += sums_against(sums, manifest, hashlib.sha256(scan["manifest_raw"]).hexdigest())
    listed = {entry["path"] for entry in manifest["files"]} | set(DESCRIBING)
    return {
        "manifest": manifest,
        "verified_files": verified,
        "unlisted": sorted(set(scan["actual"]) - listed),
        "problems": problems,
    }


def verify_tarball(path: str, *, checksum: bool = True, **asked) -> dict:
    """Verify a tarball of a bundle without unpacking it. Returns {manifest, verified_files, unlisted}.

    asked: kubernetes_version, architecture, require_components, require_images (asked_problems).
    """
    scan = scan_tarball(path, checksum)
    result = _check_scan(scan, asked)
    problems = result.pop("problems")
    if problems:
        raise BundleError(f"bundle tarball {path} failed verification:", problems)
    return result


def unpack_tarball(path: str, dest: str, **asked) -> dict:
    """Unpack a bundle tarball into dest, which must not exist yet or be empty; asked as for verify_tarball.

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
        result = _check_scan(scan, asked)
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
