"""The indicators feature: policy indicators per area unit and year, hexagon grids."""

from __future__ import annotations

from gis_platform.feature import Feature
from indicators import api, cli

FEATURE = Feature("indicators", routers=(api.router,), cli=cli.register)
