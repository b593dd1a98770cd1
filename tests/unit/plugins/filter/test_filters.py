"""The pre-flight's filters: network_problems (pod, service and node networks) and token_ttl_problems."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubelab.kubeadm.plugins.filter import bundle_copy_items as copies
from ansible_collections.kubelab.kubeadm.plugins.filter import network_problems as networks
from ansible_collections.kubelab.kubeadm.plugins.filter import token_ttl_problems as ttls
from ansible_collections.kubelab.kubeadm.plugins.module_utils._token import TokenError, parse_ttls


def flat(problems: list[str]) -> str:
    return " ".join(" ".join(problems).split())


# A node's facts (gather_subset network) as Ansible writes them: interface names in `interfaces`, each under
# its name with '-' as '_'.
FACTS = {
    "interfaces": ["lo", "eth0", "br-lan", "cni0", "flannel.1", "docker0", "kube-ipvs0", "veth12"],
    "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
    "eth0": {
        "ipv4": {"address": "192.168.10.5", "netmask": "255.255.255.0"},
        "ipv4_secondaries": [{"address": "172.20.0.9", "netmask": "255.255.0.0"}],
        "ipv6": [
            {"address": "fe80::1", "prefix": "64", "scope": "link"},
            {"address": "fd00:10::5", "prefix": "64", "scope": "global"},
        ],
    },
    "br_lan": {"ipv4": {"address": "10.20.0.1", "netmask": "255.255.0.0"}},
    "cni0": {"ipv4": {"address": "10.244.0.1", "netmask": "255.255.255.0"}},
    "flannel_1": {"ipv4": {"address": "10.244.0.0", "netmask": "255.255.255.255"}},
    "kube_ipvs0": {"ipv4": {"address": "10.96.0.1", "netmask": "255.255.255.255"}},
    "docker0": {"ipv4": {"address": "172.17.0.1", "netmask": "255.255.0.0"}},
    "veth12": {},
}


def test_defaults_are_good_even_beside_the_clusters_own_interfaces() -> None:
    """cni0, flannel.1 and kube-ipvs0 hold pod and service addresses on a member: not the node's network."""
    assert networks.network_problems("10.244.0.0/16", "10.96.0.0/12", facts=FACTS, node_address="192.168.10.5") == []


@pytest.mark.parametrize(
    ("pod", "service", "wanted"),
    [
        pytest.param(
            "10.244.0.1/16",
            "10.96.0.0/12",
            ["cluster_pod_subnet '10.244.0.1/16' is not a network", "did you mean 10.244.0.0/16?"],
            id="host-bits",
        ),
        pytest.param(
            "10.244.0.0/33", "10.96.0.0/12", ["cluster_pod_subnet '10.244.0.0/33' is not a network"], id="prefix"
        ),
        pytest.param("10.244.0.0/16", "ten", ["cluster_service_subnet 'ten' is not a network"], id="word"),
        pytest.param("", "10.96.0.0/12", ["cluster_pod_subnet is empty"], id="empty"),
        pytest.param(
            "10.244.0.0/16,10.245.0.0/16", "10.96.0.0/12", ["more than one network of an IP family"], id="two-ipv4"
        ),
        pytest.param(
            "10.96.0.0/16",
            "10.96.0.0/12",
            [
                "cluster_pod_subnet 10.96.0.0/16 and cluster_service_subnet 10.96.0.0/12 overlap",
                "Choose two networks that share no address",
            ],
            id="overlap",
        ),
        pytest.param(
            "10.244.0.0/16,fd00:1::/56",
            "10.96.0.0/12,fd00:1::/108",
            ["cluster_pod_subnet fd00:1::/56 and cluster_service_subnet fd00:1::/108 overlap"],
            id="dual-stack-overlap",
        ),
    ],
)
def test_bad_networks(pod: str, service: str, wanted: list[str]) -> None:
    text = flat(networks.network_problems(pod, service))
    for part in wanted:
        assert part in text, text


def test_dual_stack_without_overlap_is_good() -> None:
    assert networks.network_problems("10.244.0.0/16,fd00:1::/56", "10.96.0.0/12,fd00:2::/108") == []


@pytest.mark.parametrize(
    ("pod", "service", "wanted"),
    [
        pytest.param(
            "192.168.0.0/16",
            "10.96.0.0/12",
            "cluster_pod_subnet 192.168.0.0/16 overlaps 192.168.10.0/24, the network of interface eth0"
            " (192.168.10.5/255.255.255.0) on node7",
            id="pod-contains-lan",
        ),
        pytest.param(
            "10.244.0.0/16",
            "172.20.128.0/20",
            "cluster_service_subnet 172.20.128.0/20 overlaps 172.20.0.0/16, the network of interface eth0"
            " (172.20.0.9/255.255.0.0) on node7",
            id="secondary-address",
        ),
        pytest.param(
            "10.20.5.0/24", "10.96.0.0/12", "the network of interface br-lan (10.20.0.1/255.255.0.0)", id="dash-in-name"
        ),
        pytest.param("10.244.0.0/16", "172.16.0.0/12", "the network of interface docker0", id="docker0-counts"),
        pytest.param(
            "10.244.0.0/16,fd00:10::/56", "10.96.0.0/12", "fd00:10::/64, the network of interface eth0", id="ipv6"
        ),
    ],
)
def test_networks_of_the_node(pod: str, service: str, wanted: str) -> None:
    text = flat(networks.network_problems(pod, service, facts=FACTS, node="node7"))
    assert wanted in text, text
    assert "Set cluster_" in text and "to a range that no node uses" in text


def test_cluster_address_counts_when_no_interface_has_it() -> None:
    text = flat(networks.network_problems("10.244.0.0/16", "10.96.0.0/12", facts={}, node_address="10.100.0.7"))
    assert "cluster_service_subnet 10.96.0.0/12 overlaps 10.100.0.7/32, the network of the cluster address" in text
    # on an interface it is named through its interface once, not twice
    once = networks.network_problems("192.168.0.0/16", "10.96.0.0/12", facts=FACTS, node_address="192.168.10.5")
    assert len(once) == 1
    # an address that is none is left to the pre-flight's own check
    assert networks.network_problems("10.244.0.0/16", "10.96.0.0/12", facts={}, node_address="node1") == []


def test_filter_names() -> None:
    assert networks.FilterModule().filters()["network_problems"] is networks.network_problems
    assert ttls.FilterModule().filters()["token_ttl_problems"] is ttls.token_ttl_problems


@pytest.mark.parametrize(
    ("ttl", "min_ttl", "wanted"),
    [
        pytest.param("15 minutes", "10m", "kubeadm_join_token_ttl '15 minutes' has an unknown unit", id="words"),
        pytest.param("15", "10m", "kubeadm_join_token_ttl '15' has a number without a unit", id="no-unit"),
        pytest.param("-1h", "10m", "kubeadm_join_token_ttl '-1h' is negative", id="negative"),
        pytest.param("15m", "1d", "kubeadm_join_token_min_ttl '1d' has an unknown unit", id="min-days"),
        pytest.param(
            "5m", "10m", "kubeadm_join_token_min_ttl (10m) is longer than kubeadm_join_token_ttl (5m)", id="min-longer"
        ),
        pytest.param("500ms", "0", "kubeadm_join_token_ttl '500ms' is shorter than a second", id="sub-second"),
    ],
)
def test_bad_ttls(ttl: str, min_ttl: str, wanted: str) -> None:
    problems = ttls.token_ttl_problems(
        ttl, min_ttl, name="kubeadm_join_token_ttl", min_ttl_name="kubeadm_join_token_min_ttl"
    )
    assert len(problems) == 1 and wanted in problems[0], problems
    with pytest.raises(TokenError):  # the rules kubeadm_token applies, from the same function
        parse_ttls(ttl, min_ttl)


def test_good_ttls() -> None:
    assert ttls.token_ttl_problems("15m", "10m") == []
    assert ttls.token_ttl_problems("0", "10m") == []  # never expires: min_ttl does not apply
    assert ttls.token_ttl_problems("1h30m") == []
    assert ttls.token_ttl_problems("1 hour", name="kubeadm_init_bootstrap_token_ttl") == [
        "kubeadm_init_bootstrap_token_ttl '1 hour' has an unknown unit ' hour': use h, m, s, ms, us or ns"
        ' (kubeadm_init_bootstrap_token_ttl must be a duration like "24h", "1h30m", "90s" or "0").'
    ]


def test_bundle_copy_items() -> None:
    files = [{"path": "images/a.tar", "sha256": "a" * 64}, {"path": "bin/kubeadm", "sha256": "b" * 64}]
    assert copies.bundle_copy_items(["images/a.tar"], files, "/srv/bundle", "/var/cache/kubelab") == [
        {
            "name": "bundle-images_a.tar",
            "src": "/srv/bundle/images/a.tar",
            "sha256": "a" * 64,
            "dest": "/var/cache/kubelab/images/a.tar",
            "record": False,
        }
    ]
    with pytest.raises(AnsibleFilterError, match=r"lists no sha256 for images/gone\.tar"):
        copies.bundle_copy_items(["images/gone.tar"], files, "/srv/bundle", "/tmp")
    assert copies.FilterModule().filters()["bundle_copy_items"] is copies.bundle_copy_items
