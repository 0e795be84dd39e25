#!/usr/bin/env bash
# Install Debian's Graphviz (`dot`), which lays out the workflow diagram (rule workflow_diagram,
# usrad.reporting.workflow): edges routed around the rule boxes. Called by `make install`.
#
#   bash ci/setup-graphviz.sh
#
# Idempotent: does nothing when `dot` is already on PATH. Installing needs root and Debian apt; without them it
# says how to install Graphviz and exits 0: the workflow then draws the diagram in its own simpler layout.
set -euo pipefail

# One apt-get at a time on this machine (the tests run in parallel workers); -o: the lock is not
# inherited by what apt starts.
apt_get() { flock -o /tmp/usrad-apt.lock apt-get "$@"; }

if ! command -v dot >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt_get update -qq && apt_get install -y -qq --no-install-recommends graphviz >/dev/null; }; then
      echo "Could not install graphviz with apt-get: the workflow diagram is drawn in its simpler layout." >&2
      exit 0
    fi
  else
    echo "Graphviz (dot) is not installed: the workflow diagram is drawn in its simpler layout." >&2
    echo "For Graphviz's layout: apt install graphviz (or conda install graphviz), then rerun." >&2
    exit 0
  fi
fi
command -v dot
