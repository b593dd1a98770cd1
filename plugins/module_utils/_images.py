# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The images kubeadm needs (the logic of kubeadm_images_info).

PRIVATE to the kubelab.kubeadm collection: not a public API.

``kubeadm config images list -o json`` prints one pretty JSON object of kind ``Images``
(apiVersion output.kubeadm.k8s.io/v1alpha1 up to 1.22, v1alpha2 up to 1.29, v1alpha3 since).
"""

from __future__ import annotations

import re

from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import (
    OUTPUT_API_PREFIX,
    KubeadmError,
    check_readable_file,
    iter_json_objects,
)

_VERSION_RE = re.compile(r"\Av?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\Z")
_REPOSITORY_RE = re.compile(r"\A[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*\Z")


class ImagesError(KubeadmError):
    """Bad images_info input or unparseable kubeadm output."""


def normalize_version(version):
    """'1.36.3' or 'v1.36.3' -> 'v1.36.3'; ImagesError for labels and malformed versions."""
    text = (version or "").strip()
    if not _VERSION_RE.match(text):
        raise ImagesError(
            f"kubernetes_version {version!r} is not an exact version: give it as 1.36.3 or v1.36.3 (labels such as"
            " stable or latest need the internet, which kubeadm must not depend on here)"
        )
    return text if text.startswith("v") else "v" + text


def check_repository(repository):
    if not _REPOSITORY_RE.match(repository or ""):
        raise ImagesError(
            f"image_repository {repository!r} is not a registry path: use host[:port][/path] in lower case without a"
            " scheme or tag, e.g. registry.k8s.io or registry.example.lan:5000/k8s"
        )
    return repository


def component_of(ref):
    """Image name without registry path, tag or digest: 'registry.k8s.io/coredns/coredns:v1.11.3' -> 'coredns'."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def parse_images(text):
    """The image list of ``kubeadm config images list -o json`` output."""
    for obj in iter_json_objects(text):
        api_version = obj.get("apiVersion") or ""
        if obj.get("kind") == "Images" and api_version.startswith(OUTPUT_API_PREFIX):
            images = obj.get("images")
            if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
                raise ImagesError(
                    "unexpected `kubeadm config images list -o json` output: images is not a list of image references"
                )
            return list(images)
    raise ImagesError(
        f"unexpected `kubeadm config images list -o json` output: no object of kind Images ({OUTPUT_API_PREFIX}*) in it"
    )


def by_component(images):
    """{component: ref} for every image ('kube-apiserver', ..., 'coredns', 'pause', 'etcd')."""
    return {component_of(ref): ref for ref in images}


def images_info(runner, params):
    """kubeadm_images_info: the whole run. Returns the result dict; raises KubeadmError."""
    args = ["config", "images", "list", "-o", "json"]
    config_path = params.get("config_path")
    if config_path:
        check_readable_file(config_path, "config_path", "give the path of a kubeadm configuration file on the target")
        args += ["--config", config_path]
        version = None
    else:
        if not params.get("kubernetes_version"):
            raise ImagesError("kubernetes_version or config_path is required: give the exact version (e.g. 1.36.3)")
        version = normalize_version(params["kubernetes_version"])
        args += ["--kubernetes-version", version]
        if params.get("image_repository"):
            args += ["--image-repository", check_repository(params["image_repository"])]
    _rc, out, _err = runner.run(args, action="listing the images kubeadm needs", cluster=False)
    try:
        images = parse_images(out)
    except ImagesError as exc:
        raise ImagesError(exc.msg, cmd=runner.last_cmd, stdout=out) from None
    return {
        "changed": False,
        "images": images,
        "by_component": by_component(images),
        "kubernetes_version": version,
    }
