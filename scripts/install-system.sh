#!/usr/bin/env bash
# Install what the platform needs on this machine, once: a PostgreSQL server and the PostGIS
# extension for *that* server's major version (embedded database), GDAL tools (ogr2ogr for
# benchmarks and client tests), Chromium and a CJK font (browser tests, PNG maps), npm
# (front-end assets from the npm registry).
#
# What to install is decided by scripts/check-system.sh from the artefacts it finds missing
# (postgis.control for the server's version, /usr/bin/chromium, ogr2ogr, a Korean font, npm),
# and the same check runs again afterwards: if something is still missing, this fails with
# one line naming it.  When no PostgreSQL server is there yet, the first round installs one
# and the second installs the PostGIS extension package matching its version,
# postgresql-$MAJOR-postgis-3 (Debian's `postgis` package holds only the command-line tools,
# not the extension).  Idempotent: when all is
# there it costs a few stat calls.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

SUDO=""
for round in 1 2; do
    mapfile -t packages < <("$here/check-system.sh" --packages)
    [ ${#packages[@]} -eq 0 ] && break
    if [ -z "$SUDO" ] && [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "need root (or sudo) to install: ${packages[*]}" >&2
            "$here/check-system.sh" || true
            exit 1
        fi
        SUDO="sudo"
    fi
    echo "installing system packages: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Debian starts a system cluster when postgresql is installed; the platform runs its own
    # (on a free port), so that one is left alone.
    if [ "$round" -eq 1 ]; then $SUDO apt-get update -qq; fi
    if ! $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; then
        echo "apt-get install failed for: ${packages[*]}" >&2
    fi
done

# Check the artefacts, not the package names: one line per thing still missing.
exec "$here/check-system.sh"
