#!/bin/sh
# PID 1 of a lab node container until it execs systemd. Makes a non-privileged container
# (cap-add ALL minus SYS_RESOURCE, --cgroupns=private) look enough like a machine for systemd,
# Docker Engine and the kubelet. Runs at every start of the container (also after a restart).
set -eu

log() { echo "kubelab-entrypoint: $*" >&2; }

# Mount propagation for the kubelet and the container runtime (volumes, mount namespaces).
mount --make-rshared /

# With --cgroupns=private Docker mounts the cgroup controllers read-only: mount each again
# read-write inside the container's own cgroup namespace (the host sees it under /docker/<id>).
for d in /sys/fs/cgroup/*; do
  [ -L "$d" ] && continue
  mountpoint -q "$d" || continue
  fstype=$(awk -v m="$d" '$2 == m {print $3}' /proc/mounts | tail -n 1)
  opts=$(awk -v m="$d" '$2 == m {print $4}' /proc/mounts | tail -n 1)
  case ",$opts," in *,rw,*) continue ;; esac
  umount "$d"
  if [ "$fstype" = cgroup2 ]; then
    mount -t cgroup2 -o rw,nosuid,nodev,noexec cgroup2 "$d"
  else
    extra=$(echo "$opts" | tr ',' '\n' | grep -vE '^(ro|rw|nosuid|nodev|noexec|relatime)$' | paste -sd, -)
    mount -t cgroup -o "rw,nosuid,nodev,noexec${extra:+,$extra}" cgroup "$d"
  fi
done

# cgroup v1: the kubelet's cgroupRoot /kubelet (kubelet.slice with the systemd driver) must exist
# in every controller. Self-bind-mounted so that systemd never removes it (as kind does).
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
  for d in /sys/fs/cgroup/*; do
    [ -L "$d" ] && continue
    [ "$(stat -fc %T "$d" 2>/dev/null)" = cgroupfs ] || continue
    for sub in kubelet kubelet.slice; do
      [ -d "$d/$sub" ] && mountpoint -q "$d/$sub" && continue
      mkdir -p "$d/$sub"
      if [ -f "$d/cpuset.cpus" ]; then
        cat "$d/cpuset.cpus" >"$d/$sub/cpuset.cpus"
        cat "$d/cpuset.mems" >"$d/$sub/cpuset.mems"
      fi
      mount --bind "$d/$sub" "$d/$sub"
    done
  done
fi

# DNS: Docker's embedded resolver 127.0.0.11 is a loopback address pods cannot reach, and CoreDNS
# (which forwards to the node's resolv.conf) would send queries to itself and stop (plugin/loop).
# The lab has no name server: name the lab gateway, which refuses at once, as an intranet resolver
# that knows no outside names would. The lab nodes' names are in /etc/hosts (docker --add-host).
if grep -q '^nameserver 127\.0\.0\.11' /etc/resolv.conf 2>/dev/null; then
  gw=$(ip -4 route show default | awk '{print $3; exit}')
  if [ -n "$gw" ]; then
    opts=$(grep '^options' /etc/resolv.conf || true)
    printf 'nameserver %s\n%s\n' "$gw" "$opts" >/etc/resolv.conf
  fi
fi

# Each node is its own machine: machine-id, DMI product UUID, SSH host keys (the image has none).
if [ ! -s /etc/machine-id ]; then
  systemd-machine-id-setup >/dev/null
fi
mkdir -p /etc/kubelab
[ -s /etc/kubelab/product_uuid ] || cat /proc/sys/kernel/random/uuid >/etc/kubelab/product_uuid
for f in /sys/class/dmi/id/product_uuid /sys/devices/virtual/dmi/id/product_uuid; do
  if [ -f "$f" ] && ! mountpoint -q "$f" 2>/dev/null; then
    mount -o ro,bind /etc/kubelab/product_uuid "$f" || log "could not hide $f"
  fi
done
ssh-keygen -A >/dev/null

exec /lib/systemd/systemd "$@"
