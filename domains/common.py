"""Shared pieces of the domain routes: settings, roles, request bodies, input geometries."""

from __future__ import annotations

import math
from dataclasses import dataclass

import shapely
from fastapi import Request
from psycopg import sql

from gis_platform import limits
from gis_platform.errors import InvalidParameter
from gis_platform.principal import Principal
from layers.registry import Registry
from layers.spatial import CrsRef, Frag, geometry_sql, parse_crs, shape_from_geojson

#: The metric CRS all distances are computed in: Korea 2000 / Unified CS (UTM-K).  Its scale
#: factor over Seoul is ~0.9996, so distances are within 0.05% of ground distance (1.5 mm
#: on a 3 m clearance) — well inside the positional accuracy of surveyed utilities.
METRIC_SRID = 5179
MAX_DEPTH_M = 30.0


def readable_rows(registry, layer_id: str, principal: Principal):
    """Resolve a layer whose rows we read (we AND ``row_filter`` in ourselves)."""
    return registry.readable(layer_id, principal, filtered=True)


def facility_rows(layer) -> dict[str, sql.Composable]:
    """The pieces of the facility query's ``f`` CTE for ``layer`` (ingested or published in
    place): its id, its geometry in EPSG:4326, its stored geometry, and the search box
    (``box.b``, lon/lat) in the layer's SRID so its spatial index is used."""
    rows = layer.rows
    if rows.is_function:
        raise InvalidParameter(f"Layer '{layer.id}' is a function layer; the dig check reads a "
                               "table or view of facilities.")
    return {"fid": rows.fid(), "g4326": rows.geom_in(4326), "g": rows.geom(),
            "box": rows.to_layer_srid(sql.SQL("(SELECT b FROM box)"))}


def row_filter_sql(principal: Principal, layer) -> tuple[sql.Composable, dict]:
    """The caller's rows of ``layer`` as a condition with named parameters ``%(rf_<n>)s``
    (TRUE when every row is visible)."""
    rows = Registry.rows_of(principal, layer)
    if rows is None:
        return sql.SQL("TRUE"), {}
    return rows.named(None, "rf_")


async def read_json_body(request: Request, settings) -> dict:
    """The request body as a JSON object, size-limited, with actionable errors."""
    doc = await limits.read_json_body(request, int(settings.http.max_request_body_kb) * 1024)
    if not isinstance(doc, dict):
        raise InvalidParameter("The request body must be a JSON object.", parameter="body")
    return doc


def number(doc: dict, key: str, *, default: float | None = None, lo: float = 0.0,
           hi: float = math.inf, required: bool = False) -> float | None:
    """A finite number from a JSON object, within [lo, hi], or a 400 naming the field."""
    value = doc.get(key)
    if value is None:
        if required:
            raise InvalidParameter(f"{key} is required (a number of metres).", parameter=key)
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(f"{key} must be a number (metres), not {type(value).__name__}.",
                               parameter=key)
    value = float(value)
    if not math.isfinite(value):
        raise InvalidParameter(f"{key} must be a finite number.", parameter=key)
    if value < lo:
        if lo == 0:
            raise InvalidParameter(f"{key} must not be negative (got {value:g}); depths are "
                                   "metres below the road surface.", parameter=key)
        raise InvalidParameter(f"{key} must be at least {lo:g} (got {value:g}).", parameter=key)
    if value > hi:
        raise InvalidParameter(f"{key} must be at most {hi:g} (got {value:g}).", parameter=key)
    return value


@dataclass
class InputGeometry:
    """A request geometry: its shapely form (in the input CRS) and SQL in EPSG:4326."""

    shape: shapely.Geometry
    crs: CrsRef
    frag: Frag

    @property
    def kind(self) -> str:
        return self.shape.geom_type


def input_geometry(doc: dict, settings, *, key: str = "geometry") -> InputGeometry:
    """The ``geometry`` member (GeoJSON, in ``geometry_crs``; default CRS84 lon/lat)."""
    if key not in doc:
        raise InvalidParameter(f"{key} is required: a GeoJSON geometry (CRS84 lon/lat unless "
                               "geometry_crs says otherwise).", parameter=key)
    crs_text = doc.get("geometry_crs")
    if crs_text is not None and not isinstance(crs_text, str):
        raise InvalidParameter("geometry_crs must be a string such as 'EPSG:5179'.",
                               parameter="geometry_crs")
    crs = parse_crs(crs_text, settings.features, param="geometry_crs")
    shape = shape_from_geojson(doc[key], param=key)
    frag = geometry_sql(shape, crs, param=key)
    return InputGeometry(shape, crs, frag)
