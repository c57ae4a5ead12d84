"""Layers: the catalog, ingest (files -> PostGIS), feature queries and the domain layers."""
