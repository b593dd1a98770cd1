# SPDX-License-Identifier: GPL-3.0-or-later
"""Images of the bundle: `docker build` of a generated FROM-scratch Dockerfile per image.

The build context is assembled from hard links to the work tree (cheap); Docker's layer
cache decides whether anything changed. An image whose ID is the one recorded for its
archive is not saved again, so its archive (and the bundle) stay as they are.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from buildlib import T_DOCKER, T_QUICK, BuildError, Outcome, fresh_dir, run
from components import HERE, PATH_ENV, Image

BUILDER_LABEL = "io.kubelab.build.builder=tests/lab/build"
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the legacy builder: no buildx on the build host
IPTABLES_NAMES = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore")
# minimal /etc for static binaries: root + nobody, files-then-dns name resolution
STATIC_ETC = {
    "passwd": "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "nsswitch.conf": "hosts: files dns\n",
}


def archive_name(ref: str) -> str:
    return "images/" + ref.replace("/", "_").replace(":", "_") + ".tar"


def ref_name(ref: str) -> str:  # registry.k8s.io/coredns/coredns:v1.14.2 -> coredns
    return ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Planned:
    image: Image
    ref: str


def plan(recipes: list[Image], lists: dict[str, list[str]]) -> list[Planned]:
    """Pair every reference of kubeadm's list and kube-flannel.yml with its recipe (and the fixed ones)."""
    by_name = {(i.group, i.name): i for i in recipes}
    planned = []
    for group, refs in lists.items():
        for ref in refs:
            if (group, ref_name(ref)) not in by_name:
                raise BuildError(f"no image recipe in components.py for {ref} (group {group})")
            planned.append(Planned(by_name[(group, ref_name(ref))], ref))
    planned += [Planned(i, i.ref) for i in recipes if i.ref]
    return planned


def link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not src.is_file():
        raise BuildError(f"{src} is missing (the step that makes it did not run?)")
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def context(image: Image, work: Path, ctx: Path) -> None:
    """ctx/Dockerfile and what it copies: rootfs/ (the image's files) and base.tar (Debian rootfs)."""
    root = fresh_dir(ctx) / "rootfs"
    root.mkdir()
    if image.base == "static":
        (root / "etc").mkdir()
        for name, text in STATIC_ETC.items():
            (root / "etc" / name).write_text(text, encoding="utf-8")
        (root / "tmp").mkdir()
        (root / "tmp").chmod(0o1777)
    for dest, src in image.files:
        link(work / src, root / dest.lstrip("/"))
    for d in image.dirs:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path, target in image.links:
        (root / path.lstrip("/")).symlink_to(target)
    if image.busybox:
        applets = image.busybox.split()
        if image.busybox == "all":
            applets = run([root / "bin/busybox", "--list"], capture=True, timeout=T_QUICK).split()
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
    if image.iptables_wrapper:
        sbin = root / "usr/sbin"
        sbin.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "iptables-wrapper", sbin / "iptables-wrapper")
        (sbin / "iptables-wrapper").chmod(0o755)
        for name in IPTABLES_NAMES:
            (sbin / name).symlink_to("iptables-wrapper")
    lines = ["FROM scratch"]
    if image.base == "rootfs":
        link(work / "rootfs/base.tar", ctx / "base.tar")
        lines.append("ADD base.tar /")
    lines += ["COPY rootfs/ /", PATH_ENV, *image.config]
    lines.append(f"LABEL io.kubelab.build.source={json.dumps(image.source)} {BUILDER_LABEL}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n", encoding="utf-8")


def image_id(ref: str) -> str:
    out = run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture=True, check=False, timeout=T_QUICK)
    return out.strip() if out.startswith("sha256:") else ""


def build_one(p: Planned, work: Path, force: bool, read_archive) -> tuple[bool, dict]:
    """docker build + (when the ID changed) docker save; returns (saved, manifest entry)."""
    archive = archive_name(p.ref)
    out, meta_path = work / archive, work / f"{archive}.json"
    ctx = work / "images" / "ctx" / p.image.name
    context(p.image, work, ctx)
    iid = ctx.with_name(f"{ctx.name}.iid")
    argv = ["docker", "build", "--rm", "--force-rm", "--iidfile", iid, "-t", p.ref, ctx]
    run(argv + (["--no-cache"] if force else []), env=DOCKER_ENV, timeout=T_DOCKER, what=f"docker build of {p.ref}")
    new_id = iid.read_text(encoding="utf-8").strip()
    old = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    if old.get("id") == new_id and old.get("group") == p.image.group and out.is_file():
        return False, old
    tmp = out.with_name(out.name + ".tmp")
    run(["docker", "save", "-o", tmp, p.ref], timeout=T_DOCKER, what=f"docker save of {p.ref}")
    tmp.chmod(0o644)
    tmp.rename(out)
    found = read_archive(str(out))
    if p.ref not in found["repo_tags"]:
        raise BuildError(f"{out}: holds {found['repo_tags']}, not {p.ref}")
    meta = {"ref": p.ref, "archive": archive, "id": new_id, "config_digest": found["config_digest"],
            "group": p.image.group}
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return True, meta


def build_all(planned: list[Planned], work: Path, force: bool, read_archive) -> tuple[Outcome, list[dict], list[str]]:
    (work / "images").mkdir(parents=True, exist_ok=True)
    metas, saved = [], []
    for p in planned:
        changed, meta = build_one(p, work, force, read_archive)
        metas.append(meta)
        if changed:
            saved.append(p.image.name)
    # earlier builds of these references, now untagged: only images this builder made (label)
    run(["docker", "image", "prune", "-f", "--filter", f"label={BUILDER_LABEL}", "--filter", "dangling=true"],
        timeout=T_DOCKER)
    note = f"{len(saved)} saved ({', '.join(saved)}), {len(planned) - len(saved)} unchanged"
    return Outcome("built" if saved else "cached", note), metas, saved
