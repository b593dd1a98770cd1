#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: kubeadm_cluster_info
short_description: Read which kubeadm cluster a node already belongs to, from its files
version_added: 0.1.0
description:
  - Reads the kubelet's kubeconfig (O(kubelet_kubeconfig)) of a node that joined a cluster, and returns its
    server and the C(sha256:) public-key pins of its certificate authority (C(certificate-authority-data), or the
    file C(certificate-authority) names), the format of kubeadm's C(--discovery-token-ca-cert-hash).
  - On an initialised control plane (O(admin_kubeconfig) and the kube-apiserver static pod manifest exist), also
    the server of the admin kubeconfig, the pins of O(ca_cert_path) and the ClusterConfiguration fields the static
    pod manifests carry (C(clusterName), C(controlPlaneEndpoint), C(networking.podSubnet),
    C(networking.serviceSubnet), C(kubernetesVersion)); kubeadm keeps that document itself only in the
    C(kubeadm-config) ConfigMap, and the manifests it rendered from it need no API server to read.
  - Only reads; returns no secret (the client keys in the kubeconfigs are dropped).
  - Use it before changing a node, to refuse one that belongs to another cluster (playbooks/preflight.yml does).
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  kubelet_kubeconfig:
    description: The kubelet's kubeconfig kubeadm leaves on every node of a cluster.
    type: path
    default: /etc/kubernetes/kubelet.conf
  admin_kubeconfig:
    description: The admin kubeconfig C(kubeadm init) writes on the control plane.
    type: path
    default: /etc/kubernetes/admin.conf
  ca_cert_path:
    description: The cluster CA certificate on the control plane.
    type: path
    default: /etc/kubernetes/pki/ca.crt
  manifests_dir:
    description: The static pod manifests directory (C(kube-apiserver.yaml), C(kube-controller-manager.yaml)).
    type: path
    default: /etc/kubernetes/manifests
notes:
  - The files are readable by root only; run the task with C(become=true).
  - Reading a kubeconfig needs PyYAML on the node, or C(kubectl) (every joined node of these playbooks has it).
seealso:
  - module: kubelab.kubeadm.kubeadm_join_info
"""

EXAMPLES = r"""
- name: Read which cluster the node belongs to
  kubelab.kubeadm.kubeadm_cluster_info:
  become: true
  register: membership

- name: Refuse a worker of another cluster
  ansible.builtin.assert:
    that:
      - not membership.member or membership.kubelet.endpoint == '10.0.2.8:6443'
    fail_msg: "{{ inventory_hostname }} belongs to the cluster at {{ membership.kubelet.endpoint }}"
"""

RETURN = r"""
member:
  description: Whether O(kubelet_kubeconfig) exists, that is the node joined (or initialised) some cluster.
  returned: success
  type: bool
  sample: true
kubelet:
  description: The cluster O(kubelet_kubeconfig) names; null when it does not exist.
  returned: success
  type: dict
  contains:
    path:
      description: The file read.
      type: str
    cluster_name:
      description: Name of the kubeconfig's current cluster.
      type: str
    server:
      description: Its server URL.
      type: str
    endpoint:
      description: C(host:port) of the server (the URL itself when it is no https URL).
      type: str
    ca_cert_hashes:
      description: C(sha256:) pins of its certificate authority, empty when it names none.
      type: list
      elements: str
  sample:
    path: /etc/kubernetes/kubelet.conf
    cluster_name: default-cluster
    server: https://10.0.2.8:6443
    endpoint: 10.0.2.8:6443
    ca_cert_hashes: ['sha256:7c2b2a8b1f0e8a3c6f6e4f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b']
control_plane:
  description: What the node holds of a control plane.
  returned: success
  type: dict
  contains:
    initialised:
      description: O(admin_kubeconfig) and the kube-apiserver manifest exist (as the kubeadm_init role decides).
      type: bool
    admin:
      description: Like RV(kubelet), for O(admin_kubeconfig); null when not initialised.
      type: dict
    ca_cert_hashes:
      description: Pins of O(ca_cert_path) (those of the admin kubeconfig when the file is missing); empty when not
        initialised.
      type: list
      elements: str
    cluster_configuration:
      description:
        - C(clusterName), C(controlPlaneEndpoint), C(kubernetesVersion), C(networking.podSubnet),
          C(networking.serviceSubnet), C(advertiseAddress), C(bindPort) as the manifests and the admin kubeconfig
          show them (null where a value is not there); null when not initialised.
      type: dict
  sample:
    initialised: true
    admin:
      path: /etc/kubernetes/admin.conf
      cluster_name: kubernetes
      server: https://10.0.2.8:6443
      endpoint: 10.0.2.8:6443
      ca_cert_hashes: ['sha256:7c2b2a8b1f0e8a3c6f6e4f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b']
    ca_cert_hashes: ['sha256:7c2b2a8b1f0e8a3c6f6e4f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b']
    cluster_configuration:
      clusterName: kubernetes
      controlPlaneEndpoint: 10.0.2.8:6443
      kubernetesVersion: v1.36.3
      networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}
      advertiseAddress: 10.0.2.8
      bindPort: 6443
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._cluster_info import cluster_info
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module


def main():
    argument_spec = {
        "kubelet_kubeconfig": {"type": "path", "default": "/etc/kubernetes/kubelet.conf"},
        "admin_kubeconfig": {"type": "path", "default": "/etc/kubernetes/admin.conf"},
        "ca_cert_path": {"type": "path", "default": "/etc/kubernetes/pki/ca.crt"},
        "manifests_dir": {"type": "path", "default": "/etc/kubernetes/manifests"},
    }
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    exit_module(module, lambda: cluster_info(module.params, module))


if __name__ == "__main__":
    main()
