"""Ingest: any common GIS file (or a GeoDataFrame) into PostGIS, fast and all-or-nothing."""

from layers.ingest.pipeline import IngestLimits, IngestReport, ingest_file, ingest_geodataframe

__all__ = ["IngestLimits", "IngestReport", "ingest_file", "ingest_geodataframe"]
