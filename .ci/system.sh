#!/usr/bin/env bash
# The system tools the tests drive, installed from Debian's packages when missing (.ci/run runs this in the
# background while pip installs the project): Debian's chromium and chromium-driver for the console's browser
# tests, curl and jq for README's examples, espeak-ng for builtin:spoken_digits (issue 24), then a Docker engine
# with compose v2 for tests/deploy/.
# Exits non-zero only when the browser tools cannot be installed; a missing engine is reported by tests/deploy/.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
  || ! command -v jq >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 \
  || ! command -v espeak-ng >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    chromium chromium-driver jq curl espeak-ng >/dev/null
fi
# Installs docker.io and debootstrap when missing and starts dockerd (deploy/engine.sh; nothing is done twice).
bash deploy/engine.sh || echo "no Docker engine here: tests/deploy/ will report why" >&2
