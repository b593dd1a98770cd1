#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: bundle_verify
short_description: Verify an offline bundle against its manifest before anything uses it
version_added: 0.1.0
description:
  - Reads C(manifest.json) of an offline bundle (the format of C(docs/bundle.md)), checks its format, that its
    Kubernetes version and architecture are the ones asked for, that the required components and images are in
    it, and that every listed file exists with the recorded size and sha256. C(SHA256SUMS) must agree with the manifest.
  - Any difference fails the task with one line per problem, naming the file, the expected and the actual checksum.
  - First of all, C(manifest.json.sig) next to C(manifest.json) must be an OpenSSH signature (C(ssh-keygen -Y sign),
    namespace C(kubelab-bundle)) of C(manifest.json) by one of O(trusted_keys). A bundle without it, signed by another
    key, or whose C(manifest.json) changed after signing (for example a file replaced and the manifest regenerated)
    fails, naming the problem and the fix, before any file is hashed. With O(allow_unsigned) it passes with a
    warning, on every run.
  - Needs C(ssh-keygen) of OpenSSH 8.2 or later (package openssh-client), already on any machine Ansible reaches over SSH.
  - Run it on the controller (C(delegate_to=localhost), C(run_once=true)) before any node is touched.
  - O(path) may also be a tarball (C(.tar), C(.tar.gz), ...) of a bundle. Without O(unpack_dir) the tarball is verified
    as it is read and nothing is written. With O(unpack_dir) it is unpacked there once (into a staging directory
    renamed into place only when every file verified); a later run finds the unpacked bundle, verifies it and
    reports no change.
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only on a directory, so it runs normally. A tarball is verified but not unpacked in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - The bundle directory, or a tarball of it (with C(manifest.json) at its root or under one top directory).
    type: path
    required: true
  kubernetes_version:
    description:
      - The Kubernetes version the bundle must be for, with or without the leading C(v). Not checked when omitted.
    type: str
  architecture:
    description:
      - The architecture the bundle must be for (C(amd64), C(arm64)). Not checked when omitted.
    type: str
  require_components:
    description:
      - Components that must have a file in the bundle.
    type: list
    elements: str
    default: []
    choices: [kubeadm, kubelet, kubectl, docker, cri_dockerd, cni_plugins, crictl, image, pod_network_manifest]
  require_images:
    description:
      - Image references that must be listed in the bundle, for example the output of
        M(kubelab.kubeadm.kubeadm_images_info).
    type: list
    elements: str
    default: []
  checksum:
    description:
      - Compute each file's sha256 and compare it to the manifest. With V(false) only presence and sizes are checked.
    type: bool
    default: true
  unpack_dir:
    description:
      - Only for a tarball O(path) - the directory to unpack it into. It must not exist, be empty, or already hold
        this very bundle (then nothing is unpacked). Never overwrites other content.
    type: path
  trusted_keys:
    description:
      - The OpenSSH public key lines (C(ssh-ed25519 AAAA... comment), the content of a C(.pub) file) of the keys
        trusted to sign bundles. They become an allowed-signers file of principal and namespace C(kubelab-bundle),
        returned as RV(allowed_signers).
    type: list
    elements: str
    default: []
  allow_unsigned:
    description:
      - Accept a bundle whose manifest is unsigned or does not verify with O(trusted_keys), with a warning. Only
        for bundles you checked by other means.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Verify the offline bundle before any node is touched
  kubelab.kubeadm.bundle_verify:
    path: "{{ cluster_bundle_dir }}"
    kubernetes_version: "{{ cluster_kubernetes_version }}"
    architecture: amd64
    require_components: [kubeadm, kubelet, kubectl, docker, cri_dockerd, cni_plugins, crictl, image]
    trusted_keys:
      - "{{ lookup('ansible.builtin.file', 'keys/bundle-builder.pub') }}"
  delegate_to: localhost
  run_once: true
  register: bundle

- name: Unpack a bundle tarball once and verify it
  kubelab.kubeadm.bundle_verify:
    path: /srv/kubelab-bundle-1.36.3-amd64.tar.gz
    unpack_dir: /srv/kubelab-bundle-1.36.3-amd64
    trusted_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBt/P+UVkWaxCKiJdVyKdgq2tDss9/eCS7LPiygWEhGL builder@bundle-host
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
bundle_dir:
  description: The directory holding the verified bundle (O(unpack_dir) for a tarball); empty for a tarball verified in place.
  returned: success
  type: str
  sample: /srv/kubelab-bundle-1.36.3-amd64
manifest:
  description: The parsed C(manifest.json).
  returned: success
  type: dict
  sample: {format_version: 1, kubernetes_version: 1.36.3, architecture: amd64, files: [], images: []}
files_by_component:
  description: The manifest's file entries by component, each with C(abs_path) added (empty for a tarball verified in place).
  returned: success
  type: dict
  sample:
    kubeadm:
      - {path: bin/kubeadm, size: 72351928, sha256: "0123...", component: kubeadm, abs_path: /srv/bundle/bin/kubeadm}
images:
  description: The manifest's image entries with C(archive_path) (absolute), C(archive_size) and C(archive_sha256) added.
  returned: success
  type: list
  elements: dict
  sample:
    - ref: registry.k8s.io/pause:3.10.1
      archive: images/registry.k8s.io_pause_3.10.1.tar
      archive_path: /srv/bundle/images/registry.k8s.io_pause_3.10.1.tar
      archive_size: 321024
      archive_sha256: "0123..."
      id: "sha256:0123..."
      config_digest: "sha256:0123..."
      group: kubeadm
verified_files:
  description: How many listed files matched (size and, with O(checksum), sha256).
  returned: success
  type: int
  sample: 12
unlisted_files:
  description: Files in the bundle the manifest does not list (C(manifest.json.sig) aside). They are ignored, never used.
  returned: success
  type: list
  elements: str
  sample: []
signature:
  description:
    - C(verified) (signed by a trusted key), or, only with O(allow_unsigned), C(unsigned) (no C(manifest.json.sig)),
      C(invalid) (it does not verify with O(trusted_keys)) or C(unchecked) (no trusted keys given).
  returned: success
  type: str
  sample: verified
signed_by:
  description: The comment of the trusted key that signed the manifest (empty when not verified).
  returned: success
  type: str
  sample: builder@bundle-host
fingerprint:
  description: The SHA256 fingerprint of the key that signed the manifest (empty when not verified).
  returned: success
  type: str
  sample: SHA256:4DzA4rP7n0COWtLhJkI+4/ANiPWcWthyYfK4sUTiwD4
manifest_sha256:
  description: The sha256 of the C(manifest.json) whose signature was checked; a node's copy must have it.
  returned: success
  type: str
  sample: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
signature_path:
  description: Path of C(manifest.json.sig) in RV(bundle_dir); empty when there is none.
  returned: success
  type: str
  sample: /srv/kubelab-bundle-1.36.3-amd64/manifest.json.sig
allowed_signers:
  description: The allowed-signers file made of O(trusted_keys) (what a node verifies the signature with).
  returned: success
  type: str
  sample: |
    kubelab-bundle namespaces="kubelab-bundle" ssh-ed25519 AAAAC3Nza... builder@bundle-host
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import COMPONENTS
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_trust import verify_signed
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "kubernetes_version": {"type": "str"},
            "architecture": {"type": "str"},
            "require_components": {"type": "list", "elements": "str", "default": [], "choices": list(COMPONENTS)},
            "require_images": {"type": "list", "elements": "str", "default": []},
            "checksum": {"type": "bool", "default": True},
            "unpack_dir": {"type": "path"},
            "trusted_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "allow_unsigned": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    exit_module(module, lambda: verify_signed(module.params, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
