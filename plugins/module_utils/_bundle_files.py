# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading the files of an offline bundle: the one piece of the bundle code a node gets.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Node-side code: Python 3.8 and the standard library only. The node (docker_image_preload) and
the controller (bundle_verify, bundle_manifest) both need: the sha256 of a file, the image a
`docker save` archive holds, and references compared the way Docker shortens them. Every problem
is a BundleError; ``str(error)`` names each file and the fix (docs/bundle.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile

from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import ModuleError

CHUNK_SIZE = 1024 * 1024
# The OpenSSH signature of manifest.json (_bundle_sign.py), next to it in the bundle.
SIGNATURE_NAME = "manifest.json.sig"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(ModuleError):
    """A bundle problem. ``problems`` lists each one; ``str()`` joins them after a headline.

    As a ModuleError, a module fails with the text as msg and ``problems`` next to it.
    """

    def __init__(self, headline, problems=None):
        self.headline = headline
        self.problems = list(problems or [])
        text = headline
        if self.problems:
            text += "\n" + "\n".join("- " + p for p in self.problems)
        super().__init__(text, problems=self.problems)


def sha256_file(path, chunk_size=CHUNK_SIZE):
    """Hex sha256 of a file, read in chunks (bundles hold multi-GB image archives)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def normalize_ref(ref):
    """Docker's short form of a reference (docker.io/library/x:t -> x:t) for comparisons."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    if ref.startswith("library/"):
        return ref[len("library/") :]
    return ref


def read_docker_archive(archive_path):
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
    if hexdigest.endswith(".json"):  # str.removesuffix is Python 3.9+
        hexdigest = hexdigest[: -len(".json")]
    if not HEX64.match(hexdigest):
        raise BundleError(f"{archive_path}: cannot read the image config digest from Config={config!r}")
    return {"config_digest": "sha256:" + hexdigest, "repo_tags": list(entries[0].get("RepoTags") or [])}
