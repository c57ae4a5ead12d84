#!/usr/bin/env bash
# Front-end assets (MapLibre GL JS, Leaflet, folium's jQuery/Bootstrap/Font Awesome, Swagger UI
# for /docs) come from the npm registry, pinned by package-lock.json, and are copied into
# gis_platform/static/vendor so the platform serves them itself: pages work with no internet.
# --ignore-scripts: none of them needs an install script, and swagger-ui-dist's dependency
# @scarf/scarf has one that reports the install over the network.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f package.json ] || exit 0
vendor=gis_platform/static/vendor
stamp=$vendor/.stamp-$(cat package-lock.json scripts/install-assets.sh | sha1sum | cut -c1-12)
# The folders copied below: a stamp with one of them gone (deleted by hand) copies again.
folders=(maplibre-gl leaflet jquery bootstrap fontawesome leaflet.awesome-markers swagger-ui)
complete() { for f in "${folders[@]}"; do [ -d "$vendor/$f" ] || return 1; done; }
[ -f "$stamp" ] && complete && exit 0
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is needed to fetch the front-end assets: sudo apt-get install -y npm" >&2
    exit 1
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
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
# /docs: the bundle (BaseLayout, no standalone preset), its stylesheet, icons and licences.
mkdir -p "$vendor/swagger-ui"
(cd node_modules/swagger-ui-dist && cp swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt \
    swagger-ui.css favicon-16x16.png favicon-32x32.png LICENSE NOTICE "../../$vendor/swagger-ui/")
find "$vendor" -name '*.map' -delete
touch "$stamp"
