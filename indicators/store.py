"""Indicator definitions, area units and values (``gis_meta.indicators`` & co.).

An *area unit* is a catalogued polygon layer with a stable code column (districts,
neighbourhoods, a hexagon grid).  Indicator values are keyed by (indicator, unit, year, area
code).  Table and column names always come from the layer catalog and are composed with
``psycopg.sql.Identifier``; values are parameters.  Every write bumps the indicator's data
version (from the platform-wide sequence), which maps record when they are built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from gis_platform import access
from gis_platform.access import Resource
from gis_platform.errors import InvalidParameter, NotFound, Unprocessable
from gis_platform.principal import LEVELS, Principal
from layers.catalog import Layer, get_layer

ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
Polarity = Literal["higher_is_better", "higher_is_worse", "neutral"]


class IndicatorNotFound(NotFound):
    title, type_slug = "Indicator not found", "indicator-not-found"


class AreaUnitNotFound(NotFound):
    title, type_slug = "Area unit not found", "area-unit-not-found"


class Indicator(BaseModel):
    """An indicator definition (names in Korean and English, unit, source, polarity)."""

    id: str = Field(pattern=ID_RE.pattern)
    name_ko: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    unit: str = ""
    source: str = ""
    polarity: Polarity = "neutral"
    description_ko: str = ""
    description_en: str = ""
    method: dict | None = None
    #: New indicators are internal until someone publishes them (secure by default).
    access_level: Literal["public", "internal", "restricted"] = "internal"
    data_version: int | None = None
    years: list[int] = Field(default_factory=list)
    units: list[str] = Field(default_factory=list, description="area units with values")

    model_config = {"extra": "forbid"}

    @property
    def sources(self) -> tuple[str, ...]:
        """The layers this indicator was computed from (its ``method``), if recorded."""
        method = self.method or {}
        found = [method.get("source_layer"), *(method.get("source_layers") or [])]
        return tuple(dict.fromkeys(str(s) for s in found if s))

    @property
    def resource(self) -> Resource:
        """What the access decision rules on: an aggregate (no rows) of its source layers."""
        return Resource("indicator", self.id, self.access_level, has_rows=False,
                        sources=self.sources)


class AreaUnit(BaseModel):
    """A polygon layer used as the areas of indicators (code column from the catalog)."""

    id: str
    layer_id: str
    code_column: str
    name_column: str | None = None
    title: str
    title_ko: str


# --- area units --------------------------------------------------------------------------
def register_area_unit(conn: psycopg.Connection, unit_id: str, layer_id: str, code_column: str,
                       name_column: str | None, title: str, title_ko: str) -> AreaUnit:
    """Declare ``layer_id`` an area unit; its code (and name) columns must be catalogued."""
    if not ID_RE.match(unit_id):
        raise InvalidParameter(f"Invalid area unit id {unit_id!r}: use lower-case letters, digits, _.")
    layer = get_layer(conn, layer_id)
    if layer is None or layer.kind != "vector":
        raise InvalidParameter(f"No vector layer {layer_id!r} to use as area unit {unit_id!r}.")
    if "polygon" not in (layer.geometry_type or "").lower():
        raise InvalidParameter(f"Layer {layer_id!r} holds {layer.geometry_type}, not polygons.")
    for col in filter(None, (code_column, name_column)):
        if layer.attribute(col) is None:
            raise InvalidParameter(f"Layer {layer_id!r} has no attribute {col!r}; it has "
                                   f"{[a.name for a in layer.attributes]}.")
    conn.execute(
        "INSERT INTO gis_meta.area_units (id, layer_id, code_column, name_column, title, title_ko) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET layer_id = EXCLUDED.layer_id, "
        "code_column = EXCLUDED.code_column, name_column = EXCLUDED.name_column, "
        "title = EXCLUDED.title, title_ko = EXCLUDED.title_ko",
        (unit_id, layer_id, code_column, name_column, title, title_ko))
    return get_area_unit(conn, unit_id)


def get_area_unit(conn: psycopg.Connection, unit_id: str) -> AreaUnit:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM gis_meta.area_units WHERE id = %s", (unit_id,)).fetchone()
    if row is None:
        raise AreaUnitNotFound(f"No area unit {unit_id!r}; known: {list_area_unit_ids(conn)}.")
    return AreaUnit.model_validate({k: v for k, v in row.items() if k != "created_at"})


def list_area_unit_ids(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM gis_meta.area_units ORDER BY id")]


def list_area_units(conn: psycopg.Connection) -> list[AreaUnit]:
    return [get_area_unit(conn, i) for i in list_area_unit_ids(conn)]


def unit_layer(conn: psycopg.Connection, unit: AreaUnit) -> Layer:
    layer = get_layer(conn, unit.layer_id)
    if layer is None:
        raise AreaUnitNotFound(f"Area unit {unit.id!r} lost its layer {unit.layer_id!r}.")
    return layer


# --- indicators --------------------------------------------------------------------------
_IND_COLS = ("id", "name_ko", "name_en", "unit", "source", "polarity", "description_ko",
             "description_en", "method", "access_level", "data_version")


def upsert_indicator(conn: psycopg.Connection, ind: Indicator) -> Indicator:
    """Create or update a definition (a new data version either way)."""
    method = psycopg.types.json.Jsonb(ind.method) if ind.method is not None else None
    conn.execute(
        "INSERT INTO gis_meta.indicators (id, name_ko, name_en, unit, source, polarity, "
        "description_ko, description_en, method, access_level) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (id) DO UPDATE SET name_ko = EXCLUDED.name_ko, name_en = EXCLUDED.name_en, "
        "unit = EXCLUDED.unit, source = EXCLUDED.source, polarity = EXCLUDED.polarity, "
        "description_ko = EXCLUDED.description_ko, description_en = EXCLUDED.description_en, "
        "method = EXCLUDED.method, access_level = EXCLUDED.access_level, updated_at = now(), "
        "data_version = nextval('gis_meta.data_version_seq')",
        (ind.id, ind.name_ko, ind.name_en, ind.unit, ind.source, ind.polarity, ind.description_ko,
         ind.description_en, method, ind.access_level))
    return get_indicator(conn, ind.id)


def get_indicator(conn: psycopg.Connection, indicator_id: str) -> Indicator:
    found = list_indicators(conn, indicator_id)
    if not found:
        raise IndicatorNotFound(f"No indicator {indicator_id!r}.")
    return found[0]


def list_indicators(conn: psycopg.Connection, only: str | None = None) -> list[Indicator]:
    """Definitions with the years and area units that have values."""
    q = sql.SQL(
        "SELECT {cols}, "
        "COALESCE((SELECT array_agg(DISTINCT v.year ORDER BY v.year) FROM gis_meta.indicator_values v "
        "          WHERE v.indicator_id = i.id), '{{}}') AS years, "
        "COALESCE((SELECT array_agg(DISTINCT v.unit_id ORDER BY v.unit_id) FROM gis_meta.indicator_values v "
        "          WHERE v.indicator_id = i.id), '{{}}') AS units "
        "FROM gis_meta.indicators i {where} ORDER BY i.id").format(
        cols=sql.SQL(", ").join(sql.SQL("i.") + sql.Identifier(c) for c in _IND_COLS),
        where=sql.SQL("WHERE i.id = %s") if only else sql.SQL(""))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(q, (only,) if only else ()).fetchall()
    return [Indicator.model_validate(r) for r in rows]


def delete_values(conn: psycopg.Connection, indicator_id: str, unit_id: str,
                  years: list[int] | None = None) -> None:
    if years is None:
        conn.execute("DELETE FROM gis_meta.indicator_values WHERE indicator_id = %s AND unit_id = %s",
                     (indicator_id, unit_id))
    else:
        conn.execute("DELETE FROM gis_meta.indicator_values WHERE indicator_id = %s AND unit_id = %s "
                     "AND year = ANY(%s)", (indicator_id, unit_id, years))


def _bump(conn: psycopg.Connection, indicator_id: str) -> None:
    conn.execute("UPDATE gis_meta.indicators SET data_version = nextval('gis_meta.data_version_seq'), "
                 "updated_at = now() WHERE id = %s", (indicator_id,))


def area_codes(conn: psycopg.Connection, unit: AreaUnit) -> pd.DataFrame:
    """The unit's areas: ``code`` and ``name`` (both text)."""
    layer = unit_layer(conn, unit)
    name = sql.Identifier(unit.name_column) if unit.name_column else sql.Identifier(unit.code_column)
    rows = conn.execute(sql.SQL("SELECT {c}::text, {n}::text FROM {t}").format(
        c=sql.Identifier(unit.code_column), n=name, t=layer.table())).fetchall()
    return pd.DataFrame(rows, columns=["code", "name"])


def load_values(conn: psycopg.Connection, indicator_id: str, unit_id: str, frame: pd.DataFrame, *,
                replace_years: bool = True) -> dict:
    """Store ``frame`` (columns ``area_code``, ``year``, ``value``) for one indicator and unit.

    Area codes must exist in the unit's layer: unknown codes are an error listing a few of
    them (a CSV joined on the wrong code system is the usual cause).  With ``replace_years``
    the years present in ``frame`` are replaced as a whole; one transaction either way.
    """
    get_indicator(conn, indicator_id)
    unit = get_area_unit(conn, unit_id)
    missing_cols = {"area_code", "year", "value"} - set(frame.columns)
    if missing_cols:
        raise InvalidParameter(f"Values need columns area_code, year, value; missing {sorted(missing_cols)}.")
    df = frame[["area_code", "year", "value"]].copy()
    df["area_code"] = df["area_code"].astype(str).str.strip()
    try:
        df["year"] = pd.to_numeric(df["year"], errors="raise").astype(int)
    except (ValueError, TypeError) as exc:
        raise Unprocessable(f"Years must be whole numbers: {exc}") from None
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    if df.duplicated(["area_code", "year"]).any():
        dup = df[df.duplicated(["area_code", "year"], keep=False)].head(3)
        raise Unprocessable(f"Duplicate area/year rows, e.g. {dup[['area_code', 'year']].values.tolist()}.")
    codes = set(area_codes(conn, unit)["code"])
    unknown = sorted(set(df["area_code"]) - codes)
    if unknown:
        raise Unprocessable(
            f"{len(unknown)} area codes are not in area unit {unit_id!r} (layer {unit.layer_id}, "
            f"column {unit.code_column}), e.g. {unknown[:5]}; it has codes like {sorted(codes)[:3]}. "
            "Is the file keyed on another code system (KOSTAT vs MOIS vs election codes)?")
    with conn.transaction():
        if replace_years:
            delete_values(conn, indicator_id, unit_id, sorted(set(df["year"].tolist())))
        with conn.cursor().copy("COPY gis_meta.indicator_values (indicator_id, unit_id, area_code, year, "
                                "value) FROM STDIN") as cp:
            values = df["value"].astype(object).where(df["value"].notna(), None)
            for code, year, value in zip(df["area_code"], df["year"], values):
                cp.write_row((indicator_id, unit_id, code, int(year), value))
        _bump(conn, indicator_id)
    return {"indicator": indicator_id, "unit": unit_id, "rows": len(df),
            "years": sorted(set(df["year"].tolist())), "areas": int(df["area_code"].nunique())}


def read_values(conn: psycopg.Connection, indicator_id: str, unit_id: str,
                years: list[int] | None = None) -> pd.DataFrame:
    """Values as a long frame: area_code, year, value (sorted)."""
    q = ("SELECT area_code, year, value FROM gis_meta.indicator_values WHERE indicator_id = %s "
         "AND unit_id = %s" + (" AND year = ANY(%s)" if years else "") + " ORDER BY year, area_code")
    params = (indicator_id, unit_id, years) if years else (indicator_id, unit_id)
    rows = conn.execute(q, params).fetchall()
    return pd.DataFrame(rows, columns=["area_code", "year", "value"])


def read_csv_values(path: Path, *, code_column: str, value_column: str | None = None,
                    year: int | None = None, year_column: str | None = None,
                    year_columns: dict[int, str] | None = None, encoding: str = "utf-8-sig",
                    sep: str | None = None) -> pd.DataFrame:
    """A CSV/TSV as (area_code, year, value): long (year column), single year, or wide.

    Wide files (one column per year, e.g. ``2014년``) are given as ``year_columns``.  A BOM is
    stripped by the default encoding; a trailing total row (합계/소계/계) is dropped.
    """
    if not path.exists():
        raise InvalidParameter(f"No such file: {path}")
    sep = sep or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, encoding=encoding)
    except UnicodeDecodeError:
        raise InvalidParameter(f"{path.name} is not {encoding}; try --encoding cp949.") from None
    df.columns = [c.strip() for c in df.columns]

    def need(col: str) -> None:
        if col not in df.columns:
            raise InvalidParameter(f"{path.name} has no column {col!r}; it has {list(df.columns)}.")

    need(code_column)
    df = df[~df[code_column].fillna("").str.strip().isin(["합계", "소계", "계", "total", "Total", ""])]
    if year_columns:
        for c in year_columns.values():
            need(c)
        long = df.melt(id_vars=[code_column], value_vars=list(year_columns.values()),
                       var_name="col", value_name="value")
        inv = {c: y for y, c in year_columns.items()}
        long["year"] = long["col"].map(inv)
    else:
        if value_column is None:
            raise InvalidParameter("Name the value column (--value-column) or the year columns.")
        need(value_column)
        if year_column:
            need(year_column)
            long = df[[code_column, year_column, value_column]].rename(
                columns={year_column: "year", value_column: "value"})
        elif year is not None:
            long = df[[code_column, value_column]].rename(columns={value_column: "value"})
            long["year"] = year
        else:
            raise InvalidParameter("Give the year (--year) or a year column (--year-column).")
    long = long.rename(columns={code_column: "area_code"})
    long["value"] = pd.to_numeric(long["value"].astype(str).str.replace(",", "").str.strip(),
                                  errors="coerce")
    return long[["area_code", "year", "value"]].reset_index(drop=True)


def codes_by_name(conn: psycopg.Connection, unit_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Replace area *names* in ``frame.area_code`` by the unit's codes (joins keyed by name)."""
    unit = get_area_unit(conn, unit_id)
    if not unit.name_column:
        raise InvalidParameter(f"Area unit {unit_id!r} has no name column to join on.")
    areas = area_codes(conn, unit)
    if areas["name"].duplicated().any():
        raise Unprocessable(f"Names in area unit {unit_id!r} are not unique; join on codes instead.")
    lookup = dict(zip(areas["name"], areas["code"]))
    out = frame.copy()
    names = out["area_code"].astype(str).str.strip()
    unknown = sorted(set(names) - set(lookup))
    if unknown:
        raise Unprocessable(f"Names not found in area unit {unit_id!r}: {unknown[:5]}.")
    out["area_code"] = names.map(lookup)
    return out


def strictest(levels: list[str]) -> str:
    """The most restrictive of some access levels."""
    return max(levels or ["public"], key=LEVELS.index)


__all__ = ["AreaUnit", "Indicator", "IndicatorNotFound", "area_codes", "codes_by_name", "get_area_unit",
           "get_indicator", "list_area_units", "list_indicators", "load_values", "read_csv_values",
           "read_values", "register_area_unit", "strictest", "upsert_indicator"]


def readable_indicator(ind: Indicator, principal: Principal) -> bool:
    """For listings (not audited): may this caller see the indicator?"""
    return access.decide(principal, "read", ind.resource).allowed


def check_indicator(ind: Indicator, principal: Principal) -> Indicator:
    """The indicator if this caller may read it (audited), else the 404 of a missing one."""
    access.authorize(principal, "read", ind.resource,
                     hidden=IndicatorNotFound(f"No indicator {ind.id!r}."))
    return ind
