"""The domains feature: underground facilities and roads, the dig-safety check,
cross-sections, road-works permits (OPEN)."""

from __future__ import annotations

from domains import api, cli, demo
from gis_platform.feature import Feature

FEATURE = Feature("domains", routers=(api.router,), cli=cli.register, demo=demo.load_demo)
