# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Load `docker save` archives into a node's Docker, verified (the logic of docker_image_preload).

PRIVATE to the kubelab.kubeadm collection: not a public API.

Why not community.docker.docker_image_load: it talks to the Docker API through the Python
``requests`` library, which a bare Debian node (and an air-gapped node cannot install it) lacks.
This talks to Docker through the ``docker`` CLI that the docker_engine role installs.

An image counts as present when Docker has its reference and the reference's ID is accepted:
equal to the manifest's ``id`` (the builder's ``docker image inspect`` ID) or ``config_digest``
(what the legacy graphdriver store reports after ``docker load``). See docs/bundle.md.
"""

from __future__ import annotations

import os

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle import (
    BundleError,
    normalize_ref,
    read_docker_archive,
    sha256_file,
)

PRESENT = "present"
MISSING = "missing"
MISMATCH = "mismatch"
LOADED = "loaded"
WOULD_LOAD = "would_load"


class PreloadError(Exception):
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


class DockerCli:
    """The docker CLI, through module.run_command with argument lists."""

    def __init__(self, module, docker_path: str):
        self.module = module
        self.docker = docker_path

    def _run(self, args: list[str]):
        return self.module.run_command([self.docker, *args])

    def root_dir(self) -> str:
        rc, out, err = self._run(["info", "--format", "{{.DockerRootDir}}"])
        if rc != 0 or not out.strip():
            raise DockerUnavailable(
                f"Docker does not answer ({(err or out).strip()}): start it (systemctl start docker) "
                "and check `docker info`"
            )
        return out.strip()

    def image_id(self, ref: str) -> str | None:
        rc, out, _err = self._run(["image", "inspect", "--format", "{{.Id}}", ref])
        if rc != 0:
            return None
        return out.strip() or None

    def load(self, archive: str) -> None:
        rc, out, err = self._run(["load", "--input", archive])
        if rc != 0:
            raise PreloadError(f"docker load --input {archive} failed: {(err or out).strip()}")


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
