#!/usr/bin/python
# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: kubeadm_token
short_description: Ensure a kubeadm bootstrap token exists or is absent
version_added: 0.1.0
description:
  - Ensures a bootstrap token exists (reusing one that still has enough lifetime left) or is absent,
    through C(kubeadm token list -o json), C(kubeadm token create --config) and C(kubeadm token delete).
  - With O(state=present) and no O(token), an existing token with the same O(description), O(usages)
    and O(groups) that is not expired, has at least O(min_ttl) left and does not outlive O(ttl) is
    reused; otherwise a new token is generated in kubeadm's format and created.
  - With O(token) given, the module is idempotent by the token's id. A token with that id and the same
    secret that fits the request is kept; one that is expired, too short-lived or has other
    usages, groups or description is replaced (deleted and created again with the same value). A token
    with that id but another secret is an error.
  - If anything fails after the token was created, the module deletes it again, or names its id in the
    failure when that delete fails as well.
  - Run it on the control-plane node (for a worker, delegate to the control-plane host).
author:
  - kubelab.kubeadm developers (@kubelab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubelab.kubeadm.kubeadm
attributes:
  check_mode:
    support: full
    details: Reports whether a token would be created, replaced or deleted; creates and deletes nothing.
  diff_mode:
    support: full
    details: Before and after show token id, expiry, usages, groups and description, never the secret.
  platform:
    platforms: posix
options:
  state:
    description:
      - V(present) ensures a usable token exists, V(absent) deletes the token given by O(token) or O(token_id).
    type: str
    choices: [present, absent]
    default: present
  token:
    description:
      - The token, C(<6 chars>.<16 chars>) of lower-case letters and digits, for example from
        C(kubeadm token generate).
      - When omitted with O(state=present), a matching token is reused or a new one is generated.
      - The secret never appears on a command line. C(kubeadm token create) reads the token, its O(ttl),
        O(usages), O(groups) and O(description) from a kubeadm configuration file (C(--config), an
        C(InitConfiguration) with C(bootstrapTokens)) that only the module's user can read (mode 0600 in a
        fresh 0700 directory) and that is removed as soon as kubeadm has run.
    type: str
  token_id:
    description:
      - The id (the 6 characters before the dot) of the token to delete with O(state=absent).
      - Only valid with O(state=absent).
    type: str
  ttl:
    description:
      - Lifetime of a new token, as a Go duration such as V(24h), V(1h30m) or V(90s).
      - V(0) creates a token that never expires. Only tokens that never expire are then reused.
    type: str
    default: 24h
  min_ttl:
    description:
      - Lifetime an existing token must still have, as a Go duration, to be reused instead of creating a new one.
      - Must not be longer than O(ttl) (unless O(ttl=0)), otherwise no token could ever be reused.
    type: str
    default: 10m
  description:
    description:
      - Human-friendly description of the token. Part of what makes an existing token match the request.
    type: str
  usages:
    description:
      - Ways the token can be used. Part of what makes an existing token match the request.
    type: list
    elements: str
    choices: [signing, authentication]
    default: [signing, authentication]
  groups:
    description:
      - Extra groups the token authenticates as. Each must match
        C(\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z); groups need the V(authentication) usage.
      - Part of what makes an existing token match the request.
    type: list
    elements: str
    default: ['system:bootstrappers:kubeadm:default-node-token']
notes:
  - The returned RV(token) is a secret that Ansible does not mask by itself when it was generated or
    reused; always set C(no_log=true) on the task (and on tasks that use the registered result).
  - When O(token) was given, Ansible masks its value everywhere in the result, including RV(token).
seealso:
  - module: kubelab.kubeadm.kubeadm_token_info
  - module: kubelab.kubeadm.kubeadm_join_info
  - name: kubeadm token
    description: The kubeadm command this module drives.
    link: https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-token/
"""

EXAMPLES = r"""
- name: Ensure a join token with at least an hour left exists
  kubelab.kubeadm.kubeadm_token:
    description: kubelab join token
    ttl: 2h
    min_ttl: 1h
  delegate_to: "{{ groups['control_plane'][0] }}"
  become: true
  no_log: true
  register: kubeadm_join_token

- name: Ensure a given token exists and never expires
  kubelab.kubeadm.kubeadm_token:
    token: "{{ vault_bootstrap_token }}"
    ttl: "0"
  become: true
  no_log: true

- name: Delete a token by its id
  kubelab.kubeadm.kubeadm_token:
    state: absent
    token_id: abcdef
  become: true
"""

RETURN = r"""
token:
  description:
    - The full token (id.secret). SENSITIVE, use C(no_log=true).
    - Masked by Ansible when it came from the O(token) option; null in check mode when a new token would be generated,
      and with O(state=absent).
  returned: always
  type: str
  sample: abcdef.0123456789abcdef
token_id:
  description: Id of the token (the part before the dot); null in check mode when a new token would be generated.
  returned: always
  type: str
  sample: abcdef
expires:
  description:
    - Expiry of the token in UTC (RFC3339), null if it never expires or O(state=absent).
    - In check mode, the expiry a token created now would get.
  returned: always
  type: str
  sample: "2026-11-29T10:00:00Z"
reused:
  description: Whether an existing token was returned instead of creating one.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import exit_module
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import (
    KUBEADM_PATH_SPEC,
    KUBECONFIG_SPEC,
    KubeadmRunner,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._token import DEFAULT_GROUP, KNOWN_USAGES
from ansible_collections.kubelab.kubeadm.plugins.module_utils._token_ensure import ensure_token


def main():
    argument_spec = {
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "token": {"type": "str", "no_log": True},
        "token_id": {"type": "str", "no_log": False},
        "ttl": {"type": "str", "default": "24h"},
        "min_ttl": {"type": "str", "default": "10m"},
        "description": {"type": "str"},
        "usages": {"type": "list", "elements": "str", "choices": list(KNOWN_USAGES), "default": list(KNOWN_USAGES)},
        "groups": {"type": "list", "elements": "str", "default": [DEFAULT_GROUP]},
    }
    argument_spec.update(KUBECONFIG_SPEC)
    argument_spec.update(KUBEADM_PATH_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "absent", ("token", "token_id"), True)],
        supports_check_mode=True,
    )
    if module.params["token_id"] and module.params["state"] == "present":
        module.fail_json(msg="token_id is only used with state=absent: to ensure a token exists, give token")
    runner = KubeadmRunner.for_module(module)
    exit_module(module, lambda: ensure_token(runner, module.params, check_mode=module.check_mode, diff=module._diff))


if __name__ == "__main__":
    main()
