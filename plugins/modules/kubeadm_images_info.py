#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: kubeadm_images_info
short_description: List the container images kubeadm needs for a Kubernetes version or configuration
version_added: 0.1.0
description:
  - Runs C(kubeadm config images list -o json) for an exact O(kubernetes_version) (optionally with an
    O(image_repository)) or for a kubeadm configuration file O(config_path), and returns the image references,
    also keyed by component.
  - The list comes from the kubeadm binary itself, so it matches the etcd, CoreDNS and pause tags of that kubeadm
    release; use the kubeadm of the version you install.
  - Works without a cluster and without network access.
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubelab.kubeadm.kubeadm.binary
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  kubernetes_version:
    description:
      - The exact Kubernetes version, with or without the leading C(v), for example V(1.36.3).
      - Labels such as C(stable) are refused, as kubeadm would need the internet to resolve them.
      - Required unless O(config_path) is given.
    type: str
  config_path:
    description:
      - Path on the target host of a kubeadm configuration file (with a ClusterConfiguration) to list the images of.
      - Its C(kubernetesVersion) and C(imageRepository) apply.
    type: path
  image_repository:
    description:
      - Registry path to pull the images from instead of C(registry.k8s.io), for example an intranet mirror.
      - With a repository other than C(registry.k8s.io), kubeadm names CoreDNS C(<repository>/coredns), not
        C(<repository>/coredns/coredns).
    type: str
seealso:
  - name: kubeadm config images
    description: The kubeadm command this module runs.
    link: https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-config/
"""

EXAMPLES = r"""
- name: List the images of Kubernetes 1.36.3
  kubelab.kubeadm.kubeadm_images_info:
    kubernetes_version: 1.36.3
  register: kubeadm_images

- name: Show the pause image cri-dockerd must use
  ansible.builtin.debug:
    msg: "{{ kubeadm_images.by_component.pause }}"

- name: List the images of an intranet mirror
  kubelab.kubeadm.kubeadm_images_info:
    kubernetes_version: v1.36.3
    image_repository: registry.example.lan:5000/k8s
    kubeadm_path: /usr/local/bin/kubeadm
"""

RETURN = r"""
images:
  description: The image references, in kubeadm's order.
  returned: success
  type: list
  elements: str
  sample:
    - registry.k8s.io/kube-apiserver:v1.36.3
    - registry.k8s.io/kube-controller-manager:v1.36.3
    - registry.k8s.io/kube-scheduler:v1.36.3
    - registry.k8s.io/kube-proxy:v1.36.3
    - registry.k8s.io/coredns/coredns:v1.14.2
    - registry.k8s.io/pause:3.10.2
    - registry.k8s.io/etcd:3.6.8-0
by_component:
  description:
    - The same references keyed by image name without registry path or tag (C(kube-apiserver),
      C(kube-controller-manager), C(kube-scheduler), C(kube-proxy), C(coredns), C(pause), C(etcd)).
    - Components a configuration disables (for example kube-proxy) or does not run (etcd with external etcd) are missing.
  returned: success
  type: dict
  sample:
    kube-apiserver: registry.k8s.io/kube-apiserver:v1.36.3
    coredns: registry.k8s.io/coredns/coredns:v1.14.2
    pause: registry.k8s.io/pause:3.10.2
    etcd: registry.k8s.io/etcd:3.6.8-0
kubernetes_version:
  description: The version asked for, with a leading C(v); null when O(config_path) was used.
  returned: success
  type: str
  sample: v1.36.3
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module
from ansible_collections.kubelab.kubeadm.plugins.module_utils._images import images_info
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import (
    KUBEADM_PATH_SPEC,
    KubeadmRunner,
)


def main():
    argument_spec = {
        "kubernetes_version": {"type": "str"},
        "config_path": {"type": "path"},
        "image_repository": {"type": "str"},
    }
    argument_spec.update(KUBEADM_PATH_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("kubernetes_version", "config_path"), ("image_repository", "config_path")],
        required_one_of=[("kubernetes_version", "config_path")],
        supports_check_mode=True,
    )
    runner = KubeadmRunner.for_module(module)
    exit_module(module, lambda: images_info(runner, module.params))


if __name__ == "__main__":
    main()
