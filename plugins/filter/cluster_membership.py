# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter cluster_membership_problems: the pre-flight's judgement of kubeadm_cluster_info results."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.kubelab.kubeadm.plugins.module_utils._cluster_info import membership_problems


def cluster_membership_problems(infos, control_plane, workers, expected):
    """Messages for every node that belongs to another cluster than the inventory's (empty: none)."""
    if control_plane not in infos:
        raise AnsibleFilterError(f"cluster_membership_problems: no kubeadm_cluster_info result for {control_plane}")
    missing = [host for host in workers if host not in infos]
    if missing:
        raise AnsibleFilterError(f"cluster_membership_problems: no kubeadm_cluster_info result for {missing}")
    return membership_problems(infos, control_plane, workers, expected)


class FilterModule:
    def filters(self):
        return {"cluster_membership_problems": cluster_membership_problems}
