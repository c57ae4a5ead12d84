"""Process-wide GDAL hardening: uploaded files must not make GDAL read other files or the net.

A GDAL VRT (raster or vector, ``OGR_VRT``) is an XML file naming *other* datasets: any local
file (``/etc/passwd``, the cluster's password file) or a ``/vsicurl/`` URL.  Opened from an
upload, it turns the server into a file reader and an HTTP client for whoever uploads it.
Three layers of defence:

1. Uploads are recognised by their content, not their name, and rasters are opened with the
   GTiff driver alone (``layers.ingest.readers`` / ``raster``): a VRT is never opened as one.
2. Process-wide options, set before GDAL registers its drivers (pyogrio and rasterio each
   carry their own GDAL and read these from the environment):

   * ``GDAL_SKIP``: the vector VRT driver (``OGR_VRT``) and the web-service drivers (WMS,
     WMTS, WFS, OGC API...) are never registered.  (The raster ``VRT`` driver cannot be
     skipped: GDAL's own warper builds in-memory VRTs for every reprojected tile, and
     re-registers it when it does.)
   * ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS``: an extension no URL has, so ``/vsicurl/`` and the
     file systems built on it (``/vsis3/``, ``/vsigs/``...) refuse every URL;
   * ``GDAL_VRT_ENABLE_RAWRASTERBAND=NO``, a short ``GDAL_HTTP_TIMEOUT``: belt and braces.
3. :func:`ensure_hardened` checks, before an upload is opened, that the options took effect
   (it fails closed when GDAL was loaded before the platform).
"""

from __future__ import annotations

import logging
import os

from gis_platform.errors import ConfigurationError

SKIPPED_DRIVERS = ("OGR_VRT", "WMS", "WMTS", "WFS", "OAPIF", "OGCAPI", "WCS", "EEDA",
                   "EEDAI", "PLSCENES", "NGW", "Elasticsearch", "CARTO", "AmigoCloud")
_NO_URL_EXTENSION = ".gis-platform-no-network-access"

OPTIONS = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": _NO_URL_EXTENSION,
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
}


def _not_about_skipped_drivers(record: logging.LogRecord) -> bool:
    # rasterio's GDAL has no vector drivers and says so for every GDAL_SKIP entry it cannot
    # find, at each environment start: noise, not news.
    return "to unload from GDAL_SKIP" not in record.getMessage()


def apply() -> None:
    """Set the hardening options in this process's environment (idempotent)."""
    logging.getLogger("rasterio._env").addFilter(_not_about_skipped_drivers)
    skip = os.environ.get("GDAL_SKIP", "").split()
    merged = list(dict.fromkeys([*skip, *SKIPPED_DRIVERS]))
    os.environ["GDAL_SKIP"] = " ".join(merged)
    os.environ.update(OPTIONS)


def ensure_hardened() -> None:
    """Raise :class:`ConfigurationError` unless the hardening is in effect in both GDALs."""
    import pyogrio
    from rasterio.env import get_gdal_config

    if "OGR_VRT" in pyogrio.list_drivers():
        raise ConfigurationError(
            "GDAL (pyogrio) was loaded before the platform's hardening and still has its VRT "
            "driver: import gis_platform before geopandas/pyogrio.")
    for name, value in OPTIONS.items():
        if os.environ.get(name) != value or str(get_gdal_config(name, normalize=False)) != value:
            raise ConfigurationError(f"The GDAL option {name} was changed from the platform's "
                                     f"hardened value {value!r}; refusing to open uploads.")
