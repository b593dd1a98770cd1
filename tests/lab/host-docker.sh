#!/usr/bin/env bash
# Make sure a Docker Engine runs on this machine (the lab host), installing
# Debian's docker.io when it is absent. Idempotent: does nothing when
# `docker info` already answers. Logs go to ${KUBELAB_STATE:-/var/tmp/kubelab}/dockerd.log.
set -euo pipefail

state=${KUBELAB_STATE:-/var/tmp/kubelab}
mkdir -p "$state"

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "host-docker: installing Debian's docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl start docker
else
  # No systemd on this host (a container or a CI sandbox): run dockerd directly, in its own session so
  # that it outlives the command that started it (a finished job's process group is killed).
  # Every inherited descriptor above 2 is closed first: started under `flock <lock> ...`, dockerd would
  # otherwise keep the lab lock's descriptor open, and hold the lock for as long as it runs.
  echo "host-docker: starting dockerd (log: $state/dockerd.log)" >&2
  (
    for fd in /proc/self/fd/*; do
      n=${fd##*/}
      if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
    done
    exec setsid nohup dockerd --pidfile /run/kubelab-dockerd.pid >"$state/dockerd.log" 2>&1 < /dev/null
  ) &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "host-docker: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 30 "$state/dockerd.log" >&2 || true
exit 1
