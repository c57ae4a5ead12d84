#!/usr/bin/env bash
# Install the system packages the platform needs, once: PostgreSQL + PostGIS (embedded
# database), GDAL tools (ogr2ogr for benchmarks and client tests), Chromium and CJK fonts
# (browser tests, PNG maps), Node's npm (front-end assets from the npm registry).
# Idempotent and quiet when everything is already there.
set -euo pipefail

want=(postgresql postgis gdal-bin chromium fonts-noto-cjk npm python3-venv)
missing=()
for pkg in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        case "$pkg" in
            # Satisfied by tools already on PATH (e.g. a pyenv Python, a NodeSource Node).
            npm) command -v npm >/dev/null 2>&1 && continue ;;
            python3-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && continue ;;
            postgis) ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 && continue ;;
        esac
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system cluster on install; the platform runs its own, so leave that one
# alone (it listens on 5432; ours picks a free port).
