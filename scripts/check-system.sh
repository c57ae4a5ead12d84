#!/usr/bin/env bash
# Check the files and programs the platform needs on this machine: artefacts, not package
# names (a package can be "installed" and still not hold the file we need, as `postgis`
# without `postgresql-NN-postgis-3` showed).  Cheap: a few stat calls and one `postgres
# --version`.
#
#   scripts/check-system.sh            one line per missing artefact on stderr, exit 1 if any
#   scripts/check-system.sh --packages print the Debian packages that would provide what is
#                                      missing (one per line), exit 0
#
# The PostgreSQL server is the newest one under /usr/lib/postgresql, the same one the
# embedded cluster picks (gis_platform.db.embedded.find_postgres).
set -uo pipefail

mode=${1:-check}
# Where Debian puts the server binaries and shared files (overridable for the tests).
PG_LIB=${GIS_CHECK_PG_LIB:-/usr/lib/postgresql}
PG_SHARE=${GIS_CHECK_PG_SHARE:-/usr/share/postgresql}

pg_major() {
    local best="" v
    for bin in "$PG_LIB"/*/bin/postgres; do
        [ -x "$bin" ] || continue
        v=$(basename "$(dirname "$(dirname "$bin")")")
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -1)" = "$v" ]; then
            best=$v
        fi
    done
    [ -n "$best" ] && echo "$best"
}

have_cjk_font() {
    # Noto Sans CJK KR: screenshots render Hangul with it, and scripts/build-glyphs.py makes
    # the map label glyphs from it.
    compgen -G "/usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc" >/dev/null 2>&1
}

# Each entry: "what is missing|Debian package|command that installs it"
missing=()
major=$(pg_major)
if [ -z "$major" ]; then
    missing+=("PostgreSQL server binaries ($PG_LIB/*/bin/postgres)|postgresql|apt-get install -y postgresql")
else
    for tool in initdb pg_ctl pg_basebackup; do
        if [ ! -x "$PG_LIB/$major/bin/$tool" ]; then
            missing+=("$PG_LIB/$major/bin/$tool|postgresql-$major|apt-get install -y postgresql-$major")
        fi
    done
    control=$PG_SHARE/$major/extension/postgis.control
    if [ ! -f "$control" ]; then
        missing+=("PostGIS extension for PostgreSQL $major ($control)|postgresql-$major-postgis-3|apt-get install -y postgresql-$major-postgis-3")
    fi
fi
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    missing+=("Chromium browser (/usr/bin/chromium)|chromium|apt-get install -y chromium")
fi
if ! command -v ogr2ogr >/dev/null 2>&1; then
    missing+=("GDAL's ogr2ogr|gdal-bin|apt-get install -y gdal-bin")
fi
if ! have_cjk_font; then
    missing+=("a Korean (CJK) font (fc-list :lang=ko is empty)|fonts-noto-cjk|apt-get install -y fonts-noto-cjk")
fi
# Scale-out tests run the real balancer and pooler (deploy/, tests/ops/test_nginx.py,
# test_pgbouncer.py): Debian's, as a deployment would.
if [ ! -x /usr/sbin/nginx ]; then
    missing+=("nginx (/usr/sbin/nginx: the load balancer of deploy/nginx)|nginx|apt-get install -y nginx")
fi
if [ ! -x /usr/sbin/pgbouncer ]; then
    missing+=("pgbouncer (/usr/sbin/pgbouncer: connection pooling)|pgbouncer|apt-get install -y pgbouncer")
fi
if ! command -v npm >/dev/null 2>&1; then
    missing+=("npm (front-end assets from the npm registry)|npm|apt-get install -y npm")
fi
if ! "$(dirname "$0")/pick-python.sh" >/dev/null 2>&1; then
    missing+=("a python3 >= 3.11 with venv that an unprivileged user can run|python3-venv|apt-get install -y python3-venv")
fi

if [ "$mode" = "--packages" ]; then
    for m in "${missing[@]}"; do
        IFS='|' read -r _ pkg _ <<<"$m"
        echo "$pkg"
    done
    exit 0
fi

[ ${#missing[@]} -eq 0 ] && exit 0
for m in "${missing[@]}"; do
    IFS='|' read -r what _ cmd <<<"$m"
    echo "missing: $what -- install it with: sudo $cmd" >&2
done
exit 1
