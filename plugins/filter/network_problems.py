# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: network_problems
short_description: What is wrong with a cluster's pod and service networks
version_added: 0.1.0
description:
  - Checks the pod network O(_input) and the service network O(service_subnet) (each a CIDR, or an IPv4 and an
    IPv6 CIDR separated by a comma for dual stack) with Python's C(ipaddress) - each must be a network address
    (no host bits), the two must not overlap, and, with O(facts), neither may overlap a network of the node -
    an IPv4 or IPv6 address with its prefix on one of its interfaces, or O(node_address).
  - Interfaces the cluster itself creates (C(lo), C(cni0), C(flannel.*), C(kube-ipvs0), C(cali*), C(cilium_*),
    C(tunl0), C(vxlan.calico), C(weave), C(kube-bridge), C(nodelocaldns)) are not the node's network - their
    addresses lie in the pod or service network on purpose.
  - Returns the problems as sentences naming both ranges and the fix; an empty list when all is well.
author:
  - kubelab.kubeadm developers (@kubelab)
options:
  _input:
    description: The pod network, for example C(10.244.0.0/16).
    type: str
    required: true
  service_subnet:
    description: The service network, for example C(10.96.0.0/12).
    type: str
    required: true
  facts:
    description: The node's C(ansible_facts) with the C(network) subset; omitted = no node networks are checked.
    type: dict
  node_address:
    description: The node's cluster address; counted as a node network (a single address) too.
    type: str
  node:
    description: The node's name, for the messages.
    type: str
    default: the node
  pod_name:
    description: The variable name of the pod network, for the messages.
    type: str
    default: cluster_pod_subnet
  service_name:
    description: The variable name of the service network, for the messages.
    type: str
    default: cluster_service_subnet
"""

EXAMPLES = r"""
- name: Refuse pod and service networks that overlap each other or the node's
  ansible.builtin.assert:
    that:
      - __problems | length == 0
    fail_msg: "{{ __problems | join(' ') }}"
  vars:
    __problems: >-
      {{ cluster_pod_subnet | kubelab.kubeadm.network_problems(cluster_service_subnet, facts=ansible_facts,
         node_address=cluster_node_address, node=inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when the networks are good.
  type: list
  elements: str
"""

import ipaddress
import re

# Interfaces that the cluster (or a CNI) creates with addresses in the pod or service network.
CLUSTER_INTERFACES = re.compile(
    r"\A(lo|cni0|flannel[.].*|kube-ipvs0|cali.*|cilium_.*|tunl0|vxlan[.]calico|weave|kube-bridge|nodelocaldns)\Z"
)


def parse_networks(value, name):
    """([ip_network, ...], [problem, ...]) of a CIDR or a comma-separated dual-stack pair."""
    text = "" if value is None else str(value).strip()
    if not text:
        return [], [f"{name} is empty: set it to a CIDR such as 10.244.0.0/16."]
    networks, problems = [], []
    for part in (p.strip() for p in text.split(",")):
        try:
            networks.append(ipaddress.ip_network(part, strict=True))
        except ValueError as err:
            hint = ""
            try:
                hint = f" - did you mean {ipaddress.ip_network(part, strict=False)}?"
            except ValueError:
                pass
            problems.append(
                f"{name} {part!r} is not a network in CIDR notation ({err}){hint} Set it to a network address"
                " and prefix such as 10.244.0.0/16 (dual stack: one IPv4 and one IPv6 CIDR, comma-separated)."
            )
    if not problems and (len(networks) > 2 or len({n.version for n in networks}) != len(networks)):
        problems.append(
            f"{name} {text!r} lists more than one network of an IP family: give one CIDR, or one IPv4 and one"
            " IPv6 CIDR separated by a comma (dual stack)."
        )
    return networks, problems


def node_networks(facts, node_address=""):
    """[(where, ip_network)] of the node's interfaces (the cluster's own left out) and its cluster address."""
    found = []
    facts = facts or {}
    for iface in facts.get("interfaces") or []:
        if CLUSTER_INTERFACES.match(iface):
            continue
        data = facts.get(iface.replace("-", "_")) or facts.get(iface) or {}
        addresses = []
        for entry in [data.get("ipv4"), *(data.get("ipv4_secondaries") or [])]:
            if entry and entry.get("address") and entry.get("netmask"):
                addresses.append(f"{entry['address']}/{entry['netmask']}")
        for entry in data.get("ipv6") or []:
            if entry.get("address") and entry.get("prefix") and entry.get("scope") != "link":
                addresses.append(f"{entry['address']}/{entry['prefix']}")
        for address in addresses:
            try:
                found.append((f"interface {iface} ({address})", ipaddress.ip_interface(address).network))
            except ValueError:
                continue
    if node_address:
        try:
            network = ipaddress.ip_network(str(node_address).strip())
        except ValueError:
            pass  # the cluster address check of the pre-flight names it
        else:
            known = [pair[1] for pair in found if pair[1].version == network.version]
            if not any(network.subnet_of(mine) for mine in known):
                found.append((f"the cluster address {node_address}", network))
    return found


def network_problems(
    pod_subnet,
    service_subnet,
    *,
    facts=None,
    node_address="",
    node="the node",
    pod_name="cluster_pod_subnet",
    service_name="cluster_service_subnet",
):
    pods, problems = parse_networks(pod_subnet, pod_name)
    services, service_problems = parse_networks(service_subnet, service_name)
    problems += service_problems
    if problems:
        return problems
    for pod in pods:
        for service in services:
            if pod.overlaps(service):
                problems.append(
                    f"{pod_name} {pod} and {service_name} {service} overlap: a pod address could be a service"
                    " address. Choose two networks that share no address (the defaults are 10.244.0.0/16 and"
                    " 10.96.0.0/12)."
                )
    if facts is None and not node_address:
        return problems
    for name, networks in ((pod_name, pods), (service_name, services)):
        for network in networks:
            for where, mine in node_networks(facts, node_address):
                if network.version == mine.version and network.overlaps(mine):
                    problems.append(
                        f"{name} {network} overlaps {mine}, the network of {where} on {node}: the node could no"
                        f" longer reach that network once the cluster routes {network}. Set {name} to a range that"
                        " no node uses (for example 10.244.0.0/16 for pods, 10.96.0.0/12 for services)."
                    )
    return problems


class FilterModule:
    def filters(self):
        return {"network_problems": network_problems}
