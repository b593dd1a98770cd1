# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks of a built bundle: `verify` (every run) and `smoke` (after each assembly, or --smoke).

verify: sha256sum -c SHA256SUMS, the shared verifier (plugins/module_utils/_bundle.py via
bundle_manifest.py) plus the lab's own checks, the Kubernetes binaries' versions.
smoke: every binary of the bundle answers, every image runs its entrypoint on the host Docker,
the pod network chain works in a throw-away network namespace (cni_chain.py).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import bundle_manifest
from buildlib import T_DOCKER, T_QUICK, T_SUMS, BuildError, Outcome, expect, run
from components import HERE, Component
from gobuild import run_checks
from images import DOCKER_ENV, image_id, ref_name

CAPS = ("--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW")


def verify(bundle: Path, work: Path, version: str, sums_checked: bool, kubernetes: Component) -> Outcome:
    if not sums_checked:
        run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=bundle, timeout=T_SUMS, what="sha256sum -c SHA256SUMS")
    run_checks(kubernetes.checks, bundle / "bin", "bundle")
    listed = run([bundle / "bin/kubeadm", "config", "images", "list", "-o", "json", "--kubernetes-version",
                  f"v{version}"], capture=True, merge=False, timeout=T_QUICK)
    images = work / "verify-kubeadm-images.json"
    images.write_text(listed, encoding="utf-8")
    args = argparse.Namespace(bundle=str(bundle), kubernetes_version=version, no_checksum=True,
                              kubeadm_images=str(images), flannel_manifest=str(bundle / "manifests/kube-flannel.yml"))
    problems = bundle_manifest.cmd_verify(args)
    if problems:
        raise BuildError("bundle verify: " + "; ".join(problems))
    files = len((bundle / "SHA256SUMS").read_text(encoding="utf-8").splitlines())
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) >> 20
    return Outcome("done", f"sha256 of {files} files, kubeadm/kubelet v{version}, image list = kubeadm's, {size} MB")


def flannel_net(yml: Path, t: Path) -> dict:
    """The CNI config of kube-flannel.yml's cni-conf.json, state files under t (not /var/lib/cni)."""
    lines = yml.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "cni-conf.json: |")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    body = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line[indent:])
    conflist = json.loads("\n".join(body))
    return dict(conflist["plugins"][0], name=conflist["name"], cniVersion=conflist["cniVersion"],
                subnetFile=f"{t}/subnet.env", dataDir=f"{t}/cni-data",
                ipam={"type": "host-local", "dataDir": f"{t}/ipam-data"})


class Smoke:
    def __init__(self, bundle: Path, work: Path, table: list[Component]) -> None:
        self.bundle, self.work, self.table = bundle, work, {c.name: c for c in table}
        self.manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        self.refs = {ref_name(i["ref"]): i["ref"] for i in self.manifest["images"]}
        self.containers: list[str] = []
        self.t = Path(tempfile.mkdtemp(prefix="smoke.", dir=work))

    def ref(self, name: str) -> str:
        return self.refs[name]

    def tag(self, name: str) -> str:
        return self.refs[name].rsplit(":", 1)[1]

    def unpack(self, archive: str, into: str) -> Path:
        d = self.t / into
        d.mkdir(parents=True, exist_ok=True)
        run(["tar", "-C", d, "-xzf", self.bundle / "archives" / archive], timeout=T_QUICK)
        return d

    def archives(self) -> None:
        """The binaries of every archive answer: Docker Engine's, and each component's own checks."""
        v = self.manifest["versions"]
        engine = self.unpack(f"docker-{v['docker']}.tgz", "docker-engine") / "docker"
        for name, pattern, args in (
            ("docker", f"Docker version {v['docker']}", ["--version"]),
            ("dockerd", f"Docker version {v['docker']}", ["--version"]),
            ("containerd", "containerd ", ["--version"]), ("containerd-shim-runc-v2", "shim|containerd", ["-v"]),
            ("ctr", "ctr ", ["--version"]), ("runc", "runc version", ["--version"]),
            ("docker-init", "tini version", ["--version"]), ("docker-proxy", "Usage|usage|proxy", ["--help"]),
        ):
            expect(name, pattern, [engine / name, *args])
        for c in self.table.values():
            if c.archive:
                d = self.unpack(c.archive.file, c.name)
                run_checks(c.checks, d / c.archive.subdir, f"bundle {c.archive.file}:")
        cni = self.t / "cni-plugins"
        env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}
        for name in ("bridge", "host-local", "loopback", "portmap"):
            expect(f"cni {name}", "supportedVersions", [cni / name], env=env)
        expect("cni bridge version", f"v{v['cni_plugins']}", [cni / "bridge", "--version"])

    def load(self) -> None:
        for image in self.manifest["images"]:
            if image_id(image["ref"]) != image["id"]:
                run(["docker", "load", "-i", self.bundle / image["archive"]], timeout=T_DOCKER)

    def docker_run(self, what: str, pattern: str, ref: str, *args: str, entrypoint: str = "", caps: bool = False):
        argv = ["docker", "run", "--rm", *(CAPS if caps else ()), *(["--entrypoint", entrypoint] if entrypoint else ())]
        return expect(what, pattern, [*argv, ref, *args], env=DOCKER_ENV, timeout=T_DOCKER)

    def images(self) -> None:
        k8s = f"v{self.manifest['kubernetes_version']}"
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
            self.docker_run(f"image {name}", f"Kubernetes {k8s}", self.ref(name), "--version")
        proxy, etcd = self.ref("kube-proxy"), self.tag("etcd").rsplit("-", 1)[0]
        iptables = r"iptables v1\.8.*\((nf_tables|legacy)\)"
        self.docker_run("kube-proxy iptables (wrapper)", iptables, proxy, "--version", entrypoint="iptables", caps=True)
        self.docker_run("kube-proxy iptables -t nat -L", "Chain PREROUTING", proxy, "-t", "nat", "-L", "-n",
                        entrypoint="iptables", caps=True)
        self.docker_run("kube-proxy nft", "nftables v1", proxy, "--version", entrypoint="nft")
        self.docker_run("kube-proxy conntrack", "conntrack v1", proxy, "--version", entrypoint="conntrack")
        self.docker_run("image etcd", f"etcd Version: {etcd}", self.ref("etcd"), "etcd", "--version")
        self.docker_run("image etcdctl", f"etcdctl version: {etcd}", self.ref("etcd"), "etcdctl", "version")
        self.docker_run("image coredns", f"CoreDNS-{self.tag('coredns')[1:]}", self.ref("coredns"), "-version")
        flannel = self.ref("flannel")
        self.docker_run("image flannel", f"v{self.manifest['versions']['flannel']}", flannel, "--version")
        self.docker_run("flannel iptables (wrapper)", r"iptables v1\.8", flannel, "--version", entrypoint="iptables",
                        caps=True)
        conf = self.t / "cni-conf.json"
        conf.write_text('{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel"}]}\n', encoding="utf-8")
        run(["docker", "run", "--rm", "-v", f"{self.t}:/x", "--entrypoint", "/opt/bin/install-conf", flannel,
             "/x/cni-conf.json", "/x/10-flannel.conflist"], env=DOCKER_ENV, timeout=T_DOCKER)
        if not filecmp.cmp(conf, self.t / "10-flannel.conflist", shallow=False):
            raise BuildError("flannel install-conf did not copy the CNI config")
        self.pause()
        self.agnhost()

    def pause(self) -> None:
        """pause: starts, keeps running, exits 0 on SIGTERM (docker stop) well before the 10 s kill."""
        cid = self.start(["docker", "run", "-d", self.ref("pause")])
        time.sleep(2)
        state = run(["docker", "inspect", "-f", "{{.State.Running}}", cid], capture=True, timeout=T_QUICK).strip()
        if state != "true":
            run(["docker", "logs", cid], check=False, timeout=T_QUICK)
            raise BuildError("pause did not keep running")
        started = time.monotonic()
        run(["docker", "stop", "-t", "10", cid], timeout=T_QUICK)
        took = time.monotonic() - started
        rc = run(["docker", "inspect", "-f", "{{.State.ExitCode}}", cid], capture=True, timeout=T_QUICK).strip()
        if rc != "0" or took >= 5:
            raise BuildError(f"pause: exit code {rc} after {took:.1f} s on SIGTERM (want 0, at once)")

    def agnhost(self) -> None:
        """netexec answers /hostname; the busybox tools the lab's checks use are there."""
        ref = self.ref("agnhost")
        self.docker_run("image agnhost", "netexec", ref, "--help")
        cid = self.start(["docker", "run", "-d", "--network", "none", "--hostname", "agnhost-smoke", ref, "netexec",
                          "--http-port=8080"])
        out = ""
        for _attempt in range(50):
            out = run(["docker", "exec", cid, "wget", "-qO-", "http://127.0.0.1:8080/hostname"], capture=True,
                      check=False, merge=False, timeout=T_QUICK)
            if out.strip() == "agnhost-smoke":
                break
            time.sleep(0.2)
        if out.strip() != "agnhost-smoke":
            raise BuildError(f"agnhost netexec: /hostname answered '{out.strip()}', not agnhost-smoke")
        self.docker_run("image agnhost tar (kubectl cp)", "tar", ref, "--help", entrypoint="tar")
        self.docker_run("image agnhost sh", "^ok$", ref, "-c", "echo ok", entrypoint="sh")

    def cni_chain(self) -> None:
        """The flannel-cni-plugin image's `cp -f /flannel` yields a plugin that runs the pod network chain."""
        opt = self.t / "opt-cni-bin"
        opt.mkdir()
        run(["docker", "run", "--rm", "-v", f"{opt}:/opt/cni/bin", self.ref("flannel-cni-plugin"), "cp", "-f",
             "/flannel", "/opt/cni/bin/flannel"], env=DOCKER_ENV, timeout=T_DOCKER)
        expect("image flannel-cni-plugin (cp -f /flannel)", "supportedVersions", [opt / "flannel"],
               env={"CNI_COMMAND": "VERSION"})
        net = flannel_net(self.bundle / "manifests/kube-flannel.yml", self.t)
        (self.t / "flannel-net.json").write_text(json.dumps(net), encoding="utf-8")
        (self.t / "subnet.env").write_text(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
            encoding="utf-8",
        )
        cni = self.t / "cni"
        shutil.copytree(self.t / "cni-plugins", cni)
        shutil.copy2(opt / "flannel", cni / "flannel")
        expect(f"CNI chain (flannel cniVersion {net['cniVersion']} -> bridge + host-local)", "^ok  CNI chain",
               ["unshare", "--net", "--mount", "--propagation", "private", sys.executable, HERE / "cni_chain.py",
                self.t, self.work / "docker/root/bin/busybox"], timeout=T_QUICK)

    def start(self, argv: list[str]) -> str:
        cid = run(argv, capture=True, merge=False, env=DOCKER_ENV, timeout=T_DOCKER).strip()
        self.containers.append(cid)
        return cid

    def cleanup(self) -> None:
        for cid in self.containers:  # only the containers this smoke test started
            run(["docker", "rm", "-f", cid], check=False, timeout=T_QUICK)
        shutil.rmtree(self.t, ignore_errors=True)


def smoke(bundle: Path, work: Path, table: list[Component]) -> Outcome:
    s = Smoke(bundle, work, table)
    try:
        run_checks(s.table["kubernetes"].checks, bundle / "bin", "bundle")
        s.archives()
        s.load()
        s.images()
        s.cni_chain()
    finally:
        s.cleanup()
    return Outcome("passed", "binaries answer; images run their entrypoints on the host Docker; CNI chain")
