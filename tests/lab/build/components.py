# SPDX-License-Identifier: GPL-3.0-or-later
"""THE table of what the lab bundle is built from: one entry per component.

Each entry says which Go module at which version, how its wrapper module is made, the
`go build`s (packages, ldflags, flags), the binaries they make, how their version is
checked, what goes into the bundle's archives and which images are made of them.
gobuild.py builds every entry the same way; images.py builds every image the same way.
Details and the reasons behind the odd entries: docs/lab-build.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
K8S_COMMANDS = (
    "kubeadm", "kubelet", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
)


@dataclass(frozen=True)
class Versions:
    """Every version the build uses; etcd, coredns, pause come from the built kubeadm's image list,
    agnhost from test/images/agnhost/VERSION of the k8s.io/kubernetes module."""

    kubernetes: str  # 1.36.3
    cri_dockerd: str = "0.4.3"
    cni_plugins: str = "1.10.0"
    crictl: str = "1.36.0"
    flannel: str = "0.28.10"
    flannel_cni_source: str = "0.9.1"
    etcd: str = ""  # image tag, 3.6.8-0
    coredns: str = ""  # image tag, v1.14.2
    pause: str = ""  # image tag, 3.10.2
    agnhost: str = ""  # image tag, 2.63.0

    @property
    def etcd_module(self) -> str:  # image tag 3.6.8-0 -> module version v3.6.8
        return "v" + self.etcd.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Module:
    """What the module proxy says about module@version (go mod download -json + its .info)."""

    path: str
    version: str
    dir: Path | None = None
    gomod: Path | None = None
    commit: str = ""  # Origin.Hash, when the proxy recorded it
    time: str = ""


@dataclass(frozen=True)
class Go:
    """One `go build` into the component's bin/: packages (or a function of the module giving
    them), ldflags as a function of the module, output name when it is not the package's."""

    packages: tuple[str, ...] | Callable[[Module], tuple[str, ...]]
    ldflags: Callable[[Module], str]
    output: str = ""
    flags: tuple[str, ...] = ()
    cgo: bool = False


@dataclass(frozen=True)
class Check:
    """argv[0] is a binary of the component; its output (stdout + stderr) must match pattern."""

    argv: tuple[str, ...]
    pattern: str
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Archive:
    """A bundle archive of the component's binaries: in subdir/, or at the top (dot: as ./name)."""

    file: str
    subdir: str = ""
    dot: bool = False


@dataclass(frozen=True)
class Image:
    """An image `docker build` makes FROM scratch. ref "" = the reference of this name in the
    group's list (kubeadm's image list, kube-flannel.yml). files: (path in the image, file below
    work/). base: "static" adds /etc/{passwd,group,nsswitch.conf} and /tmp, "rootfs" the Debian
    rootfs, "" nothing. busybox: "all" or the applets to link in /bin."""

    name: str
    group: str
    files: tuple[tuple[str, str], ...]
    config: tuple[str, ...]
    source: str
    ref: str = ""
    base: str = "static"
    dirs: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    busybox: str = ""
    iptables_wrapper: bool = False


@dataclass(frozen=True)
class Component:
    """wrapper: how its wrapper go.mod is made --
    staging   require module; each ./staging/src replace of its go.mod -> the published v0.X.Y (k8s)
    upstream  require module; its own (version-to-version) replace directives copied
    plain     require module (+ requires, replaces of this entry)
    source    no wrapper: the Go module in tests/lab/build/<source> is built (copied to work/)"""

    name: str
    module: str
    version: str
    wrapper: str
    builds: tuple[Go, ...]
    checks: tuple[Check, ...]
    go: str = ""  # the wrapper's go line; "" = the module's own
    requires: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (file of the module, name in bin/), mode 0644
    archive: Archive | None = None
    images: tuple[Image, ...] = ()
    source: str = ""


def lit(text: str) -> str:
    return re.escape(text)


def k8s_ldflags(module: Module) -> str:
    """hack/lib/version.sh: the version variables of component-base and client-go."""
    tag, minor = module.version, module.version.split(".")[1]
    commit = module.commit or "0" * 40
    flags = "-s -w"
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += f" -X '{pkg}.gitVersion={tag}' -X '{pkg}.gitMajor=1' -X '{pkg}.gitMinor={minor}'"
        flags += f" -X '{pkg}.gitCommit={commit}' -X '{pkg}.gitTreeState=clean' -X '{pkg}.buildDate={module.time}'"
    return f"all={flags}"


def cni_plugins(module: Module) -> tuple[str, ...]:
    """Like the module's build_linux.sh: every plugins/{meta,main,ipam}/* but windows."""
    found = []
    for kind in ("meta", "main", "ipam"):
        for d in sorted((module.dir / "plugins" / kind).iterdir()):
            if d.is_dir() and d.name != "windows":
                found.append(f"{module.path}/plugins/{kind}/{d.name}")
    return tuple(found)


def control_plane_image(name: str, k8s: str) -> Image:
    return Image(
        name, "kubeadm", ((f"/usr/local/bin/{name}", f"kubernetes/bin/{name}"),),
        (f'ENTRYPOINT ["/usr/local/bin/{name}"]',), f"k8s.io/kubernetes@{k8s}",
    )


def components(v: Versions) -> list[Component]:
    k8s, cni, crictl, flannel = f"v{v.kubernetes}", f"v{v.cni_plugins}", f"v{v.crictl}", f"v{v.flannel}"
    cni_version = "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion="
    cri = "github.com/Mirantis/cri-dockerd/cmd/version"
    return [
        Component(
            "kubernetes", "k8s.io/kubernetes", k8s, "staging",
            (Go(tuple(f"k8s.io/kubernetes/cmd/{c}" for c in K8S_COMMANDS), k8s_ldflags,
                flags=("-tags", "selinux,notest")),),
            (Check(("kubeadm", "version", "-o", "short"), f"^{lit(k8s)}$"),
             Check(("kubelet", "--version"), f"^Kubernetes {lit(k8s)}$"),
             Check(("kubectl", "version", "--client"), f"Client Version: {lit(k8s)}")),
            images=(
                *(control_plane_image(n, k8s) for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")),
                Image("kube-proxy", "kubeadm", (("/usr/local/bin/kube-proxy", "kubernetes/bin/kube-proxy"),),
                      ('ENTRYPOINT ["/usr/local/bin/kube-proxy"]',), f"k8s.io/kubernetes@{k8s}",
                      base="rootfs", iptables_wrapper=True),
            ),
        ),
        Component(
            "etcd", "go.etcd.io/etcd/server/v3", v.etcd_module, "plain",
            # upstream scripts/build_lib.sh: -installsuffix=cgo, the GitSHA ldflag
            (Go(("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/etcdutl/v3"),
                lambda m: f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA={m.commit[:9] or m.version}",
                flags=("-installsuffix=cgo",)),),
            (Check(("etcd", "--version"), f"^etcd Version: {lit(v.etcd_module[1:])}$"),),
            # etcd's go.mod files replace their siblings with ../ paths, which Go ignores in a
            # dependency: every sibling is pinned here
            requires=tuple(f"go.etcd.io/etcd/{m}/v3 {v.etcd_module}"
                           for m in ("api", "client/pkg", "client", "etcdctl", "etcdutl", "pkg")),
            renames=(("server", "etcd"),),
            images=(Image("etcd", "kubeadm", tuple((f"/usr/local/bin/{b}", f"etcd/bin/{b}")
                                                   for b in ("etcd", "etcdctl", "etcdutl")),
                          ('CMD ["/usr/local/bin/etcd"]',), f"go.etcd.io/etcd/server/v3@{v.etcd_module}",
                          dirs=("/var/lib/etcd",)),),
        ),
        Component(
            "coredns", "github.com/coredns/coredns", v.coredns, "plain",
            (Go(("github.com/coredns/coredns",),
                lambda m: f"-s -w -X github.com/coredns/coredns/coremain.GitCommit={m.commit[:7] or m.version}"),),
            (Check(("coredns", "-version"), f"CoreDNS-{lit(v.coredns[1:])}"),),
            images=(Image("coredns", "kubeadm", (("/coredns", "coredns/bin/coredns"),),
                          ('ENTRYPOINT ["/coredns"]', "EXPOSE 53 53/udp"), f"github.com/coredns/coredns@{v.coredns}"),),
        ),
        Component(
            "pause", "local.build/pause", v.pause, "source",
            (Go((".",), lambda m: f"-s -w -X main.version={m.version}", output="pause"),),
            (Check(("pause", "-v"), f"^pause.go version: {lit(v.pause)}$"),),
            source="pause",
            images=(Image("pause", "kubeadm", (("/pause", "pause/bin/pause"),),
                          ('ENTRYPOINT ["/pause"]', "USER 65535:65535"),
                          "tests/lab/build/pause (Go port of build/pause/linux/pause.c)", base=""),),
        ),
        Component(
            "cri-dockerd", "github.com/Mirantis/cri-dockerd", f"v{v.cri_dockerd}", "upstream",
            (Go(("github.com/Mirantis/cri-dockerd",),
                lambda m: f"-s -w -X {cri}.Version={v.cri_dockerd} -X {cri}.PreRelease= "
                          f"-X {cri}.GitCommit={m.commit[:7] or m.version}"),),
            (Check(("cri-dockerd", "--version"), f"cri-dockerd {lit(v.cri_dockerd)}"),),
            archive=Archive(f"cri-dockerd-{v.cri_dockerd}.amd64.tgz", subdir="cri-dockerd"),
        ),
        Component(
            "cni-plugins", "github.com/containernetworking/plugins", cni, "plain",
            (Go(cni_plugins, lambda m: f"-s -w {cni_version}{m.version}"),),
            (Check(("bridge",), "cniVersion", env=(("CNI_COMMAND", "VERSION"),)),),
            archive=Archive(f"cni-plugins-linux-amd64-{cni}.tgz", dot=True),
        ),
        Component(
            "crictl", "sigs.k8s.io/cri-tools", crictl, "plain",
            (Go(("sigs.k8s.io/cri-tools/cmd/crictl",),
                lambda _m: f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={v.crictl}"),),
            (Check(("crictl", "--version"), lit(v.crictl)),),
            archive=Archive(f"crictl-{crictl}-linux-amd64.tar.gz"),
        ),
        Component(
            "flannel", "github.com/flannel-io/flannel", flannel, "plain",
            # its Makefile on amd64: flanneld with cgo (the UDP backend) linked static; install-conf without
            (Go(("github.com/flannel-io/flannel",),
                lambda m: f"-s -w -X github.com/flannel-io/flannel/pkg/version.Version={m.version} -extldflags -static",
                output="flanneld", cgo=True),
             Go(("github.com/flannel-io/flannel/cmd/install_conf",), lambda _m: "-s -w", output="install-conf")),
            (Check(("flanneld", "--version"), lit(flannel)),),
            # the proxy refuses the zip of tencentcloud/vpc v1.3.188 (and most others); v1.3.75 is
            # served and compiles; it only backs the tencentvpc backend (docs/lab-build.md)
            replaces=("github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc => "
                      "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc v1.3.75",),
            files=(("Documentation/kube-flannel.yml", "kube-flannel.upstream.yml"),),
            images=(Image("flannel", "pod_network",
                          tuple((f"/opt/bin/{b}", f"flannel/bin/{b}") for b in ("flanneld", "install-conf")),
                          ('ENTRYPOINT ["/opt/bin/flanneld"]',), f"github.com/flannel-io/flannel@{flannel}",
                          base="rootfs", dirs=("/run/flannel",), iptables_wrapper=True),),
        ),
        Component(
            # github.com/flannel-io/cni-plugin is not served by the proxy: the plugin comes from the
            # last containernetworking/plugins release that carried plugins/meta/flannel
            "flannel-cni", "github.com/containernetworking/plugins", f"v{v.flannel_cni_source}", "plain",
            (Go(("github.com/containernetworking/plugins/plugins/meta/flannel",),
                lambda m: f"-s -w {cni_version}{m.version}", output="flannel"),),
            (Check(("flannel",), "cniVersion", env=(("CNI_COMMAND", "VERSION"),)),),
            go="1.24.0",  # the module says go 1.14 (no module graph pruning)
            images=(Image("flannel-cni-plugin", "pod_network",
                          (("/flannel", "flannel-cni/bin/flannel"), ("/bin/busybox", "docker/root/bin/busybox")),
                          ('CMD ["/bin/sh"]',),
                          f"github.com/containernetworking/plugins@v{v.flannel_cni_source}/plugins/meta/flannel",
                          busybox="sh cp ls cat"),),
        ),
        Component(
            # agnhost, the test image of Kubernetes' own e2e tests, from the same k8s.io/kubernetes
            # module; its tag (the one e2e.test expects) is the module's test/images/agnhost/VERSION
            "agnhost", "k8s.io/kubernetes", k8s, "staging",
            (Go(("k8s.io/kubernetes/test/images/agnhost",), lambda _m: "-s -w"),),
            (Check(("agnhost", "--help"), "netexec"),),
            files=(("test/images/agnhost/porter/localhost.crt", "localhost.crt"),
                   ("test/images/agnhost/porter/localhost.key", "localhost.key")),
            images=(Image("agnhost", "test",
                          (*((f"/{f}", f"agnhost/bin/{f}") for f in ("agnhost", "localhost.crt", "localhost.key")),
                           ("/bin/busybox", "docker/root/bin/busybox")),
                          ('ENTRYPOINT ["/agnhost"]', 'CMD ["pause"]', "EXPOSE 80 8080 8081 9376"),
                          f"k8s.io/kubernetes/test/images/agnhost@{k8s} + Debian busybox-static",
                          ref=f"registry.k8s.io/e2e-test-images/agnhost:{v.agnhost}",
                          dirs=("/uploads",), links=(("/agnhost-2", "agnhost"),), busybox="all"),),
        ),
    ]


def images(v: Versions) -> list[Image]:
    return [image for c in components(v) for image in c.images]
