# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which kubeadm cluster a node already belongs to, read from its files (the logic of kubeadm_cluster_info).

PRIVATE to the kubelab.kubeadm collection: not a public API.

A node that joined a cluster has the kubelet's kubeconfig (/etc/kubernetes/kubelet.conf): its
server and certificate authority name the cluster. An initialised control plane also has
admin.conf, pki/ca.crt and the static pod manifests kubeadm rendered from its ClusterConfiguration
(kubeadm keeps that document only in the kubeadm-config ConfigMap; the manifests hold the same
values as flags, and reading them needs no API server). Nothing is changed and nothing secret
is returned: the kubeconfigs' client keys are parsed and dropped, CAs are reported as kubeadm's
public-key pins (``sha256:<hex>``, the --discovery-token-ca-cert-hash format).
"""

from __future__ import annotations

import os
import re

from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import KubeadmError, read_file, read_kubeconfig
from ansible_collections.kubelab.kubeadm.plugins.module_utils._pki import PkiError, api_server_endpoint, ca_pins

_FLAG_RE = re.compile(r"^\s*-\s*[\"']?--(?P<name>[a-z0-9-]+)=(?P<value>.*?)[\"']?\s*$", re.M)
_IMAGE_RE = re.compile(r"^\s*image:\s*[\"']?(?P<image>[^\s\"']+)", re.M)
_RESET_HINT = (
    "if the node should leave that cluster, wipe it with playbooks/reset.yml -e reset_confirm=yes --limit <node>;"
    " otherwise fix or restore the file"
)


def _endpoint(server):
    """host:port of a server URL, or the URL itself when it is no https URL (it still names the cluster)."""
    try:
        return api_server_endpoint(server)
    except KubeadmError:
        return server


def kubeconfig_identity(path, module=None):
    """{path, cluster_name, server, endpoint, ca_cert_hashes} of a kubeconfig's current cluster."""
    try:
        config = read_kubeconfig(path, module)
        if config["ca_data"]:
            pins = ca_pins(config["ca_data"], f"certificate-authority-data of {path}")
        elif config["ca_file"]:
            source = "{} (certificate-authority of {})".format(config["ca_file"], path)
            pins = ca_pins(read_file(config["ca_file"], "the certificate-authority of", _RESET_HINT), source)
        else:
            pins = []
    except KubeadmError as exc:
        raise KubeadmError(
            f"cannot tell which cluster this node belongs to: {exc.msg}. {path} exists, so the node was part of a"
            f" cluster; {_RESET_HINT}"
        ) from None
    return {
        "path": path,
        "cluster_name": config["name"],
        "server": config["server"],
        "endpoint": _endpoint(config["server"]),
        "ca_cert_hashes": pins,
    }


def manifest_flags(path):
    """{flag: value} of a static pod manifest's command (kubeadm writes one `- --flag=value` a line)."""
    text = read_file(path, "the static pod manifest", _RESET_HINT).decode("utf-8", "replace")
    flags = {match.group("name"): match.group("value") for match in _FLAG_RE.finditer(text)}
    image = _IMAGE_RE.search(text)
    return flags, image.group("image") if image else None


def _version_of(image):
    if image and ":" in image.rsplit("/", 1)[-1]:
        return image.rsplit(":", 1)[1]
    return None


def cluster_configuration(admin, manifests_dir):
    """The ClusterConfiguration fields the static pod manifests and admin.conf show (None where unknown)."""
    apiserver = os.path.join(manifests_dir, "kube-apiserver.yaml")
    controller = os.path.join(manifests_dir, "kube-controller-manager.yaml")
    api_flags, api_image = manifest_flags(apiserver) if os.path.exists(apiserver) else ({}, None)
    cm_flags = manifest_flags(controller)[0] if os.path.exists(controller) else {}
    return {
        "clusterName": cm_flags.get("cluster-name") or (admin or {}).get("cluster_name"),
        "controlPlaneEndpoint": (admin or {}).get("endpoint"),
        "kubernetesVersion": _version_of(api_image),
        "networking": {
            "podSubnet": cm_flags.get("cluster-cidr"),
            "serviceSubnet": api_flags.get("service-cluster-ip-range"),
        },
        "advertiseAddress": api_flags.get("advertise-address"),
        "bindPort": int(api_flags["secure-port"]) if api_flags.get("secure-port", "").isdigit() else None,
    }


def cluster_info(params, module=None):
    """kubeadm_cluster_info: the whole run. Returns the result dict; raises KubeadmError."""
    kubelet_path = params["kubelet_kubeconfig"]
    admin_path = params["admin_kubeconfig"]
    ca_path = params["ca_cert_path"]
    manifests_dir = params["manifests_dir"]
    apiserver = os.path.join(manifests_dir, "kube-apiserver.yaml")

    kubelet = kubeconfig_identity(kubelet_path, module) if os.path.exists(kubelet_path) else None
    initialised = os.path.exists(admin_path) and os.path.exists(apiserver)
    control_plane = {"initialised": initialised, "admin": None, "ca_cert_hashes": [], "cluster_configuration": None}
    if initialised:
        admin = kubeconfig_identity(admin_path, module)
        try:
            pins = []
            if os.path.exists(ca_path):
                pins = ca_pins(read_file(ca_path, "the cluster CA", _RESET_HINT), ca_path)
        except PkiError as exc:
            raise KubeadmError(f"cannot tell which cluster this control plane runs: {exc.msg}") from None
        control_plane.update(
            admin=admin,
            ca_cert_hashes=pins or admin["ca_cert_hashes"],
            cluster_configuration=cluster_configuration(admin, manifests_dir),
        )
    return {
        "changed": False,
        "member": kubelet is not None,
        "kubelet": kubelet,
        "control_plane": control_plane,
    }


def _pins(values):
    return ", ".join(values) if values else "no CA"


def _reset_fix(host):
    return (
        f"If {host} should leave that cluster, wipe it with `ansible-playbook playbooks/reset.yml -e reset_confirm=yes"
        f" --limit {host}` (kubeadm reset; its workloads there stop); otherwise take {host} out of this inventory."
    )


def membership_problems(infos, control_plane, workers, expected):
    """What keeps these nodes from being one cluster, as messages naming the node, the values and the fix.

    infos: {host: kubeadm_cluster_info result} (the control plane's among them); workers: the worker hosts to
    judge; expected: {endpoint, pod_subnet, service_subnet} of the inventory. An empty list means: every node
    is either fresh or already a member of the control plane's cluster, which is the inventory's.
    """
    problems = []
    cp_info = infos[control_plane]
    cp = cp_info["control_plane"]
    if cp["initialised"]:
        config = cp["cluster_configuration"] or {}
        networking = config.get("networking") or {}
        found = {
            "endpoint": ("controlPlaneEndpoint (admin.conf's server)", config.get("controlPlaneEndpoint"),
                         "cluster_control_plane_endpoint"),
            "pod_subnet": ("networking.podSubnet (kube-controller-manager --cluster-cidr)",
                           networking.get("podSubnet"), "cluster_pod_subnet"),
            "service_subnet": ("networking.serviceSubnet (kube-apiserver --service-cluster-ip-range)",
                               networking.get("serviceSubnet"), "cluster_service_subnet"),
        }
        differing = [(what, value, variable, expected[key]) for key, (what, value, variable) in found.items()
                     if value is not None and str(value) != str(expected[key])]
        if differing:
            problems.append(
                "The control plane {cp} already runs a cluster ({name}, Kubernetes {version}, CA {ca}) that is not"
                " the one this inventory describes: {diffs}. Nothing has been changed. If that cluster is the one you"
                " mean, set {variables} to the values it runs with; if {cp} is to get a new cluster, wipe it first with"
                " `ansible-playbook playbooks/reset.yml -e reset_confirm=yes --limit {cp}` (and reset or re-join"
                " its workers).".format(
                    cp=control_plane,
                    name=config.get("clusterName") or "kubernetes",
                    version=config.get("kubernetesVersion") or "unknown",
                    ca=_pins(cp["ca_cert_hashes"]),
                    diffs="; ".join(f"its {what} is {value}, the inventory's ({variable}) {want}"
                                    for what, value, variable, want in differing),
                    variables=", ".join(variable for _w, _v, variable, _e in differing),
                )
            )
    elif cp_info["kubelet"]:
        kubelet = cp_info["kubelet"]
        problems.append(
            f"The control plane {control_plane} is not initialised but its {kubelet['path']} names the cluster at"
            f" {kubelet['endpoint']} (CA {_pins(kubelet['ca_cert_hashes'])}): it is a node of another cluster."
            f" Nothing has been changed. " + _reset_fix(control_plane)
        )

    for host in workers:
        kubelet = infos[host]["kubelet"]
        if not kubelet:
            continue
        if not cp["initialised"]:
            problems.append(
                f"{host} is a node of the cluster at {kubelet['endpoint']} (CA {_pins(kubelet['ca_cert_hashes'])},"
                f" from its {kubelet['path']}), but the control plane {control_plane} has no cluster yet, so {host}"
                f" belongs to another cluster. Nothing has been changed. " + _reset_fix(host)
            )
            continue
        ours = cp["admin"]["endpoint"] if cp["admin"] else expected["endpoint"]
        same_ca = bool(set(kubelet["ca_cert_hashes"]) & set(cp["ca_cert_hashes"]))
        same_server = kubelet["endpoint"] == ours
        if same_server and same_ca:
            continue
        differs = "server and CA differ" if not (same_server or same_ca) else (
            "the server differs" if not same_server else "the CA differs")
        problems.append(
            f"{host} belongs to another cluster ({differs}): its {kubelet['path']} names server {kubelet['endpoint']}"
            f" with CA {_pins(kubelet['ca_cert_hashes'])}, but this inventory's control plane {control_plane}"
            f" serves {ours} with CA {_pins(cp['ca_cert_hashes'])}. Nothing has been changed. " + _reset_fix(host)
        )
    return problems
