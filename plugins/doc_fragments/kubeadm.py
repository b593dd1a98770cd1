# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Options shared by the kubelab.kubeadm modules.

    kubelab.kubeadm.kubeadm: kubeconfig + kubeadm_path (modules that talk to the cluster).
    kubelab.kubeadm.kubeadm.binary: kubeadm_path only.
    The matching argument specs are KUBECONFIG_SPEC and KUBEADM_PATH_SPEC in module_utils/_kubeadm.py.
    """

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path on the target host of the kubeconfig kubeadm uses to talk to the cluster.
      - The default is the admin kubeconfig C(kubeadm init) writes on the control-plane node, which
        only root can read, so run the task there with C(become=true).
    type: path
    default: /etc/kubernetes/admin.conf
  kubeadm_path:
    description:
      - Path of the kubeadm binary on the target host.
      - When not set, C(kubeadm) is looked up in E(PATH) and in C(/usr/local/bin), C(/usr/bin) and C(/opt/bin).
    type: path
"""

    BINARY = r"""
options:
  kubeadm_path:
    description:
      - Path of the kubeadm binary on the target host.
      - When not set, C(kubeadm) is looked up in E(PATH) and in C(/usr/local/bin), C(/usr/bin) and C(/opt/bin).
    type: path
"""
