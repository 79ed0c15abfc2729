#!/usr/bin/env bash
# Install what this machine lacks for Sanling: Debian packages, the .venv and the package itself.
#   scripts/bootstrap.sh               # service needs: Python 3.11 + venv, SpatiaLite, a CJK font
#   scripts/bootstrap.sh --with-test   # plus PostgreSQL 15 + PostGIS 3, GDAL tools and Chromium for tests/benchmarks
# Safe to run any number of times; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[ "${1:-}" = "--with-test" ] && with_test=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# fonts-noto-cjk: Debian installs no CJK font, so every Chinese label of the map page, of the drawings and of the
# tests' screenshots rendered on this machine was a box (issue 17 item 4; the pages and SVGs name Noto Sans CJK SC)
# curl: command 1 waits for /healthz with it and the README's examples call the API with it (issue 17 item 1)
packages=(python3.11 python3.11-venv libsqlite3-mod-spatialite fonts-noto-cjk curl)
if [ "$with_test" -eq 1 ]; then
  packages+=(postgresql-15 postgresql-15-postgis-3 postgresql-client-15 gdal-bin chromium)
fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's python3.11 is required: its sqlite3 module can load SpatiaLite (some builds cannot).
PY=/usr/bin/python3.11
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sqlite3; sqlite3.connect(":memory:").enable_load_extension' 2>/dev/null; then
  echo "bootstrap: creating .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

extras="."
[ "$with_test" -eq 1 ] && extras=".[test]"
digest="$(sha256sum pyproject.toml | cut -c1-16)"
stamp=".venv/.sanling-install-$digest-$with_test"
# an install with the test extras also serves the service: command 1 after command 2 must not reinstall (a
# reinstall removes .venv/bin/sanling for a moment, which failed the servers and CLIs running meanwhile)
if [ ! -f "$stamp" ] && { [ "$with_test" -eq 1 ] || [ ! -f ".venv/.sanling-install-$digest-1" ]; }; then
  echo "bootstrap: installing Sanling and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q -e "$extras" 2>&1 | grep -v "is ignored: it is neither" || true
  .venv/bin/python -c 'import app, gis, design_rules' # fail here, not later, if the install broke
  rm -f .venv/.sanling-install-*
  touch "$stamp"
fi
