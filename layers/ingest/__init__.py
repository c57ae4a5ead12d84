"""Ingest: any common GIS file (or a GeoDataFrame) into PostGIS, fast and all-or-nothing."""

from layers.ingest.pipeline import IngestReport, ingest_file, ingest_geodataframe

__all__ = ["IngestReport", "ingest_file", "ingest_geodataframe"]
