# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Load `docker save` archives into a node's Docker, verified (the logic of docker_image_preload).

PRIVATE to the kubelab.kubeadm collection: not a public API.

Node-side code: Python 3.8 and the standard library only; of the bundle code it needs only
_bundle_files.py (sha256, reading a `docker save` archive, comparing references).

Why not community.docker.docker_image_load: it talks to the Docker API through the Python
``requests`` library, which a bare Debian node (and an air-gapped node cannot install it) lacks.
This talks to Docker through the ``docker`` CLI that the docker_engine role installs.

An image counts as present when Docker has its reference and the reference's ID is accepted:
equal to the manifest's ``id`` (the builder's ``docker image inspect`` ID) or ``config_digest``
(what the legacy graphdriver store reports after ``docker load``). See docs/bundle.md.
"""

from __future__ import annotations

import os

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import (
    BundleError,
    normalize_ref,
    read_docker_archive,
    sha256_file,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import CommandRunner, ModuleError

PRESENT = "present"
MISSING = "missing"
MISMATCH = "mismatch"
LOADED = "loaded"
WOULD_LOAD = "would_load"

DOCKER_HINT = "start Docker (systemctl start docker) and check `docker info`"


class PreloadError(ModuleError):
    """A check failed; the message names the image, what was expected and the fix."""


class DockerUnavailable(PreloadError):
    """The Docker daemon does not answer."""


def resolve_images(images: list[dict], files: list[dict], archive_dir: str | None) -> list[dict]:
    """The images with their archive's node path, sha256 and size filled in.

    ``images`` and ``files`` are entries of the bundle manifest's ``images`` and ``files`` lists; a
    relative ``archive`` (as in the manifest) is found under ``archive_dir``. Values given on the
    image itself win over the ``files`` entry.
    """
    by_path = {entry.get("path"): entry for entry in files or []}
    resolved = []
    for image in images:
        entry = dict(image)
        archive = entry.get("archive")
        listed = by_path.get(archive, {}) if archive else {}
        if not entry.get("sha256"):
            entry["sha256"] = listed.get("sha256")
        if not entry.get("size"):
            entry["size"] = listed.get("size") or 0
        if archive and archive_dir and not os.path.isabs(archive):
            entry["archive"] = os.path.join(archive_dir, archive)
        resolved.append(entry)
    return resolved


def accepted_ids(image: dict) -> list[str]:
    """The image IDs that count as this image on a node (manifest id, then config digest)."""
    ids = []
    for key in ("id", "config_digest"):
        value = image.get(key)
        if value and value not in ids:
            ids.append(value)
    return ids


def classify(image: dict, current_id: str | None) -> str:
    """present / missing / mismatch for an image whose reference has current_id on the node (None: absent)."""
    if current_id is None:
        return MISSING
    if current_id in accepted_ids(image):
        return PRESENT
    return MISMATCH


def check_archive(image: dict) -> None:
    """Before `docker load`: the archive exists, has the manifest's sha256, and holds this image.

    Raises PreloadError naming the archive, the expected and the actual values.
    """
    ref = image["ref"]
    archive = image.get("archive")
    expected_sha = (image.get("sha256") or "").lower()
    if not archive:
        raise PreloadError(f"{ref}: no archive given to load it from")
    if not os.path.isabs(archive):
        raise PreloadError(f"{ref}: the archive path {archive} is relative; give archive_dir (where it was copied)")
    if not os.path.isfile(archive):
        raise PreloadError(f"{ref}: the archive {archive} does not exist on the node; copy it there first")
    if not expected_sha:
        raise PreloadError(f"{ref}: no sha256 given for {archive}; refusing to load an unverified archive")
    actual_sha = sha256_file(archive)
    if actual_sha != expected_sha:
        raise PreloadError(
            f"{ref}: {archive} has sha256 {actual_sha}, the manifest says {expected_sha}. Nothing was loaded: "
            "the copy is damaged or the bundle changed; verify the bundle (sha256sum -c SHA256SUMS) and copy it again"
        )
    try:
        content = read_docker_archive(archive)
    except BundleError as exc:
        raise PreloadError(f"{ref}: {exc}") from None
    tags = [normalize_ref(tag) for tag in content["repo_tags"]]
    if normalize_ref(ref) not in tags:
        raise PreloadError(
            f"{ref}: {archive} holds {', '.join(content['repo_tags']) or 'an untagged image'}, not {ref}. "
            "Nothing was loaded: the bundle's manifest and its archives disagree; rebuild the bundle"
        )
    config_digest = image.get("config_digest")
    if config_digest and content["config_digest"] != config_digest:
        raise PreloadError(
            f"{ref}: {archive} holds the image config {content['config_digest']}, the manifest says {config_digest}. "
            "Nothing was loaded: rebuild the bundle"
        )


def nearest_existing(path: str) -> str:
    """path itself or its nearest existing parent directory."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def space_report(paths: list[str]) -> list[dict]:
    """For each path: the free bytes and the device of the file system that will hold it."""
    report = []
    for path in paths:
        existing = nearest_existing(path)
        st = os.statvfs(existing)
        report.append({"path": path, "free_bytes": st.f_bavail * st.f_frsize, "device": os.stat(existing).st_dev})
    return report


def space_problem(space: list[dict], needs: dict[str, int], reserve: int) -> str | None:
    """None when every file system has room for what goes to it (bytes by path) plus reserve; else the problem."""
    per_device: dict[int, dict] = {}
    for entry in space:
        slot = per_device.setdefault(entry["device"], {"free": entry["free_bytes"], "need": 0, "paths": []})
        slot["need"] += needs.get(entry["path"], 0)
        slot["paths"].append(entry["path"])
    for slot in per_device.values():
        if slot["need"] and slot["free"] < slot["need"] + reserve:
            mib = 1024 * 1024
            return (
                f"not enough disk space for {' and '.join(slot['paths'])}: "
                f"{slot['free'] // mib} MiB free, {(slot['need'] + reserve) // mib} MiB needed "
                f"({slot['need'] // mib} MiB for the missing images plus {reserve // mib} MiB reserve). "
                "Free some space or grow the file system"
            )
    return None


class DockerCli(CommandRunner):
    """The docker CLI, through the shared CommandRunner (argv lists, failures with cmd, rc, stderr)."""

    def __init__(self, module, docker_path: str):
        super().__init__(module, docker_path, error=PreloadError)

    def root_dir(self) -> str:
        args = ["info", "--format", "{{.DockerRootDir}}"]
        action = "asking Docker for its root directory"
        _rc, out, _err = self.run(args, action, hint=DOCKER_HINT, error=DockerUnavailable)
        if not out.strip():
            raise DockerUnavailable(f"{action} failed: `{self.last_cmd}` printed nothing. Fix: {DOCKER_HINT}")
        return out.strip()

    def image_id(self, ref: str) -> str | None:
        rc, out, _err = self.run(["image", "inspect", "--format", "{{.Id}}", ref], "inspecting " + ref, check=False)
        if rc != 0:
            return None
        return out.strip() or None

    def load(self, archive: str) -> None:
        self.run(["load", "--input", archive], f"loading {archive} into Docker")


def preload(cli: DockerCli, images: list[dict], load: bool, check_mode: bool) -> dict:
    """Ensure the images (or, load=False, only report them). Returns the module result (without changed)."""
    results = []
    for image in images:
        before = cli.image_id(image["ref"])
        status = classify(image, before)
        entry = {"ref": image["ref"], "status": status, "id": before, "accepted_ids": accepted_ids(image)}
        if before is not None and status == MISMATCH:
            entry["previous_id"] = before
        results.append(entry)

    missing = [r["ref"] for r in results if r["status"] != PRESENT]
    loaded = []
    if load:
        by_ref = {image["ref"]: image for image in images}
        for entry in results:
            if entry["status"] == PRESENT:
                continue
            image = by_ref[entry["ref"]]
            if check_mode:
                if image.get("archive") and os.path.isfile(image["archive"]):
                    check_archive(image)
                entry["status"] = WOULD_LOAD
                loaded.append(entry["ref"])
                continue
            check_archive(image)
            cli.load(image["archive"])
            after = cli.image_id(image["ref"])
            entry["id"] = after
            if classify(image, after) != PRESENT:
                raise PreloadError(
                    f"{image['ref']}: after docker load its ID is {after or '(reference missing)'}, expected "
                    f"{' or '.join(accepted_ids(image))}. The loaded image was left in place (nothing is removed); "
                    "check that the node's Docker image store matches the bundle builder's (docs/bundle.md)"
                )
            entry["status"] = LOADED
            loaded.append(image["ref"])
    return {"images": results, "missing": missing, "loaded": loaded}


# --------------------------------------------------------------------------- the docker_image_preload module


def ensure_images(cli: DockerCli, params: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """Report the missing images, check the disk has room for them, then (load=true) load them."""
    images = resolve_images(params["images"], params["files"], params["archive_dir"])
    root_dir = cli.root_dir()
    plan = preload(cli, images, load=False, check_mode=check_mode)
    missing = [image for image in images if image["ref"] in plan["missing"]]
    need = sum(image["size"] for image in missing)
    paths, needs = [root_dir], {root_dir: need}
    if params["cache_dir"] and not params["load"]:
        paths.insert(0, params["cache_dir"])
        needs[params["cache_dir"]] = need
    space = space_report(paths)
    problem = space_problem(space, needs, params["min_free_mib"] * 1024 * 1024)
    if problem:
        raise PreloadError(problem)
    result = preload(cli, missing, load=True, check_mode=check_mode) if params["load"] and missing else None
    by_ref = {entry["ref"]: entry for entry in (result or {"images": []})["images"]}
    entries = [by_ref.get(entry["ref"], entry) for entry in plan["images"]]
    loaded = result["loaded"] if result else []
    out = {
        "changed": bool(loaded),
        "images": entries,
        "missing": plan["missing"],
        "loaded": loaded,
        "docker_root_dir": root_dir,
        "space": space,
    }
    if diff:
        present_before = [e["ref"] for e in plan["images"] if e["status"] == PRESENT]
        present_after = [e["ref"] for e in entries if e["status"] in (PRESENT, LOADED, WOULD_LOAD)]
        out["diff"] = {"before": {"present": present_before}, "after": {"present": present_after}}
    return out


def unavailable(params: dict, reason: str) -> dict:
    """Check mode on a node without a working Docker yet: every image counts as missing."""
    refs = [image["ref"] for image in params["images"]]
    statuses = [{"ref": ref, "status": MISSING, "id": None, "accepted_ids": []} for ref in refs]
    loaded = refs if params["load"] else []
    return {
        "changed": bool(loaded),
        "images": statuses,
        "missing": refs,
        "loaded": loaded,
        "docker_root_dir": None,
        "space": [],
        "warnings": [f"{reason}; check mode counts every image as missing"],
    }


def image_preload(module) -> dict:
    """docker_image_preload: the whole run for an AnsibleModule. Returns the result; raises PreloadError."""
    params = module.params
    docker = params["docker_path"] or module.get_bin_path("docker", opt_dirs=["/usr/local/bin"])
    if not docker:
        if module.check_mode:
            return unavailable(params, "the docker CLI is not installed yet")
        raise PreloadError("the docker CLI is not on the node: install Docker Engine first (role docker_engine)")
    try:
        return ensure_images(DockerCli(module, docker), params, check_mode=module.check_mode, diff=module._diff)
    except DockerUnavailable as exc:
        if module.check_mode:
            return unavailable(params, str(exc))
        raise
