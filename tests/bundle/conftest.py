"""tests/bundle: playbooks/bundle.yml against a loopback HTTP server (no internet).

The playbook finds this collection through ansible.cfg's ``./build/collections``; make sure the link
``build/collections/ansible_collections/kubelab/kubeadm -> <repo>`` exists (tests/unit does the same).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_LINK = REPO / "build" / "collections" / "ansible_collections" / "kubelab" / "kubeadm"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(REPO, _LINK)
