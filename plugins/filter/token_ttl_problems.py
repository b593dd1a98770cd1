# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: token_ttl_problems
short_description: What is wrong with a bootstrap-token TTL, by the rules of kubeadm_token
version_added: 0.1.0
description:
  - Checks a TTL and (optionally) the minimum TTL a reused token must have left with the same parser and rules as
    M(kubelab.kubeadm.kubeadm_token) - a Go duration (C(24h), C(1h30m), C(90s), C(0) for no expiry), not negative,
    at least a second when it expires, and O(min_ttl) not longer than O(_input).
  - Returns the problems as sentences naming the option and the fix; an empty list when the values are good. The
    pre-flight (playbooks/tasks/input_checks.yml) uses it so that a TTL that does not parse stops the run before any
    node is changed, not when the token is minted.
author:
  - kubelab.kubeadm developers (@kubelab)
options:
  _input:
    description: The TTL.
    type: str
    required: true
  min_ttl:
    description: The minimum TTL; not checked when omitted.
    type: str
  name:
    description: The variable name of the TTL, for the messages.
    type: str
    default: ttl
  min_ttl_name:
    description: The variable name of the minimum TTL, for the messages.
    type: str
    default: min_ttl
"""

EXAMPLES = r"""
- name: Refuse a join-token TTL that does not parse
  ansible.builtin.assert:
    that:
      - __problems | length == 0
    fail_msg: "{{ __problems | join(' ') }}"
  vars:
    __problems: >-
      {{ kubeadm_join_token_ttl | kubelab.kubeadm.token_ttl_problems(kubeadm_join_token_min_ttl,
         name='kubeadm_join_token_ttl', min_ttl_name='kubeadm_join_token_min_ttl') }}
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when the TTLs are good.
  type: list
  elements: str
"""

from ansible_collections.kubelab.kubeadm.plugins.module_utils._token import TokenError, parse_duration, parse_ttls


def token_ttl_problems(ttl, min_ttl=None, name="ttl", min_ttl_name="min_ttl"):
    try:
        if min_ttl is None:
            parse_duration(ttl, name)
        else:
            parse_ttls(ttl, min_ttl, name, min_ttl_name)
    except TokenError as err:
        return [f"{err}."]
    return []


class FilterModule:
    def filters(self):
        return {"token_ttl_problems": token_ttl_problems}
