# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline bundle in one import, for builders outside Ansible (docs/bundle.md).

PRIVATE to the kubelab.kubeadm collection: not a public API of the collection, but the entry point
other builders use. No module imports this file; each imports only the piece it needs, so that a
node gets _bundle_files.py and nothing else of the bundle code:

    _bundle_files.py     BundleError, sha256_file, normalize_ref, read_docker_archive (node + controller)
    _bundle_manifest.py  layout, manifest parsing and validation, SHA256SUMS checks
    _bundle_verify.py    verifying a bundle directory; the bundle_verify module's logic
    _bundle_tarball.py   verifying and unpacking a tarball of a bundle
    _bundle_write.py     writing manifest.json and SHA256SUMS; the bundle_manifest module's logic
    _bundle_sign.py      signing and verifying manifest.json with ssh-keygen -Y (node + controller)
    _bundle_trust.py     the signature around them: the bundle_verify and bundle_manifest modules' logic

All of them use the Python standard library only, so a builder can load this file by path (the
collection need not be importable), e.g. tests/lab/build::

    spec = importlib.util.spec_from_file_location("_bundle", "plugins/module_utils/_bundle.py")
    bundle = importlib.util.module_from_spec(spec); spec.loader.exec_module(bundle)
    bundle.write_manifest(bundle_dir, meta, images)
    bundle.sign_bundle(bundle_dir, "/path/to/signing_key")

Every problem is raised as :class:`BundleError`; ``str(error)`` names each file and the fix.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_PACKAGE = "ansible_collections.kubelab.kubeadm.plugins.module_utils"
# In the order they import each other.
_PIECES = (
    "_command",
    "_bundle_files",
    "_bundle_manifest",
    "_bundle_tarball",
    "_bundle_verify",
    "_bundle_write",
    "_bundle_sign",
    "_bundle_trust",
)


def _load_pieces_by_path() -> None:
    """Loaded by path: register the pieces next to this file under their package names.

    Their imports (``from ansible_collections...._bundle_files import ...``) then find them in
    sys.modules, without the ansible_collections package.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    for piece in _PIECES:
        name = f"{_PACKAGE}.{piece}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, os.path.join(here, piece + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


if __package__ != _PACKAGE:
    _load_pieces_by_path()

# ruff: noqa: E402 - the pieces are imported after they may have been registered above
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import (
    CHUNK_SIZE,
    SIGNATURE_NAME,
    BundleError,
    normalize_ref,
    read_docker_archive,
    sha256_file,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import (
    COMPONENTS,
    FORMAT_VERSION,
    IMAGE_GROUPS,
    LAYOUT,
    MANIFEST_NAME,
    META_KEYS,
    SINGLE_COMPONENTS,
    SUMS_NAME,
    asked_problems,
    component_for_path,
    identity_problems,
    image_archive_path,
    load_manifest,
    normalize_version,
    parse_manifest,
    parse_sha256sums,
    relpath_problem,
    requirement_problems,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_sign import (
    NAMESPACE,
    allowed_signers,
    check_manifest,
    parse_public_key,
    public_key_of,
    sign,
    verify,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_tarball import (
    scan_tarball,
    unpack_tarball,
    verify_tarball,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_trust import sign_bundle
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_verify import (
    describe,
    sums_problems,
    unlisted_files,
    verify_bundle,
    verify_files,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_write import (
    build_manifest,
    compute_file_entries,
    render_manifest,
    render_sha256sums,
    utc_now,
    write_manifest,
)

__all__ = [
    "CHUNK_SIZE",
    "COMPONENTS",
    "FORMAT_VERSION",
    "IMAGE_GROUPS",
    "LAYOUT",
    "MANIFEST_NAME",
    "META_KEYS",
    "NAMESPACE",
    "SIGNATURE_NAME",
    "SINGLE_COMPONENTS",
    "SUMS_NAME",
    "BundleError",
    "allowed_signers",
    "asked_problems",
    "build_manifest",
    "check_manifest",
    "component_for_path",
    "compute_file_entries",
    "describe",
    "identity_problems",
    "image_archive_path",
    "load_manifest",
    "normalize_ref",
    "normalize_version",
    "parse_manifest",
    "parse_public_key",
    "parse_sha256sums",
    "public_key_of",
    "read_docker_archive",
    "relpath_problem",
    "render_manifest",
    "render_sha256sums",
    "requirement_problems",
    "scan_tarball",
    "sha256_file",
    "sign",
    "sign_bundle",
    "sums_problems",
    "unlisted_files",
    "unpack_tarball",
    "utc_now",
    "verify",
    "verify_bundle",
    "verify_files",
    "verify_tarball",
    "write_manifest",
]
