# SPDX-License-Identifier: GPL-3.0-or-later
"""The VM image of the VM tier, from Debian packages only: a Vagrant box for the libvirt provider and
the same disk for plain QEMU.

    python tests/vm/box.py [--suite bookworm|trixie] [--force]

Out (in $KUBELAB_STATE/vm/<suite>/, default /var/tmp/kubelab): disk.qcow2 (BIOS-bootable: MBR,
extlinux, ext4 root on vda1, a swap partition on vda2 as the Debian installer leaves one),
vmlinuz + initrd.img (for a direct kernel boot), kubelab-<suite>.box (metadata.json, Vagrantfile,
box.img) and key (the recipe key). The image is cached by recipe like the lab's node image: the
suite, mirrors, both package lists (the lab node's and tests/vm/packages.txt), this file and Vagrant's
public key; a changed recipe builds it again.

Why our own script: no tool in Debian 12 builds a Vagrant libvirt box offline (Packer, veewee and
debian-vagrant-images' fai-diskimage need the internet or packages Debian 12 lacks); mmdebstrap
does the part that matters, the rest is a partition table, a file system and a boot loader.

The image has Vagrant's well-known insecure public key for the user `vagrant` (sudo without a
password), which Vagrant replaces with a key of its own on first `vagrant up`; host keys are made
on each VM's first boot; /etc/machine-id is empty so that every VM gets its own.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The lab's node image and bundle build hold the package list reader, the apt sources and the recipe key.
sys.path[:0] = [str(HERE.parent / "lab"), str(HERE.parent / "lab" / "build")]
import buildlib  # noqa: E402
import debian  # noqa: E402
import nodes  # noqa: E402

PACKAGES_FILE = HERE / "packages.txt"
STATE = Path(os.environ.get("KUBELAB_STATE", "/var/tmp/kubelab"))
MIRROR = os.environ.get("KUBELAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("KUBELAB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
SUITES = ("bookworm", "trixie")
DISK_GIB = 16  # the box's virtual size: the bundle's images and the node's own copies fit
SWAP_MIB = 256
ALIGN = 1 << 20  # partition 1 starts at 1 MiB
VAGRANT_PUB_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
MBR = Path("/usr/lib/EXTLINUX/mbr.bin")
T_DEBIAN, T_DISK, T_QUICK = 1800, 900, 120


class BoxError(Exception):
    pass


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] box: {message}", flush=True)


def run(argv: list[str | os.PathLike], timeout: float, **kwargs) -> str:
    try:
        done = subprocess.run([str(a) for a in argv], check=False, capture_output=True, text=True,
                              timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise BoxError(f"{argv[0]} did not finish within {timeout} s: {' '.join(map(str, argv))[:300]}") from exc
    if done.returncode != 0:
        raise BoxError(f"{' '.join(map(str, argv))[:300]} exited {done.returncode}:\n{done.stdout[-3000:]}"
                       f"{done.stderr[-3000:]}")
    return done.stdout


def packages() -> list[str]:
    """The lab node's packages plus what a VM adds (kernel, udev, ...)."""
    return nodes.packages() + nodes.packages(PACKAGES_FILE)


def vagrant_public_key() -> str:
    found = sorted(glob.glob(VAGRANT_PUB_GLOB))
    if not found:
        raise BoxError(f"no Vagrant public key at {VAGRANT_PUB_GLOB}: install Debian's vagrant package (make setup)")
    return Path(found[-1]).read_text(encoding="utf-8").strip()


def recipe(suite: str) -> dict:
    return {
        "suite": suite, "mirror": MIRROR, "security_mirror": SECURITY_MIRROR, "packages": packages(),
        "disk_gib": DISK_GIB, "swap_mib": SWAP_MIB, "vagrant_pub": vagrant_public_key(),
        "self": buildlib.sha256(Path(__file__)),
    }


def recipe_key(suite: str) -> str:
    return buildlib.key(recipe(suite))


def out_dir(suite: str) -> Path:
    return STATE / "vm" / suite


def box_name(suite: str) -> str:
    return f"kubelab/{suite}"


def box_file(suite: str) -> Path:
    return out_dir(suite) / f"kubelab-{suite}.box"


def cached(suite: str) -> bool:
    d = out_dir(suite)
    key = d / "key"
    return (key.is_file() and key.read_text(encoding="utf-8").strip() == recipe_key(suite)
            and all((d / f).is_file() for f in ("disk.qcow2", "vmlinuz", "initrd.img", box_file(suite).name)))


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def customize(root: Path, suite: str) -> None:
    """What an installer and a box maker would leave: fstab, the vagrant user, networking, first-boot keys."""
    write(root / "etc/hostname", "kubelab-vm\n")
    # mmdebstrap leaves the build host's resolv.conf: a VM must not inherit its name servers
    write(root / "etc/resolv.conf", "# no name server: the VMs of the VM tier have no network but their own\n")
    write(root / "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    write(root / "etc/fstab", "LABEL=vmroot\t/\text4\terrors=remount-ro\t0\t1\n"
                              "LABEL=vmswap\tnone\tswap\tsw\t0\t0\n")
    run(["chroot", root, "useradd", "--create-home", "--shell", "/bin/bash", "vagrant"], T_QUICK)
    write(root / "etc/sudoers.d/vagrant", "vagrant ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    ssh = root / "home/vagrant/.ssh"
    write(ssh / "authorized_keys", vagrant_public_key() + "\n", 0o600)
    ssh.chmod(0o700)
    run(["chroot", root, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh"], T_QUICK)
    # DHCP on every NIC without a more specific file: Vagrant writes 50-vagrant-<nic>.network for
    # the private network's static address (its Debian guest plugin uses networkd when it runs).
    write(root / "etc/systemd/network/90-dhcp.network", "[Match]\nName=eth* en*\n\n[Network]\nDHCP=ipv4\n")
    run(["chroot", root, "systemctl", "enable", "systemd-networkd.service"], T_QUICK)
    for f in (root / "etc/ssh").glob("ssh_host_*"):
        f.unlink()
    write(root / "etc/systemd/system/kubelab-ssh-hostkeys.service",
          "[Unit]\nDescription=SSH host keys of this VM (made on first boot)\nBefore=ssh.service\n"
          "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
          "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n"
          # the harness reads the new keys from the console (no trust on first use)
          "ExecStartPost=/bin/sh -c 'for k in /etc/ssh/ssh_host_*_key.pub; do echo \"kubelab-hostkey $(cat $k)\" "
          ">/dev/ttyS0; done'\n\n[Install]\nWantedBy=ssh.service\n")
    run(["chroot", root, "systemctl", "enable", "kubelab-ssh-hostkeys.service"], T_QUICK)
    write(root / "etc/machine-id", "")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    for f in (root / "var/cache/apt").glob("*.bin"):
        f.unlink()


def kernel_files(root: Path) -> tuple[str, str]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if len(kernels) != 1 or len(initrds) != 1:
        raise BoxError(f"expected one kernel and one initrd in {root}/boot, found {kernels} {initrds}")
    return kernels[0].name, initrds[0].name


def make_disk(root: Path, work: Path, kernel: str, initrd: str) -> Path:
    """A BIOS disk: MBR (extlinux's mbr.bin), vda1 ext4 'vmroot' (bootable, extlinux), vda2 swap 'vmswap'."""
    disk = work / "disk.raw"
    size = DISK_GIB << 30
    swap = SWAP_MIB << 20
    root_bytes = size - ALIGN - swap
    with disk.open("wb") as handle:
        handle.truncate(size)
    table = (f"label: dos\nstart=2048, size={root_bytes // 512}, type=83, bootable\n"
             f"start={(ALIGN + root_bytes) // 512}, size={swap // 512}, type=82\n")
    run(["sfdisk", "--quiet", disk], T_QUICK, input=table)
    # ext4 without the features extlinux 6.04 cannot read (64bit); mke2fs fills it from the tree
    run(["mke2fs", "-q", "-t", "ext4", "-O", "^64bit", "-L", "vmroot", "-E", f"offset={ALIGN}",
         "-d", root, disk, f"{root_bytes // 1024}k"], T_DISK)
    swapfile = work / "swap.img"
    with swapfile.open("wb") as handle:
        handle.truncate(swap)
    run(["mkswap", "-L", "vmswap", swapfile], T_QUICK)
    run(["dd", f"if={swapfile}", f"of={disk}", "bs=1M", f"seek={(ALIGN + root_bytes) >> 20}", "conv=notrunc,sparse",
         "status=none"], T_DISK)
    swapfile.unlink()
    mnt = work / "mnt"
    mnt.mkdir()
    run(["mount", "-o", f"loop,offset={ALIGN}", disk, mnt], T_QUICK)
    try:
        (mnt / "boot/extlinux").mkdir(parents=True, exist_ok=True)
        write(mnt / "boot/extlinux/extlinux.conf",
              f"DEFAULT debian\nTIMEOUT 0\nPROMPT 0\nLABEL debian\n  LINUX /boot/{kernel}\n  INITRD /boot/{initrd}\n"
              "  APPEND root=LABEL=vmroot ro console=tty0 console=ttyS0,115200 net.ifnames=0\n")
        run(["extlinux", "--install", mnt / "boot/extlinux"], T_QUICK)
    finally:
        run(["umount", mnt], T_QUICK)
    run(["dd", f"if={MBR}", f"of={disk}", "bs=440", "count=1", "conv=notrunc", "status=none"], T_QUICK)
    return disk


def make_box(d: Path, suite: str) -> None:
    meta = d / "metadata.json"
    write(meta, json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GIB}) + "\n")
    vagrantfile = d / "Vagrantfile"
    write(vagrantfile, "# kubelab's Debian box (tests/vm/box.py): virtio disk, BIOS boot\n"
                       "Vagrant.configure('2') do |config|\n"
                       "  config.vm.provider :libvirt do |lv|\n    lv.disk_bus = 'virtio'\n  end\n"
                       "  config.vm.synced_folder '.', '/vagrant', disabled: true\nend\n")
    new = d / (box_file(suite).name + ".new")
    with tarfile.open(new, "w") as tar:  # uncompressed: the image is what takes the space
        tar.add(meta, "metadata.json")
        tar.add(vagrantfile, "Vagrantfile")
        tar.add(d / "disk.qcow2", "box.img")
    new.rename(box_file(suite))


def build(suite: str, force: bool) -> Path:
    d = out_dir(suite)
    if not force and cached(suite):
        say(f"{suite}: cached ({d})")
        return d
    d.mkdir(parents=True, exist_ok=True)
    (d / "key").unlink(missing_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=d, prefix="work.") as tmp:
        work = Path(tmp)
        root = work / "root"
        sources = debian.Debian(suite, MIRROR, SECURITY_MIRROR).sources
        say(f"{suite}: mmdebstrap ({len(packages())} packages)")
        run(["mmdebstrap", "--variant=apt", "--components=main", f"--include={','.join(packages())}",
             "--aptopt=APT::Install-Recommends \"false\"",
             *(f"--dpkgopt=path-exclude=/usr/share/{p}/*" for p in ("man", "doc", "locale", "info")),
             suite, root, *sources], T_DEBIAN)
        customize(root, suite)
        kernel, initrd = kernel_files(root)
        shutil.copyfile(root / "boot" / kernel, d / "vmlinuz")
        shutil.copyfile(root / "boot" / initrd, d / "initrd.img")
        say(f"{suite}: disk ({DISK_GIB} GiB, {kernel})")
        disk = make_disk(root, work, kernel, initrd)
        run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk, d / "disk.qcow2"], T_DISK)
    make_box(d, suite)
    (d / "key").write_text(recipe_key(suite) + "\n", encoding="utf-8")
    say(f"{suite}: built in {time.monotonic() - start:.0f} s: {box_file(suite)} "
        f"({box_file(suite).stat().st_size >> 20} MiB)")
    return d


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--suite", choices=SUITES, default="bookworm")
    parser.add_argument("--force", action="store_true", help="build even when the cached image matches the recipe")
    args = parser.parse_args()
    try:
        build(args.suite, args.force)
    except BoxError as exc:
        print(f"box: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
