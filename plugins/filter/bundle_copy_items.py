# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: bundle_copy_items
short_description: The kubelab.kubeadm.install_files items that copy bundle files to a node directory
version_added: 0.2.0
description:
  - Turns bundle paths (as the manifest names them, for example C(images/registry.k8s.io_pause_3.10.2.tar)) into
    M(kubelab.kubeadm.install_files) items - source in the bundle directory on the controller, the sha256 of the
    manifest's O(files) entry, destination under O(dest_dir) with the same relative path.
  - A path the O(files) list does not have is an error naming it (the manifest is incomplete).
author:
  - kubelab.kubeadm developers (@kubelab)
options:
  _input:
    description: The bundle paths to copy.
    type: list
    elements: str
    required: true
  files:
    description: The manifest's C(files) list (each entry with C(path) and C(sha256)).
    type: list
    elements: dict
    required: true
  bundle_dir:
    description: The bundle directory on the controller.
    type: str
    required: true
  dest_dir:
    description: The directory on the node the paths are copied under.
    type: str
    required: true
  record:
    description: The items' O(kubelab.kubeadm.install_files#module:items[].record).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Copy the missing image archives
  kubelab.kubeadm.install_files:
    items: "{{ missing | map(attribute='archive') | kubelab.kubeadm.bundle_copy_items(files, bundle_dir, '/var/cache/kubelab') }}"
"""

RETURN = r"""
_value:
  description: One item per path - C(name), C(src), C(sha256), C(dest), C(record).
  type: list
  elements: dict
"""

import posixpath

from ansible.errors import AnsibleFilterError


def bundle_copy_items(paths, files, bundle_dir, dest_dir, record=False):
    sha = {entry.get("path"): entry.get("sha256") for entry in files or []}
    missing = [p for p in paths if not sha.get(p)]
    if missing:
        raise AnsibleFilterError(
            f"the bundle manifest lists no sha256 for {', '.join(missing)}: rebuild the bundle (its manifest is incomplete)"
        )
    return [
        {
            "name": "bundle-" + path.replace("/", "_"),
            "src": posixpath.join(bundle_dir, path),
            "sha256": sha[path],
            "dest": posixpath.join(dest_dir, path),
            "record": record,
        }
        for path in paths
    ]


class FilterModule:
    def filters(self):
        return {"bundle_copy_items": bundle_copy_items}
