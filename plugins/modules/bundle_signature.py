#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: bundle_signature
short_description: Verify an offline bundle's signed manifest on the host that uses the bundle's files
version_added: 0.1.0
description:
  - Verifies on the managed node, with the node's own C(ssh-keygen -Y verify), that O(signature) is an OpenSSH signature
    (namespace C(kubelab-bundle)) of the copied C(manifest.json) by a key of the allowed-signers file O(allowed_signers),
    and returns that manifest. The per-file sha256 checks of the roles compare against this node-verified manifest.
  - An unsigned or wrongly signed manifest fails, naming the problem and the fix; with O(allow_unsigned) it passes
    with a warning.
  - Read-only; needs C(ssh-keygen) of OpenSSH 8.2 or later (openssh-client, present wherever an OpenSSH server runs).
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only, so it runs normally.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  manifest:
    description:
      - The copy of the bundle's C(manifest.json) on the node.
    type: path
    required: true
  signature:
    description:
      - Its signature. Defaults to O(manifest) with C(.sig) appended. A missing file means an unsigned bundle.
    type: path
  allowed_signers:
    description:
      - The allowed-signers file (ssh-keygen(1) ALLOWED SIGNERS) of the trusted keys, for example the
        C(allowed_signers) result of M(kubelab.kubeadm.bundle_verify).
    type: path
    required: true
  allow_unsigned:
    description:
      - Accept a manifest that is unsigned or does not verify, with a warning.
    type: bool
    default: false
  manifest_sha256:
    description:
      - The sha256 the manifest must have (the one the controller verified). Not compared when omitted.
    type: str
"""

EXAMPLES = r"""
- name: Verify the bundle's manifest on the node
  kubelab.kubeadm.bundle_signature:
    manifest: /var/cache/kubelab/bundle/manifest.json
    allowed_signers: /var/cache/kubelab/bundle/allowed_signers
    manifest_sha256: "{{ bundle.manifest_sha256 }}"
  register: node_bundle
"""

RETURN = r"""
signature:
  description: C(verified), or with O(allow_unsigned) C(unsigned), C(invalid) or C(unchecked) (no trusted key).
  returned: success
  type: str
  sample: verified
signed_by:
  description: The comment of the trusted key that signed the manifest (empty when not verified).
  returned: success
  type: str
  sample: builder@bundle-host
fingerprint:
  description: The SHA256 fingerprint of that key (empty when not verified).
  returned: success
  type: str
  sample: SHA256:4DzA4rP7n0COWtLhJkI+4/ANiPWcWthyYfK4sUTiwD4
manifest_sha256:
  description: The sha256 of the manifest on the node.
  returned: success
  type: str
  sample: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
manifest:
  description: The verified manifest (its C(files) hold each file's path, size, sha256 and component).
  returned: success
  type: dict
  sample: {format_version: 1, kubernetes_version: 1.36.3, files: [], images: []}
"""

import hashlib
import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_sign import check_manifest, read_signature
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module


def verify_on_node(params: dict) -> dict:
    path = params["manifest"]
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        with open(params["allowed_signers"], encoding="utf-8") as handle:
            signers = handle.read()
        signature = read_signature(params["signature"] or path + ".sig")
    except OSError as exc:
        raise BundleError(f"cannot read the bundle's manifest or trusted keys on this node: {exc}") from None
    sha = hashlib.sha256(raw).hexdigest()
    expected = params["manifest_sha256"]
    if expected and sha != expected:
        raise BundleError(
            f"{path} has sha256 {sha}, but the manifest verified on the controller has {expected}: the copy changed "
            "on its way or on this node; run again (it is copied anew)"
        )
    trust = check_manifest(raw, signature, signers, params["allow_unsigned"], path)
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise BundleError(f"{path} is not a bundle manifest (no 'files' list): rebuild the bundle")
    return {
        "changed": False,
        "signature": trust["signature"],
        "signed_by": trust["signed_by"],
        "fingerprint": trust["fingerprint"],
        "manifest_sha256": sha,
        "manifest": manifest,
        "warnings": trust["warnings"],
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "manifest": {"type": "path", "required": True},
            "signature": {"type": "path"},
            "allowed_signers": {"type": "path", "required": True},
            "allow_unsigned": {"type": "bool", "default": False},
            "manifest_sha256": {"type": "str"},
        },
        supports_check_mode=True,
    )
    exit_module(module, lambda: verify_on_node(module.params))


if __name__ == "__main__":
    main()
