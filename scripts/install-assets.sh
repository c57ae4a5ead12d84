#!/usr/bin/env bash
# Front-end assets (MapLibre GL JS, Leaflet, ...) come from the npm registry and are served
# by the platform itself, so pages work with no internet.  Installed from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f package.json ] || exit 0
stamp=node_modules/.gis-assets-$(sha1sum package-lock.json | cut -c1-12)
[ -f "$stamp" ] && exit 0
npm ci --no-audit --no-fund --loglevel=error
touch "$stamp"
