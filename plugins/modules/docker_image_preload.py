#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_image_preload
short_description: Load verified C(docker save) archives into the node's Docker, only the missing ones
version_added: 0.1.0
description:
  - For each image, asks the node's Docker for the reference. The image is present when the reference's ID is one
    of the accepted IDs (O(images[].id) or O(images[].config_digest), see C(docs/bundle.md)); present images are
    left alone.
  - With O(load=true), each image that is missing (or whose reference has another ID) is loaded from
    O(images[].archive) after checking, before C(docker load), that the archive has the sha256 of the manifest,
    holds the reference and the manifest's image config. After loading, the reference's ID must be accepted.
  - With O(load=false), only reports which images are missing, and checks that the disk has room for them.
  - The entries of a bundle manifest's C(images) and C(files) lists can be passed unchanged (O(images), O(files)),
    with O(archive_dir) the directory on the node that holds the bundle's C(images/) archives.
  - Never removes or untags an image, also not when a check fails.
  - Talks to Docker through the C(docker) CLI rather than the Docker API, so that the node needs no Python
    C(requests) library (which C(community.docker.docker_image_load) needs and a bare air-gapped node lacks).
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the images that would be loaded (verifying archives already on the node); loads nothing.
  diff_mode:
    support: full
    details: Before and after list the references present with an accepted ID.
  platform:
    platforms: posix
options:
  images:
    description:
      - The images to ensure, entries of the bundle manifest's C(images) list.
    type: list
    elements: dict
    required: true
    suboptions:
      ref:
        description:
          - The image reference, for example C(registry.k8s.io/pause:3.10.1).
        type: str
        required: true
      id:
        description:
          - The image ID recorded by the bundle builder (C(sha256:<hex>)).
        type: str
        required: true
      config_digest:
        description:
          - The image config digest (C(sha256:<hex>)), also accepted as the ID and checked inside the archive.
        type: str
      archive:
        description:
          - The C(docker save) archive on the node; a relative path (as in the manifest) is found under
            O(archive_dir). Required for an image that has to be loaded.
        type: str
      group:
        description:
          - The manifest's image group (C(kubeadm), C(pod_network)); accepted so that manifest entries pass
            unchanged, not used.
        type: str
      sha256:
        description:
          - The archive's sha256. Default is the one of the O(files) entry with the archive's path. An image that
            has to be loaded needs one.
        type: str
      size:
        description:
          - The archive's size in bytes, for the disk space check. Default is the one of the O(files) entry.
        type: int
  files:
    description:
      - Entries of the bundle manifest's C(files) list; give each image archive's sha256 and size.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - The path inside the bundle, for example C(images/registry.k8s.io_pause_3.10.1.tar).
        type: str
        required: true
      sha256:
        description:
          - The file's sha256.
        type: str
        required: true
      size:
        description:
          - The file's size in bytes.
        type: int
      component:
        description:
          - The manifest's component of the file; not used.
        type: str
  archive_dir:
    description:
      - The directory on the node under which relative O(images[].archive) paths are found.
    type: path
  load:
    description:
      - Load the missing images. V(false) only reports them (and checks the disk space).
    type: bool
    default: true
  cache_dir:
    description:
      - The directory the archives of missing images are copied to. With O(load=false) the file system holding it
        must have room for them (their size), and Docker's root directory too.
    type: path
  min_free_mib:
    description:
      - Free space in MiB to leave on each file system beyond what the missing images need.
    type: int
    default: 0
  docker_path:
    description:
      - The docker CLI. Default is C(docker) from the PATH (or C(/usr/local/bin)).
    type: path
notes:
  - Needs the C(docker) CLI and a running Docker Engine on the node. In check mode on a node without them
    (Docker not installed yet), every image is reported missing, with a warning.
seealso:
  - module: community.docker.docker_image_load
"""

EXAMPLES = r"""
# manifest: the bundle's manifest.json, read on the controller; archives are copied to /var/cache/kubelab/images/.
- name: Find the images the node lacks (and check the disk has room for them)
  kubelab.kubeadm.docker_image_preload:
    images: "{{ manifest.images }}"
    files: "{{ manifest.files }}"
    load: false
    cache_dir: /var/cache/kubelab
    min_free_mib: 1024
  register: preload_plan

- name: Load one image from its verified archive
  kubelab.kubeadm.docker_image_preload:
    images:
      - ref: registry.k8s.io/pause:3.10.1
        id: "{{ pause_image.id }}"
        config_digest: "{{ pause_image.config_digest }}"
        archive: images/registry.k8s.io_pause_3.10.1.tar
        sha256: "{{ pause_archive.sha256 }}"
    archive_dir: /var/cache/kubelab
"""

RETURN = r"""
images:
  description: One entry per image, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    ref:
      description: The reference.
      type: str
    status:
      description:
        - C(present) (had an accepted ID), C(loaded), C(would_load) (check mode), or with O(load=false)
          C(missing) (no such reference) and C(mismatch) (the reference has another ID).
      type: str
    id:
      description: The reference's ID on the node after the task (null when absent).
      type: str
    accepted_ids:
      description: The IDs that count as this image.
      type: list
      elements: str
    previous_id:
      description: The other ID the reference had before (only for C(mismatch)).
      type: str
      returned: when the reference had another ID
  sample:
    - ref: registry.k8s.io/pause:3.10.1
      status: present
      id: sha256:cd073f4c5f6a8e9dc6f3125ba00cf60819cae95c1ec84a1f146ee4a9cf9e803f
      accepted_ids: [sha256:cd073f4c5f6a8e9dc6f3125ba00cf60819cae95c1ec84a1f146ee4a9cf9e803f]
missing:
  description: References that were not present with an accepted ID when the task started.
  returned: always
  type: list
  elements: str
  sample: [registry.k8s.io/etcd:3.6.4-0]
loaded:
  description: References loaded (or, in check mode, that would be loaded).
  returned: always
  type: list
  elements: str
  sample: [registry.k8s.io/etcd:3.6.4-0]
docker_root_dir:
  description: Docker's root directory (C(docker info) DockerRootDir).
  returned: always
  type: str
  sample: /var/lib/docker
space:
  description: Free bytes and device of the file systems checked (O(cache_dir), Docker's root directory).
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /var/cache/kubelab/images, free_bytes: 52613349376, device: 2049}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module
from ansible_collections.kubelab.kubeadm.plugins.module_utils._docker_images import image_preload

IMAGE_SPEC = {
    "ref": {"type": "str", "required": True},
    "id": {"type": "str", "required": True},
    "config_digest": {"type": "str"},
    "archive": {"type": "str"},
    "group": {"type": "str"},
    "sha256": {"type": "str"},
    "size": {"type": "int"},
}
FILE_SPEC = {
    "path": {"type": "str", "required": True},
    "sha256": {"type": "str", "required": True},
    "size": {"type": "int"},
    "component": {"type": "str"},
}


def argument_spec() -> dict:
    return {
        "images": {"type": "list", "elements": "dict", "required": True, "options": IMAGE_SPEC},
        "files": {"type": "list", "elements": "dict", "default": [], "options": FILE_SPEC},
        "archive_dir": {"type": "path"},
        "load": {"type": "bool", "default": True},
        "cache_dir": {"type": "path"},
        "min_free_mib": {"type": "int", "default": 0},
        "docker_path": {"type": "path"},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_module(module, lambda: image_preload(module))


if __name__ == "__main__":
    main()
