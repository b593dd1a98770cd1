# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kubeadm runner shared by the kubelab.kubeadm modules.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Finds the kubeadm binary and runs it through the shared CommandRunner (_command.py): argv lists,
never a shell, and a non-zero exit turned into a KubeadmError whose message says what failed, why
(from kubeadm's stderr) and how to fix it. Secrets (tokens, certificate keys) are redacted from
every command line and output put into an error. Also reads kubeconfigs, and the JSON objects
kubeadm prints with ``-o json``.
"""

from __future__ import annotations

import base64
import json
import os
import re

from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import (
    CommandRunner,
    ModuleError,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

# Options shared by the modules; the doc fragment kubelab.kubeadm.kubeadm documents them.
KUBECONFIG_SPEC = {"kubeconfig": {"type": "path", "default": "/etc/kubernetes/admin.conf"}}
KUBEADM_PATH_SPEC = {"kubeadm_path": {"type": "path"}}

KUBECONFIG_HINT = (
    "run the task on the control-plane node after `kubeadm init` (for a worker, delegate_to the"
    " control-plane host) with become: true, or point the kubeconfig option at an admin kubeconfig"
)

# The apiVersion prefix of what kubeadm prints with -o json (v1alpha1 ... v1alpha3).
OUTPUT_API_PREFIX = "output.kubeadm.k8s.io/"

# (stderr pattern, hint) pairs, first match wins.
_ERROR_HINTS = (
    (re.compile(r"failed to load (admin )?kubeconfig|unable to load kubeconfig|invalid configuration", re.I),
     "the kubeconfig could not be loaded: " + KUBECONFIG_HINT),
    (re.compile(r"connection refused|no route to host|i/o timeout|dial tcp|context deadline exceeded"
                r"|Unable to connect to the server|TLS handshake timeout", re.I),
     "the API server is not reachable: check that the control plane is up (kubelet and the"
     " kube-apiserver static pod running) and that the kubeconfig's server address is right"),
    (re.compile(r"x509:|certificate signed by unknown authority|tls: failed to verify", re.I),
     "TLS trust failed: the kubeconfig's certificate-authority does not match the API server's certificate"),
    (re.compile(r"Unauthorized|forbidden", re.I),
     "the API server refused the credentials: use an admin kubeconfig (/etc/kubernetes/admin.conf) on the"
     " control plane"),
    (re.compile(r"unknown (shorthand )?flag|unknown command", re.I),
     "this kubeadm does not know the command or flag: kubelab.kubeadm needs kubeadm >= 1.15"),
    (re.compile(r"permission denied", re.I),
     "permission denied: run the task with become: true"),
)


class KubeadmError(ModuleError):
    """A kubeadm, kubeconfig or certificate failure; details go into fail_json (cmd, rc, stderr...)."""


def check_readable_file(path, option, hint):
    """KubeadmError unless path is a readable regular file."""
    if not path:
        raise KubeadmError(f"{option} is empty: {hint}")
    if not os.path.exists(path):
        raise KubeadmError(f"{option} {path} does not exist: {hint}")
    if not os.path.isfile(path):
        raise KubeadmError(f"{option} {path} is not a regular file: {hint}")
    if not os.access(path, os.R_OK):
        raise KubeadmError(f"{option} {path} is not readable by this user: run the task with become: true")
    return path


def read_file(path, option, hint):
    check_readable_file(path, option, hint)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise KubeadmError(f"{option} {path} could not be read ({exc}): {hint}") from None


class KubeadmRunner(CommandRunner):
    """Runs kubeadm for a module.

    kubeadm_path: the binary to use (None = look up ``kubeadm`` in PATH and the usual dirs).
    kubeconfig: when set, ``--kubeconfig <path>`` is appended to the commands that talk to the
    cluster (``run(args, action)``; ``run(args, action, cluster=False)`` for those that do not).
    run() returns (rc, stdout, stderr) or raises KubeadmError on a non-zero exit.
    secrets: values to mask in any command line or output put into an error.
    """

    SEARCH_DIRS = ("/usr/local/bin", "/usr/bin", "/opt/bin")

    def __init__(self, module, kubeadm_path=None, kubeconfig=None):
        super().__init__(module, error=KubeadmError, hints=_ERROR_HINTS)
        self.kubeadm_path = kubeadm_path
        self.kubeconfig = kubeconfig

    @classmethod
    def for_module(cls, module):
        """The runner of a module with the kubeadm_path (and kubeconfig) options."""
        return cls(module, module.params.get("kubeadm_path"), module.params.get("kubeconfig"))

    def find_binary(self):
        if self.kubeadm_path:
            path = self.kubeadm_path
            if not os.path.exists(path):
                raise KubeadmError(
                    f"kubeadm_path {path} does not exist: install kubeadm there (kube_binaries role)"
                    " or fix kubeadm_path"
                )
            if os.path.isdir(path) or not os.access(path, os.X_OK):
                raise KubeadmError(
                    f"kubeadm_path {path} is not an executable file: fix kubeadm_path or its mode (0755)"
                )
            return path
        path = self.module.get_bin_path("kubeadm", required=False, opt_dirs=list(self.SEARCH_DIRS))
        if not path:
            raise KubeadmError(
                "kubeadm was not found in PATH nor in {}: install it (the kube_binaries role does) or set"
                " kubeadm_path to the binary".format(", ".join(self.SEARCH_DIRS))
            )
        return path

    def command(self, args, cluster=True):
        cmd = [self.binary, *args]
        if cluster and self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        return cmd


def iter_json_objects(text):
    """Yield the top-level JSON objects of kubeadm printer output.

    kubeadm prints one pretty JSON object per item, concatenated (not a list, not one per
    line). Every object starts with "{" at the beginning of a line; anything else between
    objects (a klog line that ended up on stdout, a "[dryrun]" note) is skipped line by line.
    """
    decoder = json.JSONDecoder()
    pos = 0
    size = len(text)
    while pos < size:
        if text[pos] in " \t\r\n":
            pos += 1
            continue
        if text[pos] == "{" and (pos == 0 or text[pos - 1] == "\n"):
            try:
                obj, end = decoder.raw_decode(text, pos)
            except ValueError:
                obj, end = None, pos
            if isinstance(obj, dict):
                yield obj
                pos = end
                continue
        newline = text.find("\n", pos)
        pos = size if newline == -1 else newline + 1


# ---------------------------------------------------------------------------------------------
# kubeconfig
# ---------------------------------------------------------------------------------------------


def _kubeconfig_via_kubectl(module, path):
    """The kubeconfig as a dict, converted to JSON by kubectl.

    Air-gapped nodes often have no PyYAML (python3-yaml) and cannot install it, while every
    control plane has kubectl. Its stdout holds the client key: it is parsed, never echoed.
    """
    kubectl = module.get_bin_path("kubectl", required=False, opt_dirs=list(KubeadmRunner.SEARCH_DIRS))
    if not kubectl:
        raise KubeadmError(
            "reading a kubeconfig needs PyYAML (python3-yaml) or kubectl on this host: install either"
        )
    _rc, out, _err = CommandRunner(module, kubectl, error=KubeadmError).run(
        ["config", "view", "--raw", "-o", "json", "--kubeconfig", path],
        action=f"reading the kubeconfig {path} with kubectl",
        hint=KUBECONFIG_HINT,
        echo_stdout=False,
    )
    try:
        return json.loads(out)
    except ValueError:
        raise KubeadmError(f"kubectl config view printed no JSON for {path}: {KUBECONFIG_HINT}") from None


def _load_kubeconfig(path, raw, module):
    if not HAS_YAML:
        if module is None:
            raise KubeadmError("PyYAML is needed to read the kubeconfig: install python3-yaml")
        return _kubeconfig_via_kubectl(module, path)
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KubeadmError(f"kubeconfig {path} is not valid YAML ({exc}): {KUBECONFIG_HINT}") from None


def read_kubeconfig(path, module=None):
    """The current cluster of a kubeconfig.

    Returns {name, server, ca_data (bytes or None), ca_file (path or None)}. A relative
    certificate-authority path is relative to the kubeconfig's directory, as in kubectl.
    Without PyYAML, ``module`` (an AnsibleModule) lets kubectl convert the file to JSON.
    """
    config = _load_kubeconfig(path, read_file(path, "kubeconfig", KUBECONFIG_HINT), module)
    if not isinstance(config, dict):
        raise KubeadmError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top): {KUBECONFIG_HINT}")
    current = config.get("current-context")
    contexts = _named(config, "contexts", path)
    clusters = _named(config, "clusters", path)
    if current:
        if current not in contexts:
            raise KubeadmError(
                f"kubeconfig {path}: current-context {current!r} is not among its contexts; fix the kubeconfig"
            )
        cluster_name = (contexts[current].get("context") or {}).get("cluster")
    elif len(clusters) == 1:
        cluster_name = next(iter(clusters))
    else:
        raise KubeadmError(f"kubeconfig {path} has no current-context: set one (kubectl config use-context)")
    if cluster_name not in clusters:
        raise KubeadmError(
            f"kubeconfig {path}: cluster {cluster_name!r} of the current context is not among its clusters;"
            " fix the kubeconfig"
        )
    cluster = clusters[cluster_name].get("cluster") or {}
    server = cluster.get("server")
    if not server:
        raise KubeadmError(f"kubeconfig {path}: cluster {cluster_name!r} has no server; fix the kubeconfig")
    ca_data = None
    if cluster.get("certificate-authority-data"):
        try:
            ca_data = base64.b64decode("".join(str(cluster["certificate-authority-data"]).split()), validate=True)
        except (TypeError, ValueError) as exc:
            raise KubeadmError(
                f"kubeconfig {path}: certificate-authority-data of cluster {cluster_name!r} is not base64 ({exc});"
                " fix the kubeconfig"
            ) from None
    ca_file = cluster.get("certificate-authority")
    if ca_file and not os.path.isabs(ca_file):
        ca_file = os.path.join(os.path.dirname(os.path.abspath(path)), ca_file)
    return {"name": cluster_name, "server": str(server), "ca_data": ca_data, "ca_file": ca_file}


def _named(config, key, path):
    entries = config.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("name") for e in entries):
        raise KubeadmError(f"kubeconfig {path}: {key} is not a list of named entries; fix the kubeconfig")
    return {e["name"]: e for e in entries}
