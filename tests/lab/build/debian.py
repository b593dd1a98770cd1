# SPDX-License-Identifier: GPL-3.0-or-later
"""What comes from Debian's apt mirror: Docker Engine (+ busybox-static) and the rootfs of the
kube-proxy and flannel images. Neither can be cached by Go or Docker, so each keeps a content
key: the candidate package versions, and the suite, mirrors and package list."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from buildlib import T_DEBIAN, T_QUICK, BuildError, Outcome, det_tgz, fresh_dir, is_static, key, read_key, run, sha256

SELF_SHA = sha256(Path(__file__))
DOCKER_PACKAGES = ("docker.io", "containerd", "runc", "tini", "busybox-static")
# the static archive's layout (docker-ce-packaging static/Makefile): docker/<name> <- path in the debs
DOCKER_FILES = {
    "docker": "usr/bin/docker", "dockerd": "usr/sbin/dockerd", "docker-proxy": "usr/sbin/docker-proxy",
    "docker-init": "usr/bin/tini-static", "containerd": "usr/bin/containerd",
    "containerd-shim-runc-v2": "usr/bin/containerd-shim-runc-v2", "ctr": "usr/bin/ctr", "runc": "usr/sbin/runc",
}
ROOTFS_PACKAGES = "iptables,nftables,conntrack"
# usrmerge (and the perl it pulls in) is only needed while bootstrapping (bookworm's names; dpkg
# ignores the ones not installed)
ROOTFS_PURGE = (
    "usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl perl-modules-5.36 "
    "libperl5.36 libgdbm-compat4 libgdbm6 libdb5.3"
)


@dataclass(frozen=True)
class Debian:
    suite: str
    mirror: str
    security_mirror: str

    @property
    def sources(self) -> list[str]:
        return [f"deb {self.mirror} {self.suite} main", f"deb {self.mirror} {self.suite}-updates main",
                f"deb {self.security_mirror} {self.suite}-security main"]


def candidates(packages: tuple[str, ...]) -> dict[str, str]:
    out = run(["apt-cache", "policy", *packages], capture=True, timeout=T_QUICK)
    found, name = {}, ""
    for line in out.splitlines():
        if line and not line[0].isspace():
            name = line.rstrip(":")
        elif line.strip().startswith("Candidate:"):
            found[name] = line.split(":", 1)[1].strip()
    missing = [p for p in packages if found.get(p, "(none)") == "(none)"]
    if missing:
        raise BuildError(f"apt has no candidate for {missing}; check this machine's apt sources")
    return found


def apt_download(d: Path, packages: tuple[str, ...]) -> None:
    try:
        run(["apt-get", "download", *packages], cwd=d, timeout=T_DEBIAN)
    except BuildError:
        run(["apt-get", "update", "-qq"], timeout=T_DEBIAN)
        run(["apt-get", "download", *packages], cwd=d, timeout=T_DEBIAN)


def docker_version(d: Path) -> str:
    return (d / "version").read_text(encoding="utf-8").strip()


def build_docker(work: Path, force: bool, suite: str) -> Outcome:
    """Docker Engine from Debian's debs, in the static archive's layout; busybox stays in root/."""
    d = work / "docker"
    d.mkdir(parents=True, exist_ok=True)
    versions = candidates(DOCKER_PACKAGES)
    k = key(versions, DOCKER_FILES, SELF_SHA)
    if not force and read_key(d / "key") == k and (d / "version").is_file():
        if (d / f"docker-{docker_version(d)}.tgz").is_file() and (d / "root/bin/busybox").is_file():
            return Outcome("cached", f"docker {docker_version(d)} (Debian {suite})")
    (d / "key").unlink(missing_ok=True)
    debs, root = fresh_dir(d / "debs"), fresh_dir(d / "root")
    pkg = fresh_dir(d / "pkg") / "docker"
    pkg.mkdir()
    apt_download(debs, DOCKER_PACKAGES)
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg-deb", "-x", deb, root], timeout=T_QUICK)
    engine = next(debs.glob("docker.io_*.deb"), None)
    if engine is None:
        raise BuildError(f"apt-get download left no docker.io_*.deb in {debs}")
    full = run(["dpkg-deb", "-f", engine, "Version"], capture=True, timeout=T_QUICK).strip()
    version = re.sub(r"[+~-].*", "", re.sub(r"^[0-9]+:", "", full))
    for name, rel in DOCKER_FILES.items():
        src = root / rel
        if not src.is_file() or src.is_symlink():
            raise BuildError(f"{name}: {rel} is not in the Debian packages {' '.join(DOCKER_PACKAGES)}")
        shutil.copyfile(src, pkg / name)
        (pkg / name).chmod(0o755)
    ldd = [f"# ldd of the Docker Engine binaries taken from Debian {suite} ({versions})"]
    for f in sorted(pkg.iterdir()):
        ldd.append(f"## {f.name}")
        if is_static(f):
            ldd.append("static")
            continue
        dyn = run(["readelf", "-d", f], capture=True, timeout=T_QUICK)
        ldd += [f"NEEDED {m}" for m in re.findall(r"\(NEEDED\).*\[(.*)\]", dyn)]
        resolved = run(["ldd", f], capture=True, timeout=T_QUICK).splitlines()
        ldd += [re.sub(r" \(0x[0-9a-f]*\)", "", line) for line in resolved]
    (d / "ldd.txt").write_text("\n".join(ldd) + "\n", encoding="utf-8")
    out = run([pkg / "dockerd", "--version"], capture=True, check=False, timeout=T_QUICK)
    if version not in out:
        raise BuildError(f"dockerd --version does not say {version}: {out.strip()}")
    det_tgz(d / f"docker-{version}.tgz", pkg.parent, ["docker"])
    (d / "version").write_text(version + "\n", encoding="utf-8")
    (d / "key").write_text(k, encoding="utf-8")
    return Outcome("built", f"docker {version} (Debian {suite} debs: {full})")


def build_rootfs(work: Path, force: bool, debian: Debian) -> Outcome:
    """A trimmed Debian rootfs with iptables (nft + legacy), nft and conntrack."""
    d = work / "rootfs"
    d.mkdir(parents=True, exist_ok=True)
    argv = [
        "mmdebstrap", "--variant=essential", "--format=tar", f"--include={ROOTFS_PACKAGES}",
        "--aptopt=APT::Install-Recommends \"false\"",
        *(f"--dpkgopt=path-exclude=/usr/share/{p}/*" for p in ("man", "doc", "locale", "info")),
        # hooks: shell commands that mmdebstrap runs with the rootfs as $1
        f'--customize-hook=chroot "$1" dpkg --purge --force-depends --force-remove-essential {ROOTFS_PURGE}',
        '--customize-hook=rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/var/lib/apt/lists/*',
        debian.suite, "@OUT@", *debian.sources,
    ]
    k = key(argv, SELF_SHA)
    base = d / "base.tar"
    if not force and read_key(d / "key") == k and base.is_file():
        return Outcome("cached", f"{base.stat().st_size >> 20} MB")
    (d / "key").unlink(missing_ok=True)
    new = d / "base.new.tar"
    new.unlink(missing_ok=True)
    run([str(new) if a == "@OUT@" else a for a in argv], timeout=T_DEBIAN, what="mmdebstrap")
    new.rename(base)
    (d / "key").write_text(k, encoding="utf-8")
    return Outcome("built", f"{base.stat().st_size >> 20} MB ({ROOTFS_PACKAGES})")
