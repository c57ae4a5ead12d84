"""Feature queries (OGC API Features Part 1-3): request parameters -> an :class:`ItemsQuery`.

Shared by the FastAPI routes and the fast items route, the spatial operators and exports;
:mod:`features.sql` turns a query into one statement.  Contracts:

* :func:`parse_items_query` validates every query parameter of ``/items`` (and of the
  spatial and export routes, which share them) and returns an :class:`ItemsQuery`.  Bad
  input of any kind raises :class:`InvalidParameter` (400); unknown parameters too, except
  attribute names, which act as equality filters (Part 1 "filtering on properties").
* SQL is composed from catalog identifiers only; request values are always parameters.
* Features are rendered to GeoJSON text *in PostGIS* (string concatenation of
  ``ST_AsGeoJSON`` and ``json_build_object``) and joined in Python, which avoids building a
  Python object per feature.  The page and ``numberMatched`` come from one statement (one
  snapshot), so the count and the page always agree and ``next`` links are exact; the
  ``count(*)`` runs only when the page is full (a partial page already tells the total), and
  once per condition and data version (:class:`CountCache`): the next pages reuse it.
* Paging is ``ORDER BY <sortby...>, fid`` with ``LIMIT``/``OFFSET``: deterministic, so a
  pull that follows ``next`` links returns every feature exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from psycopg import sql

from features.cql import kind_of, parse_filter, to_sql
from gis_platform.errors import InvalidParameter
from gis_platform.principal import Principal
from layers.catalog import Layer
from layers.edit import as_of_source, parse_as_of
from layers.registry import Registry
from layers.relation import RowSource, arg_names, parse_args
from layers.spatial import (
    CRS84_REF,
    CrsRef,
    Frag,
    bbox_filter,
    default_precision,
    parse_bbox,
    parse_crs,
)

#: Query parameters understood by every feature-returning route.
ITEMS_PARAMS = {"f", "bbox", "bbox-crs", "crs", "limit", "offset", "properties", "sortby", "datetime",
                "filter", "filter-lang", "filter-crs", "asOf"}
MAX_SORT_KEYS = 5
_INT64_MAX = 2**63 - 1
_JSON_PAIRS_PER_CALL = 50       # json_build_object takes at most 100 arguments


@dataclass
class ItemsQuery:
    """A validated feature query on one layer."""

    layer: Layer
    where: list[Frag] = field(default_factory=list)
    properties: list[str] | None = None          # None: every attribute
    sortby: list[tuple[str, bool]] = field(default_factory=list)   # (column, descending)
    limit: int = 100
    offset: int = 0
    crs: CrsRef = CRS84_REF
    precision: int = 7
    #: A function layer's arguments (typed), from the query parameters named after them.
    args: dict = field(default_factory=dict)
    #: ``asOf``: the layer as it was then (an editable layer's history).
    as_of: dt.datetime | None = None

    @property
    def rows(self) -> RowSource:
        return self.layer.rows

    @property
    def source(self) -> Frag:
        """The ``FROM`` item (a function layer: called with :attr:`args`; ``asOf``: the rows
        as they were)."""
        if self.as_of is not None:
            text, params = as_of_source(self.layer, self.as_of)
            return Frag(text, params)
        return self.rows.from_(self.args)

    def where_frag(self) -> Frag:
        if not self.where:
            return Frag(sql.SQL("TRUE"))
        return Frag.join(self.where, " AND ")

    def order_sql(self) -> sql.Composable:
        return order_sql(self.sortby, self.rows)

    def selected_attributes(self) -> list[str]:
        names = [a.name for a in self.layer.attributes]
        return names if self.properties is None else [n for n in names if n in self.properties]


# --- parameter parsing ---------------------------------------------------------------------
def parse_int(value: str | None, name: str, default: int, *, lo: int, hi: int) -> int:
    """An integer parameter within [lo, hi], or a 400 that says what is allowed."""
    if value is None or value == "":
        return default
    try:
        n = int(value.strip())
    except ValueError:
        raise InvalidParameter(f"{name} must be an integer.", parameter=name) from None
    if n < lo or n > hi:
        raise InvalidParameter(f"{name} must be between {lo} and {hi}; got {n}.", parameter=name)
    return n


def parse_limit(params: Mapping[str, str], settings) -> int:
    """``limit``: a whole number from 1; above ``features.max_limit`` it is clamped to the
    maximum, not refused (OGC API Features Part 1, parameter ``limit``: a server may return
    fewer features than asked, with a ``next`` link), so clients that ask for everything at
    once (GDAL's ``PAGE_SIZE=20000``, OWSLib's ``limit=20000``) get pages of the maximum.
    A number no 64-bit integer holds is malformed, not large: a 400."""
    maximum = int(settings.features.max_limit)
    value = params.get("limit")
    if value is None or value == "":
        return min(int(settings.features.default_limit), maximum)
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if not 1 <= n <= _INT64_MAX:
        raise InvalidParameter(f"limit must be a whole number, 1 or more (a page holds at most "
                               f"{maximum:,} features: a larger limit gets pages of {maximum:,} "
                               f"and next links); got {value.strip()[:20]!r}.", parameter="limit")
    return min(n, maximum)


def _names(value: str, param: str) -> list[str]:
    if len(value) > 4000:
        raise InvalidParameter(f"{param} is too long.", parameter=param)
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_properties(value: str | None, layer: Layer) -> list[str] | None:
    """``properties=a,b``: only these attributes (in catalog order).  Unknown -> 400."""
    if value is None:
        return None
    wanted = _names(value, "properties")
    unknown = [n for n in wanted if layer.attribute(n) is None]
    if unknown:
        raise InvalidParameter(f"Unknown properties {[u[:60] for u in unknown[:5]]}; the layer has: "
                               + ", ".join(a.name for a in layer.attributes[:40]) + ".",
                               parameter="properties")
    return list(dict.fromkeys(wanted))


def parse_sortby(value: str | None, layer: Layer) -> list[tuple[str, bool]]:
    """``sortby=+name,-fid`` (a leading ``-`` sorts descending)."""
    if not value:
        return []
    keys = []
    for item in _names(value, "sortby"):
        desc = item.startswith("-")
        name = item.lstrip("+-").strip()
        if name in ("fid", "id") and layer.attribute(name) is None:
            name = "fid"
        elif layer.attribute(name) is None:
            raise InvalidParameter(f"Cannot sort by unknown property {name[:60]!r}.", parameter="sortby")
        keys.append((name, desc))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidParameter(f"sortby takes at most {MAX_SORT_KEYS} properties.", parameter="sortby")
    return keys


def _parse_instant(text: str) -> dt.datetime | dt.date:
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"datetime {text[:40]!r} is not an RFC 3339 date or date-time "
                               "(e.g. 2024-05-01 or 2024-05-01T09:00:00Z).", parameter="datetime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def datetime_filter(value: str, layer: Layer) -> Frag:
    """``datetime`` (an instant or ``start/end`` with ``..`` for open ends) on the time column."""
    if not layer.time_column or layer.attribute(layer.time_column) is None:
        raise InvalidParameter(f"Layer '{layer.id}' has no time column; datetime cannot be used.",
                               parameter="datetime")
    attr = layer.attribute(layer.time_column)
    if kind_of(attr.type) not in ("date", "timestamp"):
        raise InvalidParameter(f"The time column of layer '{layer.id}' is not a date type.",
                               parameter="datetime")
    col = sql.Identifier(attr.name)
    if len(value) > 100:
        raise InvalidParameter("datetime is too long.", parameter="datetime")
    if "/" not in value:
        inst = _parse_instant(value)
        if isinstance(inst, dt.datetime):
            return Frag(sql.SQL("{} = %s").format(col), [inst])
        # A date matches the whole day, whatever the column's precision.
        return Frag(sql.SQL("({c} >= %s AND {c} < %s)").format(c=col), [inst, inst + dt.timedelta(days=1)])
    start_s, _, end_s = value.partition("/")
    parts: list[Frag] = []
    if start_s.strip() not in ("", ".."):
        parts.append(Frag(sql.SQL("{} >= %s").format(col), [_parse_instant(start_s)]))
    if end_s.strip() not in ("", ".."):
        end = _parse_instant(end_s)
        if isinstance(end, dt.datetime):
            parts.append(Frag(sql.SQL("{} <= %s").format(col), [end]))
        else:
            parts.append(Frag(sql.SQL("{} < %s").format(col), [end + dt.timedelta(days=1)]))
    if not parts:
        raise InvalidParameter("datetime '../..' is not a valid interval.", parameter="datetime")
    if len(parts) == 2 and parts[0].params[0].__class__ is parts[1].params[0].__class__ \
            and parts[0].params[0] > parts[1].params[0]:
        raise InvalidParameter("datetime interval ends before it starts.", parameter="datetime")
    return Frag(sql.SQL("({})").format(Frag.join(parts, " AND ").sql), [p for f in parts for p in f.params])


def property_filter(name: str, value: str, layer: Layer) -> Frag:
    """``?name=value``: equality on an attribute, the value typed by the column."""
    attr = layer.attribute(name)
    kind = kind_of(attr.type)
    col = sql.Identifier(attr.name)
    try:
        if kind == "number":
            typed: object = int(value) if value.lstrip("-").isdigit() else float(value)
        elif kind == "bool":
            if value.lower() not in ("true", "false"):
                raise ValueError
            typed = value.lower() == "true"
        elif kind in ("date", "timestamp"):
            typed = _parse_instant(value)
        else:
            typed = value
    except ValueError:
        raise InvalidParameter(f"{name} must be a {kind} value.", parameter=name) from None
    return Frag(sql.SQL("{} = %s").format(col), [typed])


def row_filter_frag(principal: Principal, layer: Layer) -> Frag | None:
    """The caller's row filter on ``layer`` as a :class:`Frag` (None: every row is visible)."""
    rows = Registry.rows_of(principal, layer)
    return rows.frag() if rows is not None else None


async def items_query(params: Mapping[str, str], layer: Layer, settings, *, principal: Principal,
                      **kw) -> ItemsQuery:
    """:func:`parse_items_query` for async routes: a request with a CQL2 ``filter`` is parsed
    in a worker thread, so a heavy filter never holds up the event loop."""
    if "filter" in params:
        return await asyncio.to_thread(parse_items_query, params, layer, settings,
                                       principal=principal, **kw)
    return parse_items_query(params, layer, settings, principal=principal, **kw)


def parse_items_query(params: Mapping[str, str], layer: Layer, settings, *, principal: Principal,
                      allowed: set[str] = frozenset(), paging: bool = True) -> ItemsQuery:
    """Validate the feature query parameters of a request (see the module docstring).

    The caller's row filter (``Registry.rows_of``) is the first condition of the query,
    so every statement built from it (pages, features, exports, statistics) applies it.
    """
    arg_names = function_args(layer)
    for key in params:
        if key not in ITEMS_PARAMS and key not in allowed and key not in arg_names \
                and layer.attribute(key) is None:
            raise InvalidParameter(f"Unknown query parameter {key[:60]!r}.", parameter=key[:60])
    crs = parse_crs(params.get("crs"), settings.features, param="crs")
    q = ItemsQuery(layer=layer, crs=crs, precision=default_precision(crs, settings.features))
    q.args = parse_function_args(params, layer)
    if params.get("asOf"):
        q.as_of = parse_as_of(params["asOf"], layer)
    rows = row_filter_frag(principal, layer)
    if rows is not None:
        q.where.append(rows)
    if paging:
        q.limit = parse_limit(params, settings)
        q.offset = parse_int(params.get("offset"), "offset", 0, lo=0, hi=2**62)
    q.properties = parse_properties(params.get("properties"), layer)
    q.sortby = parse_sortby(params.get("sortby"), layer)
    if params.get("bbox-crs") and not params.get("bbox"):
        raise InvalidParameter("bbox-crs needs a bbox.", parameter="bbox-crs")
    if params.get("bbox") is not None:
        bbox_crs = parse_crs(params.get("bbox-crs"), settings.features, param="bbox-crs")
        q.where.append(bbox_filter(parse_bbox(params["bbox"], bbox_crs), bbox_crs,
                                   q.rows.geom(), q.rows.srid))
    if params.get("datetime"):
        q.where.append(datetime_filter(params["datetime"], layer))
    if params.get("filter") is not None:
        if not params["filter"].strip():
            raise InvalidParameter("filter is empty.", parameter="filter")
        filter_crs = parse_crs(params.get("filter-crs"), settings.features, param="filter-crs")
        q.where.append(to_sql(parse_filter(params["filter"], params.get("filter-lang")), layer, filter_crs))
    elif params.get("filter-lang") or params.get("filter-crs"):
        raise InvalidParameter("filter-lang and filter-crs need a filter.", parameter="filter")
    for key, value in params.items():
        if key not in ITEMS_PARAMS and key not in allowed and key not in arg_names \
                and layer.attribute(key) is not None:
            q.where.append(property_filter(key, value, layer))
    return q


def function_args(layer: Layer) -> set[str]:
    """The query parameters a function layer takes (its arguments)."""
    return arg_names(layer.relation)


def parse_function_args(params: Mapping[str, str], layer: Layer) -> dict:
    """A function layer's arguments from the query, typed; a missing required one -> 400."""
    return parse_args(layer.relation, params)


# --- SQL ---------------------------------------------------------------------------------


def order_sql(sortby: list[tuple[str, bool]], rows: RowSource) -> sql.Composable:
    """``ORDER BY`` keys: the sort keys (nulls last), then the layer's key (``fid``: the
    feature id) as the tie-breaker, so paging is deterministic."""
    keys = [sql.SQL("{} {} NULLS LAST").format(sql.Identifier(c), sql.SQL("DESC" if d else "ASC"))
            for c, d in sortby if c != "fid"]
    fid_desc = next((d for c, d in sortby if c == "fid"), False)
    keys += rows.order(descending=fid_desc)
    if not keys:
        return sql.SQL("1")
    return sql.SQL(", ").join(keys)
