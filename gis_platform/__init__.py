"""City GIS spatial services platform: the core (settings, database, security, app, CLI)."""

from gis_platform import gdal_env

# Before anything loads GDAL (pyogrio, rasterio): no VRT drivers, no network file systems.
gdal_env.apply()

__version__ = "0.1.0"
