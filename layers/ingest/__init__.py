"""Ingest: any common GIS file (or a GeoDataFrame) into PostGIS, fast and all-or-nothing."""

from layers.ingest.pipeline import IngestLimits, ingest_file, ingest_geodataframe
from layers.ingest.report import IngestReport

__all__ = ["IngestLimits", "IngestReport", "ingest_file", "ingest_geodataframe"]
