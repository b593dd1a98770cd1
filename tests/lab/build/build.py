# SPDX-License-Identifier: GPL-3.0-or-later
"""Build Kubernetes and everything a node needs from source (Go module proxy + Debian's apt
mirror, nothing else) into the offline bundle layout of docs/bundle.md:

  ${KUBELAB_CACHE:-/var/tmp/kubelab/cache}/<k8s version>/bundle

Every step prints one line with its wall time; its full output goes to
<cache>/<version>/logs/<step>.log. Go components are skipped when their content key matches
(Go's build cache does the rest), images are `docker build`s (Docker's layer cache decides),
Debian's parts keep a key of the package versions. A run that changes nothing verifies the
bundle and says "bundle up to date". Details and measured timings: docs/lab-build.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import bundle_manifest
import checks
import debian
import gobuild
import images
from buildlib import (
    T_QUICK,
    T_SUMS,
    BuildError,
    Outcome,
    StepFailed,
    Steps,
    StopAfter,
    key,
    lock,
    read_key,
    run,
    say,
    sha256,
)
from components import HERE, Versions, components
from components import images as image_recipes

REPO = HERE.parents[2]
TOOLS = ("go", "gcc", "readelf", "tar", "gzip", "sha256sum", "dpkg-deb", "apt-get", "apt-cache", "mmdebstrap",
         "docker", "unshare", "ip")
VERSION_RE = re.compile(r"^1\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?$")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="build.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", default=os.environ.get("KUBELAB_K8S_VERSION", "1.36.3"),
                   help="Kubernetes version without v (default 1.36.3, env KUBELAB_K8S_VERSION)")
    p.add_argument("--force", action="store_true", help="ignore every key and Docker's cache (not Go's)")
    p.add_argument("--smoke", action="store_true", help="also run the smoke tests when the bundle was up to date")
    p.add_argument("--verify-only", action="store_true", help="only verify an existing bundle")
    p.add_argument("--until", default="", metavar="STEP", help="stop after STEP (flannel-cni: no images, no bundle)")
    p.add_argument("--summary-json", type=Path, metavar="PATH",
                   help='write {"bundle_dir", "kubernetes_version", "cache_hit", "rebuilt", "seconds"} to PATH')
    args = p.parse_args(argv)
    args.version = args.version.removeprefix("v")
    if not VERSION_RE.match(args.version):
        p.error(f"'{args.version}' is not a Kubernetes version; use e.g. --version 1.36.3")
    return args


class Build:
    def __init__(self, args: argparse.Namespace) -> None:
        env = os.environ.get
        self.args = args
        self.cache = Path(env("KUBELAB_CACHE", "/var/tmp/kubelab/cache")) / args.version
        self.work, self.bundle, self.logs = self.cache / "work", self.cache / "bundle", self.cache / "logs"
        self.versions = Versions(
            args.version, env("KUBELAB_CRI_DOCKERD_VERSION", "0.4.3"), env("KUBELAB_CNI_PLUGINS_VERSION", "1.10.0"),
            env("KUBELAB_CRICTL_VERSION", "1.36.0"), env("KUBELAB_FLANNEL_VERSION", "0.28.10"),
            env("KUBELAB_FLANNEL_CNI_SOURCE_VERSION", "0.9.1"),
        )
        self.debian = debian.Debian(env("KUBELAB_DEBIAN_SUITE", "bookworm"),
                                    env("KUBELAB_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
                                    env("KUBELAB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security"))
        self.jobs = int(env("KUBELAB_BUILD_JOBS", "2"))
        for d in (self.work, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.steps = Steps(self.logs, self.cache / "timings.tsv", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                           args.version, args.until)
        self.go: gobuild.GoEnv | None = None
        self.lists: dict[str, list[str]] = {}
        self.metas: list[dict] = []
        self.saved: list[str] = []
        self.sums_checked = False

    def table(self):
        return {c.name: c for c in components(self.versions)}

    # ---------------------------------------------------------------- steps

    def preflight(self) -> Outcome:
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise BuildError(f"missing tools {missing}: apt-get install binutils mmdebstrap gcc libc6-dev iproute2 ...")
        self.go = gobuild.GoEnv.create(self.work, self.jobs, self.args.force)
        if run(["docker", "info"], check=False, capture=True, timeout=T_QUICK).find("Server Version") < 0:
            run(["bash", REPO / "tests/lab/host-docker.sh"], timeout=180, what="starting the host Docker Engine")
        server = run(["docker", "version", "--format", "{{.Server.Version}}"], capture=True, timeout=T_QUICK).strip()
        return Outcome("done", f"{self.go.version}, proxy {self.go.env['GOPROXY']}, docker {server}")

    def image_list(self) -> Outcome:
        k8s = f"v{self.versions.kubernetes}"
        kubeadm = self.work / "kubernetes/bin/kubeadm"
        out = run([kubeadm, "config", "images", "list", "-o", "json", "--kubernetes-version", k8s], capture=True,
                  merge=False, timeout=T_QUICK)
        (self.work / "kubeadm-images.json").write_text(out, encoding="utf-8")
        refs = json.loads(out)["images"]
        tags = {images.ref_name(r): r.rsplit(":", 1)[1] for r in refs}
        if not all(tags.get(n) for n in ("etcd", "coredns", "pause")):
            raise BuildError(f"kubeadm's image list lacks etcd/coredns/pause: {refs}")
        module = self.go.module("k8s.io/kubernetes", k8s)
        agnhost = module.dir / "test/images/agnhost/VERSION"
        if not agnhost.is_file():
            raise BuildError(f"k8s.io/kubernetes@{k8s} has no test/images/agnhost/VERSION")
        self.versions = dataclasses.replace(self.versions, etcd=tags["etcd"], coredns=tags["coredns"],
                                            pause=tags["pause"], agnhost=agnhost.read_text(encoding="utf-8").strip())
        self.lists["kubeadm"] = refs
        v = self.versions
        return Outcome("done", f"etcd {v.etcd}, coredns {v.coredns}, pause {v.pause}, agnhost {v.agnhost}")

    def flannel_yml(self) -> Outcome:
        """kube-flannel.yml of the flannel module, its cniVersion one the flannel CNI plugin supports
        (the plugins v0.9.1 one speaks up to 0.4.0; flannel v0.28 writes 1.0.0)."""
        src, dst = self.work / "flannel/bin/kube-flannel.upstream.yml", self.work / "flannel/kube-flannel.yml"
        text = src.read_text(encoding="utf-8")
        ref = f"ghcr.io/flannel-io/flannel:v{self.versions.flannel}"
        if not re.search(rf"^\s*image:\s*{re.escape(ref)}\s*$", text, re.M):
            raise BuildError(f"kube-flannel.yml of flannel v{self.versions.flannel} does not reference {ref}")
        answer = run([self.work / "flannel-cni/bin/flannel"], env={**os.environ, "CNI_COMMAND": "VERSION"},
                     capture=True, merge=False, timeout=T_QUICK)
        supported = json.loads(answer)["supportedVersions"]
        found = re.findall(r'^(\s*)"cniVersion": "([^"]+)",$', text, re.M)
        if len(found) != 1:
            raise BuildError(f"{src}: expected one cniVersion line, found {len(found)}")
        have = found[0][1]
        note = f"unchanged (cniVersion {have})"
        if have not in supported:
            best = max(supported, key=lambda s: tuple(int(x) for x in s.split(".")))
            text = text.replace(f'"cniVersion": "{have}",', f'"cniVersion": "{best}",')
            note = f"cniVersion {have} -> {best} (the flannel CNI plugin supports {', '.join(supported)})"
        if not dst.is_file() or dst.read_text(encoding="utf-8") != text:  # unchanged: keep its mtime
            dst.write_text(text, encoding="utf-8")
        self.lists["pod_network"] = sorted(set(re.findall(r"^\s*image:\s*(\S+)\s*$", text, re.M)))
        return Outcome("done", note)

    def build_images(self) -> Outcome:
        planned = images.plan(image_recipes(self.versions), self.lists)
        outcome, self.metas, self.saved = images.build_all(planned, self.work, self.args.force,
                                                           bundle_manifest.bundle.read_docker_archive)
        return outcome

    def bundle_files(self) -> dict[str, Path]:
        """Path in the bundle -> file of the work tree."""
        w, t = self.work, self.table()
        files = {f"bin/{b}": w / "kubernetes/bin" / b for b in ("kubeadm", "kubelet", "kubectl")}
        version = debian.docker_version(w / "docker")
        files[f"archives/docker-{version}.tgz"] = w / "docker" / f"docker-{version}.tgz"
        for c in t.values():
            if c.archive:
                files[f"archives/{c.archive.file}"] = w / c.name / c.archive.file
        files["manifests/kube-flannel.yml"] = w / "flannel/kube-flannel.yml"
        files.update({m["archive"]: w / m["archive"] for m in self.metas})
        return files

    def assemble(self) -> Outcome:
        v, w = self.versions, self.work
        cni_ref = next(r for r in self.lists["pod_network"] if images.ref_name(r) == "flannel-cni-plugin")
        meta = {
            "kubernetes_version": v.kubernetes, "architecture": "amd64", "builder": "tests/lab/build",
            "image_repository": "registry.k8s.io",
            "versions": {"kubernetes": v.kubernetes, "docker": debian.docker_version(w / "docker"),
                         "cri_dockerd": v.cri_dockerd, "cni_plugins": v.cni_plugins, "crictl": v.crictl,
                         "flannel": v.flannel, "flannel_cni_plugin": cni_ref.rsplit(":v", 1)[1]},
            "images": self.metas,
        }
        files = self.bundle_files()
        # the bundle is current when its meta and every source file (size, mtime: work files are
        # only rewritten when rebuilt) and the manifest code are those it was assembled from
        sources = {rel: (p.stat().st_size, p.stat().st_mtime_ns) for rel, p in files.items()}
        # the writer: this file, bundle_manifest.py and every module_utils file the shared writer loads
        utils = bundle_manifest.SHARED.parent
        shared = [*sorted(utils.glob("_bundle*.py")), utils / "_command.py"]
        writer = [sha256(p) for p in (HERE / "bundle_manifest.py", *shared, Path(__file__))]
        k = key(meta, sources, writer)
        current = read_key(self.cache / "bundle.key") == k and (self.bundle / "manifest.json").is_file()
        if current and not self.args.force:
            try:
                run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=self.bundle, timeout=T_SUMS)
            except BuildError:
                say(f"bundle at {self.bundle} fails sha256sum -c SHA256SUMS (see {self.logs / 'bundle.log'}): "
                    "assembling it again")
            else:
                self.sums_checked = True
                return Outcome("cached", f"{len(files)} files + manifest.json, SHA256SUMS")
        (self.cache / "bundle.key").unlink(missing_ok=True)
        new, old = self.cache / "bundle.new", self.cache / "bundle.old"
        for d in (new, old):
            shutil.rmtree(d, ignore_errors=True)
        for rel, src in files.items():  # copies, not links: a test that damages the bundle leaves work/ intact
            (new / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, new / rel)
        (w / "bundle-meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        note = bundle_manifest.cmd_write(argparse.Namespace(bundle=str(new), meta=str(w / "bundle-meta.json")))
        if self.bundle.exists():
            self.bundle.rename(old)
        new.rename(self.bundle)
        shutil.rmtree(old, ignore_errors=True)
        (self.cache / "bundle.key").write_text(k, encoding="utf-8")
        return Outcome("built", note)

    # ---------------------------------------------------------------- the run

    def run(self) -> None:
        s, table = self.steps, self.table()
        kubernetes = table["kubernetes"]
        names = ["preflight", "kubernetes", "image-list", *list(table)[1:], "flannel-yml", "docker", "rootfs", "images",
                 "bundle", "verify"]
        if self.args.until and self.args.until not in [*names, "smoke"]:
            raise BuildError(f"--until {self.args.until}: no such step; the steps: {', '.join(names)}, smoke")
        if self.args.verify_only:
            if not (self.bundle / "manifest.json").is_file():
                raise BuildError(f"no bundle at {self.bundle}; run without --verify-only first")
        else:
            s.run("preflight", self.preflight)
            s.run("kubernetes", lambda: gobuild.build(kubernetes, self.go))
            s.run("image-list", self.image_list)
            for c in list(self.table().values())[1:]:
                s.run(c.name, lambda c=c: gobuild.build(c, self.go))
            s.run("flannel-yml", self.flannel_yml)
            s.run("docker", lambda: debian.build_docker(self.work, self.args.force, self.debian.suite))
            s.run("rootfs", lambda: debian.build_rootfs(self.work, self.args.force, self.debian))
            s.run("images", self.build_images)
            s.run("bundle", self.assemble)
        s.run("verify", lambda: checks.verify(self.bundle, self.work, self.versions.kubernetes, self.sums_checked,
                                              kubernetes))
        if "bundle" in s.built or self.args.smoke:
            s.run("smoke", lambda: checks.smoke(self.bundle, self.work, list(self.table().values())))

    def rebuilt(self) -> list[str]:
        """The built steps in order, the images step as the images it saved (image:<name>)."""
        names = []
        for name in self.steps.built:
            names += [f"image:{n}" for n in self.saved] if name == "images" else [name]
        return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.umask(0o022)  # the modes of the image contexts and the bundle do not depend on the caller
    b = Build(args)
    start, error = time.monotonic(), ""
    say(f"kubelab bundle build: Kubernetes v{args.version} -> {b.bundle}")
    try:
        with lock(b.cache / ".lock"):
            b.run()
    except StopAfter as stop:
        say(f"stopped after step '{stop}' (--until)")
    except StepFailed as failed:
        failed.report()
        error = f"step '{failed.step}': {failed.message} (log: {failed.log})"
    except BuildError as exc:
        say(f"FAILED: {exc}", err=True)
        error = str(exc)
    took = round(time.monotonic() - start)
    hit = not error and not b.steps.built
    if not error and ("verify" in b.steps.seconds):
        size = sum(p.stat().st_size for p in b.bundle.rglob("*") if p.is_file()) >> 20
        what = "bundle verified" if args.verify_only else "bundle up to date" if hit else "bundle ready"
        say(f"{what}: {b.bundle} ({size} MB) in {took}s")
    if args.summary_json:
        summary = {"bundle_dir": str(b.bundle), "kubernetes_version": args.version, "cache_hit": hit,
                   "rebuilt": b.rebuilt(), "seconds": b.steps.seconds}
        if error:
            summary["error"] = error
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
