#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (used by tests/test_card.py to check that the nomogram HTML
# page computes the same probability as `usrad predict`).
#
#   bash ci/setup-chromium.sh
#
# Idempotent: does nothing when `chromium` is already on PATH. Needs root (CI runs as root) and Debian apt.
# Prints the path of the chromium binary on success.
set -euo pipefail

# One apt-get at a time on this machine (the tests run in parallel workers); -o: the lock is not
# inherited by what apt starts.
apt_get() { flock -o /tmp/usrad-apt.lock apt-get "$@"; }

if ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium
