# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The signed bundle on the controller: bundle_verify and bundle_manifest with their signatures.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Controller-side code, standard library only. bundle_verify checks manifest.json.sig first (a bundle
nobody trusted vouches for is refused before its gigabytes are hashed), then the files against the
manifest (_bundle_verify), and makes sure the manifest it returns is the one whose signature it
checked. bundle_manifest writes the manifest (_bundle_write) and signs it (_signature).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import MANIFEST_NAME
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_sign import (
    SIGNATURE_NAME,
    allowed_signers,
    check_manifest,
    public_key_of,
    read_signature,
    sign,
    signature_valid,
    verify,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_verify import verify_path
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_write import (
    manifest_result,
    render_manifest,
    write_atomic,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import ModuleError

# --------------------------------------------------------------------------- bundle_verify


def _from_directory(path: str):
    try:
        with open(os.path.join(path, MANIFEST_NAME), "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, None
    return raw, read_signature(os.path.join(path, SIGNATURE_NAME))


def _from_tarball(path: str):
    """manifest.json and manifest.json.sig of a tarball (at its root or under one top directory)."""
    found = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = member.name.lstrip("./").split("/")
                if member.isfile() and len(parts) <= 2 and parts[-1] in (MANIFEST_NAME, SIGNATURE_NAME):
                    found.setdefault(parts[-1], archive.extractfile(member).read())
                if len(found) == 2:
                    break
    except (tarfile.TarError, OSError):
        return None, None  # verify_path names the problem
    return found.get(MANIFEST_NAME), found.get(SIGNATURE_NAME)


def verify_signed(params: dict, check_mode: bool = False) -> dict:
    """bundle_verify: the signature of manifest.json, then the bundle (_bundle_verify.verify_path)."""
    path = params["path"]
    signers = allowed_signers(params["trusted_keys"])
    if os.path.isdir(path):
        raw, signature = _from_directory(path)
    elif os.path.isfile(path) and tarfile.is_tarfile(path):
        raw, signature = _from_tarball(path)
    else:
        raw, signature = None, None
    if raw is None:  # no manifest: verify_path says what the path is and what to do
        return verify_path(params, check_mode)
    trust = check_manifest(raw, signature, signers, params["allow_unsigned"], f"bundle {path}")
    result = verify_path(params, check_mode)
    try:
        signed = json.loads(raw)
    except ValueError:
        signed = None
    if result["manifest"] != signed:
        raise BundleError(
            f"bundle {path}: manifest.json changed while it was verified: make sure nothing writes to the bundle, "
            "and run again"
        )
    bundle_dir = result["bundle_dir"]
    result["unlisted_files"] = [name for name in result["unlisted_files"] if name != SIGNATURE_NAME]
    result.update(
        signature=trust["signature"],
        signed_by=trust["signed_by"],
        fingerprint=trust["fingerprint"],
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        signature_path=os.path.join(bundle_dir, SIGNATURE_NAME) if bundle_dir and signature is not None else "",
        allowed_signers=signers,
        warnings=trust["warnings"],
    )
    return result


# --------------------------------------------------------------------------- bundle_manifest


def sign_bundle(bundle_dir: str, key_path: str, manifest_text: str | None = None, check_mode: bool = False) -> dict:
    """Write <bundle_dir>/manifest.json.sig for manifest.json (or for manifest_text, the manifest about to be
    written) with key_path, unless the existing signature already verifies with that key.

    Returns {changed, signature_path, fingerprint}. Raises BundleError.
    """
    sig_path = os.path.join(bundle_dir, SIGNATURE_NAME)
    if manifest_text is None:
        with open(os.path.join(bundle_dir, MANIFEST_NAME), "rb") as handle:
            data = handle.read()
    else:
        data = manifest_text.encode("utf-8")
    signers = allowed_signers([public_key_of(key_path)])
    old = read_signature(sig_path)
    if old is not None:
        try:
            found = verify(data, old, signers)
        except BundleError:
            pass
        else:
            return {"changed": False, "signature_path": sig_path, "fingerprint": found["fingerprint"]}
    if check_mode:
        return {"changed": True, "signature_path": sig_path, "fingerprint": ""}
    signature = sign(data, key_path)
    found = verify(data, signature, signers)  # the key signed what we think it signed
    write_atomic(sig_path, signature)
    return {"changed": True, "signature_path": sig_path, "fingerprint": found["fingerprint"]}


def manifest_signed(params: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """bundle_manifest: write manifest.json + SHA256SUMS, then sign manifest.json (or, when allowed, leave it
    unsigned and remove a signature that no longer matches)."""
    key, unsigned = params["signing_key"], params["allow_unsigned"]
    if not key and not unsigned:
        raise BundleError(
            "no signing key: set signing_key (bundle_signing_key of playbooks/bundle.yml) to the private key the "
            "bundle is signed with (`ssh-keygen -t ed25519 -f ~/.ssh/kubelab-bundle` makes one), or allow_unsigned: "
            "true to build an unsigned bundle (then every cluster run needs cluster_bundle_allow_unsigned: true)"
        )
    if key:
        if not os.path.isfile(key):
            raise BundleError(
                f"the signing key {key} does not exist: name the private key file (its .pub beside it), or make one "
                f"with `ssh-keygen -t ed25519 -f {key}`"
            )
        public = public_key_of(key)  # an unreadable key fails before anything is written
    result = manifest_result(params, check_mode=check_mode, diff=diff)
    bundle_dir = params["path"]
    text = render_manifest(result["manifest"])
    sig_path = os.path.join(bundle_dir, SIGNATURE_NAME)
    if key:
        try:
            signed = sign_bundle(bundle_dir, key, manifest_text=text, check_mode=check_mode)
        except OSError as exc:
            raise ModuleError(f"cannot write {sig_path}: {exc}") from None
        result.update(signature_path=sig_path, fingerprint=signed["fingerprint"], signed=True, public_key=public)
        result["changed"] = result["changed"] or signed["changed"]
        return result
    old = read_signature(sig_path)
    stale = old is not None and not signature_valid(text.encode("utf-8"), old)
    if stale and not check_mode:
        os.unlink(sig_path)
    result.update(signature_path="", fingerprint="", signed=False, public_key="")
    result["changed"] = result["changed"] or stale
    result["warnings"] = [
        "the bundle is not signed (allow_unsigned): clusters accept it only with cluster_bundle_allow_unsigned: true"
    ]
    return result
