#!/bin/sh
# mmdebstrap --customize-hook for the lab node image: $1 is the root directory of the new system.
# Keeps the image a plain Debian server; only undoes what a container cannot have (consoles,
# udev, kernel log) and removes what must differ per machine (host keys, machine-id).
set -eu
root=$1
here=$(dirname "$0")

install -m 0755 "$here/entrypoint.sh" "$root/usr/local/sbin/kubelab-entrypoint"
# This host's capability bounding set lacks CAP_SYS_RESOURCE: no negative oom_score_adj (the kubelet
# asks -998 for static pods) and no privileged container (kube-proxy) can start in a node. A runc shim
# ahead of the runc the roles install on PATH fits those specs to what the node may grant (runc-shim).
install -m 0755 "$here/runc-shim" "$root/usr/local/sbin/runc"

# Per-machine identity: generated at first boot by the entrypoint.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# sshd: keys only (root logs in with the per-lab key), no DNS lookups of clients.
mkdir -p "$root/etc/ssh/sshd_config.d"
cat >"$root/etc/ssh/sshd_config.d/kubelab.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF
install -d -m 0700 "$root/root/.ssh"

# journald: the kernel ring buffer belongs to the host.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nReadKMsg=no\n' >"$root/etc/systemd/journald.conf.d/kubelab.conf"

# Units that have no meaning in a container (no consoles, no udev, no kernel config to mount).
for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
  systemd-udevd-control.socket systemd-udevd-kernel.socket sys-kernel-config.mount \
  sys-kernel-debug.mount sys-kernel-tracing.mount systemd-modules-load.service \
  systemd-remount-fs.service systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# The cgroup v2 variant of the entrypoint's cgroup v1 step: /kubelet(.slice) for cgroupRoot.
cat >"$root/etc/systemd/system/kubelab-kubelet-cgroup.service" <<'EOF'
[Unit]
Description=Create the kubelet cgroup root /kubelet on cgroup v2 (lab node)
ConditionPathExists=/sys/fs/cgroup/cgroup.controllers
DefaultDependencies=no
After=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -euc 'cd /sys/fs/cgroup; for s in kubelet kubelet.slice; do mkdir -p $$s; for c in $$(cat cgroup.subtree_control); do echo "+$$c" >$$s/cgroup.subtree_control; done; done'

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/kubelab-kubelet-cgroup.service \
  "$root/etc/systemd/system/multi-user.target.wants/kubelab-kubelet-cgroup.service"

# Clean apt caches: the node has no mirror anyway (the lab network has no route out).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
