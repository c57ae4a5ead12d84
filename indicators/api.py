"""HTTP routes of indicators: definitions, area units and values (JSON or GeoJSON).

``GET /indicators``, ``GET /indicators/{id}``, ``GET /indicators/{id}/values?unit=&year=&f=``,
``GET /area-units``.  Access: the one access decision (:mod:`gis_platform.access`) on the
indicator - its ``access_level`` (the strictest of the data it was computed from), and for
scoped keys the layers it was computed from - and on its area unit's layer; otherwise it is
the same 404 as a missing one.
"""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Query, Request
from psycopg import sql

from gis_platform.deps import run_sync
from gis_platform.errors import InvalidParameter
from gis_platform.principal import Principal
from gis_platform.responses import FastJSONResponse, GeoJSONResponse
from gis_platform.security import PrincipalDep
from indicators.store import (
    Indicator,
    check_indicator,
    get_area_unit,
    get_indicator,
    list_area_units,
    list_indicators,
    read_values,
    readable_indicator,
)
from layers.registry import Registry, RegistryDep

router = APIRouter(tags=["indicators"])


@router.get("/indicators", summary="Policy indicators (definitions, years, area units)")
async def indicators(request: Request, principal: PrincipalDep) -> dict:
    found = await run_sync(request, list_indicators)
    return {"indicators": [i.model_dump() for i in found if readable_indicator(i, principal)]}


@router.get("/area-units", summary="Area units (districts, neighbourhoods, hexagon grids)")
async def area_units(request: Request, registry: RegistryDep, principal: PrincipalDep) -> dict:
    units = await run_sync(request, list_area_units)
    visible = {l.id for l in registry.visible(principal)}
    return {"area_units": [u.model_dump() for u in units if u.layer_id in visible]}


@router.get("/indicators/{indicator_id}", summary="One indicator definition")
async def indicator(request: Request, indicator_id: str, principal: PrincipalDep) -> dict:
    ind = await run_sync(request, get_indicator, indicator_id)
    return check_indicator(ind, principal).model_dump()


def _values(conn: psycopg.Connection, ind: Indicator, unit_id: str, year: int | None, registry: Registry,
            principal: Principal, geojson: bool) -> dict:
    unit = get_area_unit(conn, unit_id)
    layer = registry.readable(unit.layer_id, principal)   # the access choke point
    years = [year] if year is not None else None
    values = read_values(conn, ind.id, unit_id, years)
    if values.empty:
        raise InvalidParameter(f"Indicator {ind.id!r} has no values for area unit {unit_id!r}"
                               + (f" in {year}" if year is not None else "")
                               + f"; it has years {ind.years} for units {ind.units}.")
    meta = {"indicator": ind.model_dump(), "unit": unit.model_dump(),
            "layer_data_version": layer.data_version}
    if not geojson:
        return {**meta, "values": values.to_dict(orient="records")}
    name = sql.Identifier(unit.name_column) if unit.name_column else sql.SQL("NULL")
    rows = conn.execute(sql.SQL(
        "SELECT {c}::text, {n}::text, ST_AsGeoJSON({g}, 6)::json FROM {t} ORDER BY 1").format(
        c=sql.Identifier(unit.code_column), n=name, t=layer.table(),
        g=layer.rows.geom_in(4326))).fetchall()
    by_code: dict[str, dict] = {}
    for rec in values.itertuples(index=False):
        by_code.setdefault(rec.area_code, {})[str(rec.year)] = None if rec.value != rec.value else rec.value
    feats = [{"type": "Feature", "id": code, "geometry": geom,
              "properties": {"code": code, "name": nm, "values": by_code.get(code, {})}}
             for code, nm, geom in rows]
    return {"type": "FeatureCollection", **meta, "features": feats}


@router.get("/indicators/{indicator_id}/values",
            summary="Values of an indicator per area (JSON, or GeoJSON joined to the areas)")
async def indicator_values(request: Request, indicator_id: str, registry: RegistryDep,
                           principal: PrincipalDep, unit: str | None = None,
                           year: int | None = Query(None, ge=1900, le=2200),
                           f: str = Query("json", pattern="^(json|geojson)$")):
    ind = check_indicator(await run_sync(request, get_indicator, indicator_id), principal)
    if unit is None:
        if len(ind.units) != 1:
            raise InvalidParameter(f"Choose an area unit with ?unit= (one of {ind.units}).")
        unit = ind.units[0]
    doc = await run_sync(request, _values, ind, unit, year, registry, principal, f == "geojson")
    return GeoJSONResponse(doc) if f == "geojson" else FastJSONResponse(doc)
