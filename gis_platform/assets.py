"""The front-end assets the platform serves itself (from the npm registry, no CDN).

``scripts/install-assets.sh`` (``make assets``) copies MapLibre GL JS, Leaflet, Swagger UI...
from ``node_modules`` into ``gis_platform/static/vendor``.  Pages, the API documentation at
/docs and the offline map renderer need those files; without them a map page (or /docs)
would load a 404 script and show nothing, and the offline renderer would fail with a 500.
:func:`require_vendor_assets` runs when the app is built, so a missing ``make assets`` is one
clear configuration error at start-up instead.
"""

from __future__ import annotations

from pathlib import Path

from gis_platform.config import Settings
from gis_platform.errors import ConfigurationError

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"

# Every file a page or renderer loads from /static/vendor (relative to the vendor folder).
REQUIRED = (
    "maplibre-gl/maplibre-gl.mjs",   # viewer, live policy maps
    "maplibre-gl/maplibre-gl.css",
    "leaflet/leaflet.js",            # feature pages, dig-check report, offline maps (inlined)
    "leaflet/leaflet.css",
    "swagger-ui/swagger-ui-bundle.js",  # /docs (gis_platform.docs)
    "swagger-ui/swagger-ui.css",
)


def vendor_dir(settings: Settings) -> Path:
    """The folder served as /static/vendor for these settings."""
    return (settings.http.static_vendor_dir or VENDOR_DIR).expanduser().resolve()


def missing_vendor_assets(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """The required vendored files absent from ``vendor_dir`` (empty when all are there)."""
    return [name for name in REQUIRED if not (vendor_dir / name).is_file()]


def require_vendor_assets(vendor_dir: Path = VENDOR_DIR) -> None:
    """Raise :class:`ConfigurationError` naming the missing files and the command to fix it."""
    missing = missing_vendor_assets(vendor_dir)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ConfigurationError(
            f"Front-end assets are missing from {vendor_dir} ({shown}): run `make assets` "
            "(npm ci, then copy into gis_platform/static/vendor) before starting the server.")
