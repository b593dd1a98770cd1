#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: kubeadm_join_info
short_description: Collect what a node needs to join a kubeadm cluster with the CA pinned
version_added: 0.1.0
description:
  - Reads the API server endpoint and cluster name from the current cluster of O(kubeconfig), and computes the
    C(sha256:) public-key pins of every CA certificate in O(ca_cert_path), as kubeadm's
    C(--discovery-token-ca-cert-hash) expects them (RSA and ECDSA CAs).
  - Cross-checks the CA file against the kubeconfig's C(certificate-authority-data) or C(certificate-authority)
    and fails when they share no certificate, as they then belong to different clusters.
  - With O(certificate_key=true), also runs C(kubeadm init phase upload-certs --upload-certs), which uploads the
    control-plane certificates encrypted into the kubeadm-certs Secret (deleted by the cluster after two hours)
    and returns the key, for joining another control-plane node.
  - Returns the discovery data ready to put into a JoinConfiguration. Combine it with a token from
    M(kubelab.kubeadm.kubeadm_token).
  - Run it on the control-plane node (for a worker, delegate to the control-plane host).
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubelab.kubeadm.kubeadm
attributes:
  check_mode:
    support: full
    details: With O(certificate_key=true), reports a change and does not upload anything.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  ca_cert_path:
    description:
      - Path on the target host of the cluster CA certificate (a PEM file, possibly with several certificates).
    type: path
    default: /etc/kubernetes/pki/ca.crt
  certificate_key:
    description:
      - Upload the control-plane certificates with C(kubeadm init phase upload-certs --upload-certs) and return the
        new certificate key. The task then reports a change.
      - The key decrypts the cluster's CA keys for two hours; always set C(no_log=true) on such a task.
    type: bool
    default: false
  config_path:
    description:
      - Path on the target host of the kubeadm configuration file the cluster was initialised with (the
        InitConfiguration and ClusterConfiguration), given to C(kubeadm init phase upload-certs) as C(--config).
      - Needed when the certificates are not in C(/etc/kubernetes/pki) or etcd is external. Without it kubeadm
        also has no C(kubernetesVersion) and tries to look up the latest release online, which only costs a
        warning and a timeout on hosts without internet.
      - Only used with O(certificate_key=true).
    type: path
notes:
  - The Python C(cryptography) package is used when installed; without it, the pins are computed from the
    certificate's DER bytes directly, with the same result.
seealso:
  - module: kubelab.kubeadm.kubeadm_token
  - name: kubeadm join discovery
    description: Token-based discovery with CA pinning.
    link: https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-join/
"""

EXAMPLES = r"""
- name: Read the join discovery data on the control plane
  kubelab.kubeadm.kubeadm_join_info:
  delegate_to: "{{ groups['control_plane'][0] }}"
  become: true
  register: kubeadm_join_info

- name: Render the JoinConfiguration
  ansible.builtin.copy:
    dest: /etc/kubernetes/kubeadm-join.yaml
    mode: "0600"
    content: |
      apiVersion: kubeadm.k8s.io/v1beta4
      kind: JoinConfiguration
      discovery:
        bootstrapToken:
          token: "{{ kubeadm_join_token.token }}"
          apiServerEndpoint: "{{ kubeadm_join_info.join_discovery.apiServerEndpoint }}"
          caCertHashes: {{ kubeadm_join_info.join_discovery.caCertHashes | to_json }}
  no_log: true

- name: Upload the certificates for a control-plane join
  kubelab.kubeadm.kubeadm_join_info:
    certificate_key: true
    config_path: /etc/kubernetes/kubeadm-init.yaml
  become: true
  no_log: true
  register: kubeadm_control_plane_join
"""

RETURN = r"""
api_server_endpoint:
  description: C(host:port) of the API server, from the server URL of the kubeconfig's current cluster.
  returned: success
  type: str
  sample: 10.0.2.8:6443
ca_cert_hashes:
  description: Public-key pins of the CA certificates in O(ca_cert_path), in file order.
  returned: success
  type: list
  elements: str
  sample: ['sha256:7c2b2a8b1f0e8a3c6f6e4f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b']
cluster_name:
  description: Name of the kubeconfig's current cluster (kubeadm's clusterName).
  returned: success
  type: str
  sample: kubernetes
join_discovery:
  description: The C(discovery.bootstrapToken) fields of a JoinConfiguration, without the token.
  returned: success
  type: dict
  contains:
    apiServerEndpoint:
      description: Same as RV(api_server_endpoint).
      type: str
    caCertHashes:
      description: Same as RV(ca_cert_hashes).
      type: list
      elements: str
  sample:
    apiServerEndpoint: 10.0.2.8:6443
    caCertHashes: ['sha256:7c2b2a8b1f0e8a3c6f6e4f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b']
certificate_key:
  description:
    - The certificate key (64 hex characters) of the uploaded certificates. SENSITIVE, use C(no_log=true).
    - Null in check mode.
  returned: when O(certificate_key=true)
  type: str
  sample: f9ea00c50ef12a386949dfb84b3abb2aa1053cc84f3792cd4b8aa6cc42c1fd57
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import (
    KUBEADM_PATH_SPEC,
    KUBECONFIG_SPEC,
    KubeadmRunner,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._pki import join_info


def main():
    argument_spec = {
        "ca_cert_path": {"type": "path", "default": "/etc/kubernetes/pki/ca.crt"},
        "certificate_key": {"type": "bool", "default": False, "no_log": False},
        "config_path": {"type": "path"},
    }
    argument_spec.update(KUBECONFIG_SPEC)
    argument_spec.update(KUBEADM_PATH_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner = KubeadmRunner.for_module(module)
    exit_module(module, lambda: join_info(runner, module.params, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
