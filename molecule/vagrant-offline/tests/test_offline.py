"""vagrant-offline: every node's outbound traffic is really blocked while the cluster runs.

Checked from the loaded nftables rules (no packet is sent anywhere): prepare.yml loads table
``inet kubelab_offline`` before converge; these tests prove it is still loaded after converge and
idempotence (Docker, kube-proxy and flannel add their own tables; none may have removed ours),
that its output and forward hooks drop by default, and that the only ways out are loopback,
replies, and the host-only / pod / service networks.
"""

from __future__ import annotations

import ipaddress
import json

testinfra_hosts = ["ansible://k8s_cluster"]

TABLE = "kubelab_offline"


def _objects(host) -> list[dict]:
    # Root through the scenario inventory's ansible_become (testinfra runs the command with sudo).
    out = host.check_output(f"nft -j list table inet {TABLE}")
    return json.loads(out)["nftables"]


def _chain(objects: list[dict], hook: str) -> dict:
    chains = [o["chain"] for o in objects if "chain" in o and o["chain"].get("hook") == hook]
    assert len(chains) == 1, f"expected one {hook} chain in table inet {TABLE}, found {len(chains)}"
    return chains[0]


def _rules(objects: list[dict], chain: str) -> list[list[dict]]:
    return [o["rule"]["expr"] for o in objects if "rule" in o and o["rule"]["chain"] == chain]


def _allowed_networks(objects: list[dict]) -> list[ipaddress.IPv4Network]:
    sets = [o["set"] for o in objects if "set" in o and o["set"]["name"] == "allowed_ipv4"]
    assert len(sets) == 1, "set allowed_ipv4 is missing"
    nets = []
    for elem in sets[0].get("elem", []):
        if isinstance(elem, dict) and "prefix" in elem:
            nets.append(ipaddress.ip_network(f"{elem['prefix']['addr']}/{elem['prefix']['len']}"))
        elif isinstance(elem, dict) and "range" in elem:
            first, last = (ipaddress.ip_address(a) for a in elem["range"])
            nets.extend(ipaddress.summarize_address_range(first, last))
        else:
            nets.append(ipaddress.ip_network(str(elem)))
    return nets


def test_outbound_and_forward_hooks_drop_by_default(host):
    objects = _objects(host)
    for hook in ("output", "forward"):
        chain = _chain(objects, hook)
        assert chain["policy"] == "drop", f"{hook} chain policy is {chain['policy']}, not drop"


def test_only_loopback_replies_and_cluster_networks_are_accepted(host):
    objects = _objects(host)
    chain = _chain(objects, "output")["name"]
    accepts = [expr for expr in _rules(objects, chain) if {"accept": None} in expr]
    # oifname lo, ct state established/related, ip daddr @allowed_ipv4, ip6 link-local.
    assert len(accepts) == 4, f"unexpected accept rules in the output chain: {accepts}"
    assert any("@allowed_ipv4" in json.dumps(expr) for expr in accepts)
    assert any('"lo"' in json.dumps(expr) for expr in accepts)


def _ways_out(host) -> list[ipaddress.IPv4Address]:
    """The VM's default gateways and DNS servers: where its traffic to the outside would go.

    VirtualBox's NAT adapter: 10.0.2.2 and 10.0.2.3; libvirt's management network: its gateway.
    """
    routes = json.loads(host.check_output("ip -4 -j route show default"))
    out = [ipaddress.ip_address(route["gateway"]) for route in routes if "gateway" in route]
    for line in host.file("/etc/resolv.conf").content_string.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and "." in fields[1]:
            address = ipaddress.ip_address(fields[1])
            if not address.is_loopback:
                out.append(address)
    return out


def test_allowed_networks_are_the_cluster_networks(host):
    nets = _allowed_networks(_objects(host))
    variables = host.ansible.get_variables()
    address = ipaddress.ip_address(variables.get("cluster_node_address") or variables["ansible_host"])
    assert any(address in net for net in nets), f"the host-only network of {address} is not allowed: {nets}"
    ways_out = _ways_out(host)
    assert ways_out, "the VM has neither a default gateway nor a DNS server: nothing to check against"
    for way_out in ways_out:
        assert not any(way_out in net for net in nets), f"{way_out} (the VM's way out) is reachable through {nets}"
    assert all(net.prefixlen >= 8 for net in nets), f"a network as wide as a default route is allowed: {nets}"


def test_rules_are_loaded_again_at_boot(host):
    assert host.service("kubelab-offline-firewall").is_enabled
