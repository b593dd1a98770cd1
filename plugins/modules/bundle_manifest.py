#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: bundle_manifest
short_description: Write the manifest.json and SHA256SUMS of an offline bundle
version_added: 0.1.0
description:
  - Lists every file of an offline bundle directory (the layout of C(docs/bundle.md)) with its size, sha256 and
    component, adds the given metadata and image entries, and writes C(manifest.json) and C(SHA256SUMS).
  - Files off the layout, symlinks, a second archive of a single-file component or an image archive no image entry
    refers to fail the task, naming the file, so a stale file never slips into a bundle.
  - Each image's C(config_digest) is read from its C(docker save) archive, which must carry the image's reference.
  - Idempotent - when only the creation time would change, the existing files are kept and nothing is reported
    as changed.
  - Signs C(manifest.json) with O(signing_key) into C(manifest.json.sig) (C(ssh-keygen -Y sign), namespace
    C(kubelab-bundle)); an existing signature that verifies with that key is kept. Without a key the task fails
    unless O(allow_unsigned) is set. The key's passphrase is never asked for - load an encrypted key into ssh-agent
    and name its C(.pub) file.
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows C(manifest.json) before and after (no secrets in it).
  platform:
    platforms: posix
options:
  path:
    description:
      - The bundle directory.
    type: path
    required: true
  kubernetes_version:
    description:
      - The Kubernetes version of the bundle (a leading C(v) is dropped).
    type: str
    required: true
  architecture:
    description:
      - The architecture of the bundle's binaries and images, for example C(amd64).
    type: str
    required: true
  image_repository:
    description:
      - The image repository the kubeadm images are named after.
    type: str
    default: registry.k8s.io
  builder:
    description:
      - What built the bundle, recorded in the manifest.
    type: str
    default: playbooks/bundle.yml
  versions:
    description:
      - Versions of the bundled components by name (C(kubernetes), C(docker), C(cri_dockerd), C(cni_plugins), C(crictl),
        C(flannel), ...). Empty values are left out.
    type: dict
    default: {}
  images:
    description:
      - The bundle's images. Each archive must already be in the bundle directory.
    type: list
    elements: dict
    default: []
    suboptions:
      ref:
        description:
          - The image reference, for example C(registry.k8s.io/pause:3.10.1).
        type: str
        required: true
      group:
        description:
          - C(kubeadm) for the images of C(kubeadm config images list), C(pod_network) for the pod network's,
            C(test) for images only tests use (agnhost), which the playbooks load only when asked.
        type: str
        required: true
        choices: [kubeadm, pod_network, test]
      id:
        description:
          - The image ID on the builder (C(docker image inspect -f '{{.Id}}')), C(sha256:) and 64 hex digits.
        type: str
        required: true
      archive:
        description:
          - The archive's path in the bundle. Defaults to C(images/<ref>.tar) with each C(/) and C(:) of the reference replaced by C(_).
        type: str
      config_digest:
        description:
          - The image config digest. Read from the archive when omitted, checked against it when given.
        type: str
  signing_key:
    description:
      - The private key (OpenSSH format, for example from C(ssh-keygen -t ed25519)) that signs C(manifest.json); its
        public half is read from C(<signing_key>.pub) when present. Or the C(.pub) of a key held by ssh-agent.
    type: path
  allow_unsigned:
    description:
      - Write the manifest without a signature (no O(signing_key)); a signature that no longer matches is removed.
        Clusters then need C(cluster_bundle_allow_unsigned=true).
    type: bool
    default: false
  created:
    description:
      - The creation time to record (C(YYYY-MM-DDTHH:MM:SSZ)). Defaults to now, or to the existing manifest's
        value when nothing else changed.
    type: str
"""

EXAMPLES = r"""
- name: Write manifest.json and SHA256SUMS
  kubelab.kubeadm.bundle_manifest:
    path: /srv/kubelab-bundle-1.36.3-amd64
    kubernetes_version: 1.36.3
    architecture: amd64
    versions: {kubernetes: 1.36.3, docker: 29.7.2, cri_dockerd: 0.4.3}
    signing_key: /home/builder/.ssh/kubelab-bundle
    images:
      - ref: registry.k8s.io/pause:3.10.1
        group: kubeadm
        id: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
"""

RETURN = r"""
manifest:
  description: The manifest as written (or as it would be written in check mode).
  returned: success
  type: dict
  sample: {format_version: 1, kubernetes_version: 1.36.3, architecture: amd64, files: [], images: []}
manifest_path:
  description: Path of C(manifest.json).
  returned: success
  type: str
  sample: /srv/kubelab-bundle-1.36.3-amd64/manifest.json
sha256sums_path:
  description: Path of C(SHA256SUMS).
  returned: success
  type: str
  sample: /srv/kubelab-bundle-1.36.3-amd64/SHA256SUMS
signed:
  description: Whether C(manifest.json.sig) signs the manifest (false with O(allow_unsigned)).
  returned: success
  type: bool
  sample: true
signature_path:
  description: Path of C(manifest.json.sig); empty when unsigned.
  returned: success
  type: str
  sample: /srv/kubelab-bundle-1.36.3-amd64/manifest.json.sig
public_key:
  description: The public key line of O(signing_key) (what inventories put in C(cluster_bundle_trusted_keys)); empty when unsigned.
  returned: success
  type: str
  sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBt/P+UVkWaxCKiJdVyKdgq2tDss9/eCS7LPiygWEhGL builder@bundle-host
fingerprint:
  description: The SHA256 fingerprint of the signing key (empty when unsigned, or in check mode when a signature is due).
  returned: success
  type: str
  sample: SHA256:4DzA4rP7n0COWtLhJkI+4/ANiPWcWthyYfK4sUTiwD4
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_manifest import IMAGE_GROUPS
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_trust import manifest_signed
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module

IMAGE_SPEC = {
    "ref": {"type": "str", "required": True},
    "group": {"type": "str", "required": True, "choices": list(IMAGE_GROUPS)},
    "id": {"type": "str", "required": True},
    "archive": {"type": "str"},
    "config_digest": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "kubernetes_version": {"type": "str", "required": True},
            "architecture": {"type": "str", "required": True},
            "image_repository": {"type": "str", "default": "registry.k8s.io"},
            "builder": {"type": "str", "default": "playbooks/bundle.yml"},
            "versions": {"type": "dict", "default": {}},
            "images": {"type": "list", "elements": "dict", "default": [], "options": IMAGE_SPEC},
            "created": {"type": "str"},
            "signing_key": {"type": "path", "no_log": False},
            "allow_unsigned": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    exit_module(module, lambda: manifest_signed(module.params, check_mode=module.check_mode, diff=module._diff))


if __name__ == "__main__":
    main()
