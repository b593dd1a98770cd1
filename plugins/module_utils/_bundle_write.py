# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing an offline bundle's manifest.json and SHA256SUMS, and the logic of bundle_manifest.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Controller-side code (bundle_manifest in playbooks/bundle.yml; builders outside Ansible reach
write_manifest through _bundle.py), standard library only. Every file of the bundle directory is
listed with its size, sha256 and component; files off the layout stop the writer, which writes
nothing on any error and keeps the existing files when only the creation time would change.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
import tempfile

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import (
    BundleError,
    normalize_ref,
    read_docker_archive,
    sha256_file,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import (
    DESCRIBING,
    FORMAT_VERSION,
    MANIFEST_NAME,
    META_KEYS,
    SUMS_NAME,
    component_for_path,
    image_archive_path,
    normalize_version,
    parse_manifest,
    relpath_problem,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import ModuleError


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
            if rel in DESCRIBING:
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


def write_atomic(path: str, data: bytes | str) -> None:
    """Write path as a whole or not at all (a temporary file beside it, renamed over it); mode 0644."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
        write_atomic(manifest_path, after)
        write_atomic(sums_path, sums)
    return {
        "changed": changed,
        "manifest": manifest,
        "manifest_path": manifest_path,
        "sha256sums_path": sums_path,
        "before": before,
        "after": after,
    }


def manifest_result(params: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """bundle_manifest: the whole run. Returns the module result; raises BundleError or ModuleError."""
    meta = {key: params[key] for key in ("kubernetes_version", "architecture", "image_repository", "builder")}
    meta["versions"] = {str(k): str(v) for k, v in params["versions"].items() if v not in (None, "")}
    images = [{key: value for key, value in image.items() if value} for image in params["images"]]
    try:
        result = write_manifest(params["path"], meta, images, created=params["created"], check_mode=check_mode)
    except OSError as exc:
        raise ModuleError(f"cannot write the manifest in {params['path']}: {exc}") from None
    out = {
        "changed": result["changed"],
        "manifest": result["manifest"],
        "manifest_path": result["manifest_path"],
        "sha256sums_path": result["sha256sums_path"],
    }
    if diff:
        out["diff"] = {
            "before": result["before"] or "",
            "after": result["after"],
            "before_header": result["manifest_path"],
            "after_header": result["manifest_path"],
        }
    return out
