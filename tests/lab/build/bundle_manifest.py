#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Manifest entry point of the lab bundle build (tests/lab/build/build.py).

It loads plugins/module_utils/_bundle.py by path -- the same writer and verifier that
playbooks/bundle.yml and the bundle_verify module use -- so both builders produce one format.

Sub-commands:
  image-meta ARCHIVE              print {"config_digest", "repo_tags"} of a `docker save` archive
  write --bundle DIR --meta FILE  write DIR/manifest.json and DIR/SHA256SUMS (docs/bundle.md);
                                  FILE: {kubernetes_version, architecture, builder,
                                  image_repository, versions, images: [{ref, archive, id,
                                  config_digest, group}]}
  verify --bundle DIR [--kubernetes-version V] [--no-checksum] [--kubeadm-images FILE]
         [--flannel-manifest FILE]
                                  the shared verification (sizes, sha256, SHA256SUMS) plus the
                                  lab's own checks: no unlisted file, every versions key set, each
                                  image archive holds its ref with the recorded config digest, the
                                  kubeadm group equals `kubeadm config images list -o json`, the
                                  pod_network group equals the image references of kube-flannel.yml
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO / "plugins" / "module_utils" / "_bundle.py"
VERSION_KEYS = ("kubernetes", "docker", "cri_dockerd", "cni_plugins", "crictl", "flannel", "flannel_cni_plugin")


def load_shared():
    spec = importlib.util.spec_from_file_location("kubelab_bundle", SHARED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bundle = load_shared()


def cmd_write(args) -> str:
    meta = json.loads(Path(args.meta).read_text(encoding="utf-8"))
    images = meta.pop("images")
    result = bundle.write_manifest(args.bundle, meta, images)
    manifest = result["manifest"]
    return f"{len(manifest['files'])} files, {len(manifest['images'])} images (writer: {SHARED.relative_to(REPO)})"


def lab_problems(args, manifest: dict) -> list[str]:
    problems = []
    root = Path(args.bundle)
    for rel in bundle.unlisted_files(args.bundle, manifest):
        problems.append(f"{rel}: in the bundle but not in manifest.json")
    for key in VERSION_KEYS:
        if not manifest["versions"].get(key):
            problems.append(f"manifest.json: versions.{key} is empty")
    for image in manifest["images"]:
        if image["archive"] != bundle.image_archive_path(image["ref"]):
            problems.append(f"{image['archive']}: should be named {bundle.image_archive_path(image['ref'])}")
        found = bundle.read_docker_archive(str(root / image["archive"]))
        if image["ref"] not in found["repo_tags"]:
            problems.append(f"{image['archive']}: holds {found['repo_tags']}, not {image['ref']}")
        if found["config_digest"] != image["config_digest"]:
            problems.append(f"{image['archive']}: config {found['config_digest']} != manifest {image['config_digest']}")
    if args.kubeadm_images:
        wanted = sorted(json.loads(Path(args.kubeadm_images).read_text(encoding="utf-8"))["images"])
        have = sorted(i["ref"] for i in manifest["images"] if i["group"] == "kubeadm")
        if wanted != have:
            problems.append(f"kubeadm images {have} != `kubeadm config images list` {wanted}")
    if args.flannel_manifest:
        text = Path(args.flannel_manifest).read_text(encoding="utf-8")
        wanted = sorted(set(re.findall(r"^\s*image:\s*(\S+)\s*$", text, re.M)))
        have = sorted(i["ref"] for i in manifest["images"] if i["group"] == "pod_network")
        if wanted != have:
            problems.append(f"pod network images {have} != kube-flannel.yml {wanted}")
    return problems


def cmd_verify(args) -> list[str]:
    try:
        result = bundle.verify_bundle(
            args.bundle, kubernetes_version=args.kubernetes_version, architecture="amd64", checksum=not args.no_checksum
        )
    except bundle.BundleError as exc:
        return [exc.headline, *exc.problems]
    return lab_problems(args, result["manifest"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_meta = sub.add_parser("image-meta")
    p_meta.add_argument("archive")
    p_write = sub.add_parser("write")
    p_write.add_argument("--bundle", required=True)
    p_write.add_argument("--meta", required=True)
    p_verify = sub.add_parser("verify")
    p_verify.add_argument("--bundle", required=True)
    p_verify.add_argument("--kubernetes-version")
    p_verify.add_argument("--no-checksum", action="store_true", help="sizes only (after `sha256sum -c SHA256SUMS`)")
    p_verify.add_argument("--kubeadm-images")
    p_verify.add_argument("--flannel-manifest")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "image-meta":
            print(json.dumps(bundle.read_docker_archive(args.archive)))
        elif args.cmd == "write":
            print(cmd_write(args))
        else:
            problems = cmd_verify(args)
            for problem in problems:
                print(f"bundle verify: {problem}", file=sys.stderr)
            if problems:
                return 1
            print(f"bundle verify: {args.bundle} OK")
    except (bundle.BundleError, OSError, KeyError, ValueError) as exc:
        print(f"bundle_manifest: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
