#!/usr/bin/env bash
# Front-end assets (MapLibre GL JS, Leaflet, folium's jQuery/Bootstrap/Font Awesome) come from
# the npm registry, pinned by package-lock.json, and are copied into gis_platform/static/vendor
# so the platform serves them itself: pages work with no internet.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f package.json ] || exit 0
vendor=gis_platform/static/vendor
stamp=$vendor/.stamp-$(cat package-lock.json scripts/install-assets.sh | sha1sum | cut -c1-12)
[ -f "$stamp" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is needed to fetch the front-end assets: sudo apt-get install -y npm" >&2
    exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
rm -rf "$vendor"
mkdir -p "$vendor"
cp -r node_modules/maplibre-gl/dist "$vendor/maplibre-gl"
rm -f "$vendor"/maplibre-gl/*.map "$vendor"/maplibre-gl/*-dev.mjs
cp -r node_modules/leaflet/dist "$vendor/leaflet"
cp -r node_modules/jquery/dist "$vendor/jquery"
mkdir -p "$vendor/bootstrap"
cp -r node_modules/bootstrap/dist/css node_modules/bootstrap/dist/js "$vendor/bootstrap/"
mkdir -p "$vendor/fontawesome"
cp -r node_modules/@fortawesome/fontawesome-free/css node_modules/@fortawesome/fontawesome-free/webfonts "$vendor/fontawesome/"
cp -r node_modules/leaflet.awesome-markers/dist "$vendor/leaflet.awesome-markers"
find "$vendor" -name '*.map' -delete
touch "$stamp"
