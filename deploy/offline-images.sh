#!/usr/bin/env bash
# Prepare what `docker compose build` needs on a host that reaches no image registry:
#   - local stand-ins for the three base images (Python 3.11, Redis, Postgres), built from Debian packages
#     on a debootstrap rootfs (the Postgres one honours POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB);
#   - a wheelhouse of every Python dependency of the images, built on this host (pip inside a container
#     may not trust this network's certificates, and an offline host has no index at all).
# Everything is cached outside the repository (TENSORQ_DEPLOY_CACHE, default /var/cache/tensorq-deploy):
# a second run only checks the cache. Prints KEY=value lines for compose; use them as
#   eval "$(bash deploy/offline-images.sh | sed 's/^/export /')"   or   bash deploy/offline-images.sh > .env
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TENSORQ_DEPLOY_CACHE:-/var/cache/tensorq-deploy}
suite=${TENSORQ_DEBIAN_SUITE:-bookworm}
prefix=${TENSORQ_OFFLINE_PREFIX:-tensorq-offline}
extras=${TENSORQ_WHEEL_EXTRAS:-api,autoscale,worker-cpu,monitoring}
log() { echo "offline-images: $*" >&2; }

# One run at a time on a host (CI prefetches in the background while tests/deploy/ may call this too): a second
# run waits here, then finds the cache warm.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

mirror=${TENSORQ_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hoE '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +[^ ]+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# 1. The Debian rootfs and the bare image made from it.
base="$prefix/debian:$suite"
if ! image_exists "$base"; then
  rootfs="$cache/rootfs-$suite"
  if [ ! -f "$rootfs/.complete" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing (bash deploy/engine.sh installs it)"; exit 1; }
    log "debootstrap $suite from $mirror (a couple of minutes, once)"
    rm -rf "$rootfs"; mkdir -p "$cache"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    touch "$rootfs/.complete"
  fi
  log "importing $base"
  tar -C "$rootfs" --exclude=./.complete -c . | docker import - "$base" >/dev/null
fi

# 2. Stand-ins for the official images, each from one small Dockerfile in deploy/offline/.
build_standin() {  # name dockerfile
  local tag="$prefix/$1" file="$root/deploy/offline/$2"
  local stamp; stamp=$(cat "$file" "$root"/deploy/offline/*.sh | sha256sum | cut -c1-12)
  if [ "$(docker image inspect -f '{{index .Config.Labels "tensorq.offline.stamp"}}' "$tag" 2>/dev/null)" != "$stamp" ]; then
    log "building $tag"
    docker build -q --network host --build-arg "BASE=$base" --label "tensorq.offline.stamp=$stamp" \
      -f "$file" -t "$tag" "$root/deploy/offline" >/dev/null
  fi
}
build_standin python:3.11 python.Dockerfile
build_standin redis:7 redis.Dockerfile
build_standin postgres:15 postgres.Dockerfile

# 3. The wheelhouse: every dependency of the images' extras, for this Python (the images' is Debian's 3.11).
wheelhouse="$cache/wheelhouse"
mkdir -p "$wheelhouse"
# One resolution for all the images' extras, plus the build backend (pip builds the project offline).
python3 "$root/deploy/requirements.py" "$root/pyproject.toml" "$extras" >"$cache/requirements.next"
stamp=$(sha256sum <"$cache/requirements.next" | cut -c1-16)
if [ "$(cat "$wheelhouse/.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building the wheelhouse for [$extras] (cached in $wheelhouse)"
  mv "$cache/requirements.next" "$cache/requirements.txt"
  python3 -m pip wheel -q --disable-pip-version-check --find-links "$wheelhouse" -w "$wheelhouse" \
    -r "$cache/requirements.txt" "setuptools>=77" wheel 2> >(grep -v '^WARNING: Location' >&2) >&2
  # The images' Python may differ in its patch release (markers such as python_full_version < "3.11.3"):
  # resolve once more with that interpreter, in the Python stand-in, trusting this host's CA bundle.
  ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  docker run --rm --network host -v "$cache:/cache" -v "$ca:/etc/tensorq-ca.crt:ro" -e PIP_CERT=/etc/tensorq-ca.crt \
    "$prefix/python:3.11" sh -c 'python3 -m venv /tmp/venv && /tmp/venv/bin/pip download -q --disable-pip-version-check \
      --find-links /cache/wheelhouse -d /cache/wheelhouse -r /cache/requirements.txt "setuptools>=77" wheel' >&2
  echo "$stamp" >"$wheelhouse/.stamp"
fi
rm -f "$cache/requirements.next"

# The Dockerfile bind-mounts deploy/wheelhouse/ from the build context: hard links, no copies.
find "$root/deploy/wheelhouse" -maxdepth 1 -name '*.whl' -delete
cp -l "$wheelhouse"/*.whl "$root/deploy/wheelhouse/" 2>/dev/null || cp "$wheelhouse"/*.whl "$root/deploy/wheelhouse/"

echo "TENSORQ_PYTHON_IMAGE=$prefix/python:3.11"
echo "TENSORQ_REDIS_IMAGE=$prefix/redis:7"
echo "TENSORQ_POSTGRES_IMAGE=$prefix/postgres:15"
echo "TENSORQ_WHEELHOUSE=$wheelhouse"
echo "TENSORQ_PIP_NO_INDEX=1"
