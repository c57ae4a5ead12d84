"""CQL2 (OGC API Features Part 3) filters -> parameterized PostGIS SQL.

CQL2 text is parsed with our own grammar (``features/cql2.lark``) into pygeofilter's AST,
CQL2-JSON with pygeofilter's walker; the SQL is ours.  Contracts:

* :func:`parse_filter` turns ``filter`` text (``cql2-text``) or JSON (``cql2-json``) into a
  pygeofilter AST, or raises :class:`InvalidParameter` with the position of a syntax error.
  Beyond pygeofilter 0.4's own grammar: ``S_DWITHIN(a, b, distance[, units])``, the function
  form of temporal operators (``T_AFTER(a, b)``), one-letter property names and ``''``
  inside strings in text; in JSON, ``between`` as ``[a, low, high]``,
  ``{"bbox": [minx, miny, maxx, maxy]}`` and ``s_dwithin``.
* :func:`to_sql` translates the AST into a :class:`Frag`: every value is a query
  parameter, every property name must be one of the layer's catalog attributes (quoted with
  ``sql.Identifier``), and types are checked up front so a bad comparison is a 400, never a
  database error.  Geometry literals are in ``filter-crs`` (default CRS84) and are
  transformed to the storage CRS; distances in ``S_DWITHIN`` are metres on the ellipsoid.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pygeofilter.parsers
from lark import Lark, v_args
from lark.exceptions import LarkError
from psycopg import sql
from pygeofilter import ast, values
from pygeofilter.cql2 import TEMPORAL_PREDICATES_MAP
from pygeofilter.parsers.cql2_text.parser import CQLTransformer

from gis_platform.errors import InvalidParameter
from layers.catalog import Layer
from layers.relation import arg_schema
from layers.spatial import (
    CrsRef,
    Frag,
    envelope_sql,
    geometry_sql,
    parse_bbox,
    shape_from_geojson,
    within_metres,
)

MAX_FILTER_CHARS = 20_000
#: After parsing: at most this many predicates (comparisons, LIKE, spatial tests...) and this
#: deep a nesting of AND/OR/NOT groups (a chain of one operator counts once).  A filter past
#: either is a 400 that says the limit; nothing of it reaches the database.
MAX_FILTER_TERMS = 200
MAX_FILTER_DEPTH = 20
#: ``filter-lang`` values; ``cql-text`` (the pre-standard draft name, sent by GDAL <= 3.6) is
#: read as CQL2 text, which covers the comparisons such clients generate.
FILTER_LANGS = ("cql2-text", "cql2-json", "cql-text")
MAX_IN_VALUES = 1_000
GEOMETRY_NAMES = ("geometry", "geom")

_NUMERIC = {"bigint", "integer", "smallint", "double precision", "real", "numeric"}
_TEMPORAL = {"date", "timestamp", "timestamptz", "timestamp without time zone",
             "timestamp with time zone"}


def kind_of(pg_type: str) -> str:
    """The CQL2 value kind of a PostgreSQL column type."""
    t = pg_type.lower()
    if t in _NUMERIC or t.startswith("numeric"):
        return "number"
    if t == "boolean":
        return "bool"
    if t == "date":
        return "date"
    if t in _TEMPORAL or t.startswith("timestamp"):
        return "timestamp"
    return "text"


# --- parsing -----------------------------------------------------------------------------
GRAMMAR = Path(__file__).with_name("cql2.lark")


@v_args(meta=False, inline=True)
class _Transformer(CQLTransformer):
    """pygeofilter's AST from our grammar (features/cql2.lark): its methods, plus the forms
    its own grammar lacks."""

    def dwithin_predicate(self, lhs, rhs, distance, units="meters"):
        return ast.DistanceWithin(lhs, rhs, distance, str(units))

    def temporal_function(self, op, lhs, rhs):
        return TEMPORAL_PREDICATES_MAP[str(op).lower()](lhs, rhs)

    def temporal_infix(self, lhs, op, rhs):
        return TEMPORAL_PREDICATES_MAP[str(op).lower()](lhs, rhs)

    def SINGLE_QUOTED(self, token):
        return token[1:-1].replace("''", "'")      # '' is a quote inside a CQL2 string


@lru_cache(maxsize=1)
def _text_parser() -> Lark:
    """The CQL2 text parser (LALR, built once): our grammar file and transformer."""
    return Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", maybe_placeholders=False,
                transformer=_Transformer(), import_paths=[str(Path(pygeofilter.parsers.__file__).parent)])


def _lark_message(exc: Exception) -> str:
    col = getattr(exc, "column", None)
    if col not in (None, -1):
        return f"syntax error at character {col}"
    return "syntax error"


def parse_filter(text: str, lang: str | None = None) -> ast.Node:
    """Parse a ``filter`` parameter (``filter-lang`` cql2-text, the default, or cql2-json)."""
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidParameter(f"filter is longer than {MAX_FILTER_CHARS} characters.",
                               parameter="filter")
    lang = (lang or "").strip().lower() or ("cql2-json" if text.lstrip().startswith("{") else "cql2-text")
    if lang == "cql2-json":
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise InvalidParameter("filter is not valid JSON (filter-lang=cql2-json).",
                                   parameter="filter") from None
        return check_limits(parse_filter_json(doc))
    if lang not in ("cql2-text", "cql-text"):
        raise InvalidParameter(f"Unsupported filter-lang {lang[:40]!r}: use cql2-text or cql2-json.",
                               parameter="filter-lang")
    try:
        node = _text_parser().parse(text)
    except LarkError as exc:
        inner = getattr(exc, "orig_exc", None)
        if isinstance(inner, InvalidParameter):
            raise inner from None
        raise InvalidParameter(f"Invalid CQL2 filter: {_lark_message(exc)}.", parameter="filter") from None
    except (ValueError, TypeError):
        raise InvalidParameter("Invalid CQL2 filter.", parameter="filter") from None
    except RecursionError:
        raise InvalidParameter(f"filter is nested more than {MAX_FILTER_DEPTH} levels deep.",
                               parameter="filter") from None
    return check_limits(node)


def _logical_parts(node: Any) -> list[Any]:
    """The operands of a chain of one logical operator (``a AND b AND c``), flattened
    without recursion (pygeofilter nests them in pairs)."""
    kind = type(node)
    parts, stack = [], [node]
    while stack:
        n = stack.pop()
        if type(n) is kind:
            stack.extend([n.rhs, n.lhs])
        else:
            parts.append(n)
    return parts


def check_limits(node: Any) -> Any:
    """Refuse a parsed filter with too many predicates or too deep a nesting (a 400 that
    says the limit).  Iterative: a hostile filter cannot exhaust the stack here."""
    terms = 0
    stack = [(node, 1)]
    while stack:
        n, depth = stack.pop()
        if isinstance(n, (ast.And, ast.Or)):
            if depth > MAX_FILTER_DEPTH:
                raise InvalidParameter(f"filter nests AND/OR/NOT groups more than "
                                       f"{MAX_FILTER_DEPTH} levels deep; simplify it.",
                                       parameter="filter")
            stack.extend((p, depth + 1) for p in _logical_parts(n))
        elif isinstance(n, ast.Not):
            if depth > MAX_FILTER_DEPTH:
                raise InvalidParameter(f"filter nests AND/OR/NOT groups more than "
                                       f"{MAX_FILTER_DEPTH} levels deep; simplify it.",
                                       parameter="filter")
            stack.append((n.sub_node, depth + 1))
        else:
            terms += 1
            if terms > MAX_FILTER_TERMS:
                raise InvalidParameter(f"filter has more than {MAX_FILTER_TERMS} conditions; "
                                       "split the query or use IN (...) for lists of values.",
                                       parameter="filter")
    return node


_JSON_SPATIAL = {"s_intersects": ast.GeometryIntersects, "s_equals": ast.GeometryEquals,
                 "s_disjoint": ast.GeometryDisjoint, "s_touches": ast.GeometryTouches,
                 "s_within": ast.GeometryWithin, "s_overlaps": ast.GeometryOverlaps,
                 "s_crosses": ast.GeometryCrosses, "s_contains": ast.GeometryContains}


def parse_filter_json(doc: Any) -> ast.Node:
    """CQL2-JSON -> AST.  Leaves go through pygeofilter's own JSON walker."""
    try:
        return _walk_json(doc, depth=0)
    except InvalidParameter:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise InvalidParameter("Invalid CQL2-JSON filter.", parameter="filter") from None


def _walk_json(node: Any, depth: int) -> Any:
    from pygeofilter.cql2 import BINARY_OP_PREDICATES_MAP
    from pygeofilter.parsers.cql2_json.parser import walk_cql_json

    if depth > 4 * MAX_FILTER_DEPTH + 8:
        raise InvalidParameter(f"filter is nested more than {MAX_FILTER_DEPTH} levels deep.",
                               parameter="filter")
    if isinstance(node, list):
        return [_walk_json(n, depth + 1) for n in node]
    if not isinstance(node, dict):
        if node is None:
            raise InvalidParameter("null is not a CQL2 value.", parameter="filter")
        return walk_cql_json(node)
    if "bbox" in node and "op" not in node:
        b = [float(v) for v in node["bbox"]]
        if len(b) == 6:
            b = [b[0], b[1], b[3], b[4]]
        if len(b) != 4:
            raise InvalidParameter("A CQL2 bbox needs 4 numbers.", parameter="filter")
        return values.Envelope(b[0], b[2], b[1], b[3])   # pygeofilter's order: x1, x2, y1, y2
    if "op" not in node:
        return walk_cql_json(node)
    op = str(node["op"])
    args = node.get("args")
    if not isinstance(args, list):
        args = [args]
    walk = [_walk_json(a, depth + 1) for a in args]
    if op in ("and", "or"):
        if len(walk) < 2:
            raise InvalidParameter(f"'{op}' needs at least two arguments.", parameter="filter")
        return (ast.And if op == "and" else ast.Or).from_items(*walk)
    if op == "not":
        return ast.Not(walk[0])
    if op == "isNull":
        return ast.IsNull(walk[0], not_=False)
    if op == "between":
        low, high = (walk[1][0], walk[1][1]) if len(walk) == 2 else (walk[1], walk[2])
        return ast.Between(walk[0], low, high, not_=False)
    if op == "like":
        return ast.Like(walk[0], walk[1], False, "%", "_", "\\", False)
    if op == "in":
        return ast.In(walk[0], list(walk[1]), not_=False)
    if op in ("casei", "lower"):
        return ast.Function("lower", [walk[0]])
    if op == "s_dwithin":
        units = walk[3] if len(walk) > 3 else "meters"
        return ast.DistanceWithin(walk[0], walk[1], walk[2], units)
    if op in _JSON_SPATIAL:
        return _JSON_SPATIAL[op](walk[0], walk[1])
    if op in BINARY_OP_PREDICATES_MAP:
        if len(walk) != 2:
            raise InvalidParameter(f"CQL2 operator {op!r} needs two arguments.", parameter="filter")
        return BINARY_OP_PREDICATES_MAP[op](*walk)
    raise InvalidParameter(f"Unsupported CQL2 operator {op[:40]!r}.", parameter="filter")


# --- translation -------------------------------------------------------------------------
@dataclass
class Expr:
    frag: Frag
    kind: str          # number | text | bool | date | timestamp | geometry | null


_COMPARISON = {ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
               ast.GreaterThan: ">", ast.GreaterEqual: ">="}
_SPATIAL = {ast.GeometryIntersects: "ST_Intersects", ast.GeometryDisjoint: "ST_Disjoint",
            ast.GeometryContains: "ST_Contains", ast.GeometryWithin: "ST_Within",
            ast.GeometryTouches: "ST_Touches", ast.GeometryCrosses: "ST_Crosses",
            ast.GeometryOverlaps: "ST_Overlaps", ast.GeometryEquals: "ST_Equals"}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mul: "*", ast.Div: "/"}
_METRES = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
           "km": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "kilometre": 1000.0,
           "kilometres": 1000.0, "ft": 0.3048, "feet": 0.3048, "mi": 1609.344, "miles": 1609.344}
_RELATE = re.compile(r"^[012TF*]{9}$", re.IGNORECASE)


class Translator:
    """Translate one parsed filter for one layer.  Use :func:`to_sql`."""

    def __init__(self, layer: Layer, filter_crs: CrsRef) -> None:
        self.layer = layer
        self.crs = filter_crs

    # expressions ---------------------------------------------------------------------
    def attribute(self, name: str) -> Expr:
        rows = self.layer.rows
        if name in GEOMETRY_NAMES and self.layer.attribute(name) is None:
            return Expr(Frag(rows.geom()), "geometry")
        if name in ("fid", "id") and self.layer.attribute(name) is None:
            if rows.id_kind == "none":
                raise InvalidParameter(f"Features of '{self.layer.id}' have no id (no key column).",
                                       parameter="filter")
            return Expr(Frag(rows.fid()), "number" if rows.id_kind == "int" else "text")
        attr = self.layer.attribute(name)
        if attr is None:
            known = ", ".join(a.name for a in self.layer.attributes[:40])
            raise InvalidParameter(f"Unknown property {name[:60]!r} in filter; queryables are: "
                                   f"{known or '(none)'}, geometry.", parameter="filter")
        return Expr(Frag(sql.Identifier(attr.name)), kind_of(attr.type))

    def literal(self, value: Any) -> Expr:
        if isinstance(value, bool):
            return Expr(Frag(sql.SQL("%s"), [value]), "bool")
        if isinstance(value, (int, float)):
            if isinstance(value, float) and math.isnan(value):
                raise InvalidParameter("NaN is not a valid filter value.", parameter="filter")
            return Expr(Frag(sql.SQL("%s"), [value]), "number")
        if isinstance(value, str):
            return Expr(Frag(sql.SQL("%s"), [value]), "text")
        if isinstance(value, dt.datetime):
            return Expr(Frag(sql.SQL("%s::timestamptz"), [value]), "timestamp")
        if isinstance(value, dt.date):
            return Expr(Frag(sql.SQL("%s::date"), [value]), "date")
        if isinstance(value, (values.Geometry, values.Envelope)):
            return self.geometry_literal(value)
        raise InvalidParameter(f"Unsupported value in filter: {type(value).__name__}.",
                               parameter="filter")

    def geometry_literal(self, value) -> Expr:
        if isinstance(value, values.Envelope):
            box = f"{value.x1},{value.y1},{value.x2},{value.y2}"
            if self.crs.north_first:   # literal is in filter-crs axis order
                box = f"{value.y1},{value.x1},{value.y2},{value.x2}"
            minx, miny, maxx, maxy = parse_bbox(box, self.crs, param="filter")
            return Expr(envelope_sql((minx, miny, maxx, maxy), self.crs, self.layer.rows.srid),
                        "geometry")
        shape = shape_from_geojson(value.geometry, param="filter")
        return Expr(geometry_sql(shape, self.crs, param="filter", srid=self.layer.rows.srid),
                    "geometry")

    def expr(self, node: Any) -> Expr:
        if isinstance(node, ast.Attribute):
            return self.attribute(node.name)
        if isinstance(node, ast.Function):
            if node.name.lower() == "lower" and len(node.arguments) == 1:
                inner = self.expr(node.arguments[0])
                if inner.kind != "text":
                    raise InvalidParameter("CASEI() applies to text only.", parameter="filter")
                return Expr(Frag(sql.SQL("lower({})").format(inner.frag.sql), inner.frag.params), "text")
            if node.name.lower() == "bbox" and len(node.arguments) in (4, 6):
                a = [float(v) for v in node.arguments]
                a = [a[0], a[1], a[3], a[4]] if len(a) == 6 else a
                return self.geometry_literal(values.Envelope(a[0], a[2], a[1], a[3]))
            raise InvalidParameter(f"Unsupported function {str(node.name)[:40]!r} in filter.",
                                   parameter="filter")
        if type(node) in _ARITH:
            lhs, rhs = self.expr(node.lhs), self.expr(node.rhs)
            if lhs.kind != "number" or rhs.kind != "number":
                raise InvalidParameter("Arithmetic needs numbers.", parameter="filter")
            return Expr(Frag(sql.SQL("({} {} {})").format(lhs.frag.sql, sql.SQL(_ARITH[type(node)]),
                                                           rhs.frag.sql), lhs.frag.params + rhs.frag.params),
                        "number")
        if isinstance(node, ast.Node):
            raise InvalidParameter("A condition cannot be used as a value.", parameter="filter")
        return self.literal(node)

    def _coerce(self, target: Expr, value: Expr) -> Expr:
        """Make ``value`` comparable with ``target``, or say clearly why not (400)."""
        if value.kind == target.kind or "null" in (value.kind, target.kind):
            return value
        if {value.kind, target.kind} <= {"date", "timestamp"}:
            return value
        if target.kind in ("date", "timestamp") and value.kind == "text" and value.frag.params:
            raw = value.frag.params[0]
            try:
                parsed = dt.datetime.fromisoformat(raw)
            except ValueError:
                raise InvalidParameter(f"{raw[:40]!r} is not a date or timestamp.",
                                       parameter="filter") from None
            return self.literal(parsed.date() if target.kind == "date" and len(raw) <= 10 else parsed)
        raise InvalidParameter(f"Cannot compare a {target.kind} with a {value.kind} in filter.",
                               parameter="filter")

    # predicates ----------------------------------------------------------------------
    def cond(self, node: Any) -> Frag:
        if isinstance(node, (ast.And, ast.Or)):
            # One flat group per chain: ``(a AND b AND c)``, not ``((a AND b) AND c)``.
            parts = [self.cond(p) for p in _logical_parts(node)]
            op = " AND " if isinstance(node, ast.And) else " OR "
            return Frag(sql.SQL("({})").format(sql.SQL(op).join(p.sql for p in parts)),
                        [v for p in parts for v in p.params])
        if isinstance(node, ast.Not):
            inner = self.cond(node.sub_node)
            return Frag(sql.SQL("(NOT {})").format(inner.sql), inner.params)
        if isinstance(node, ast.Include):
            return Frag(sql.SQL("FALSE" if node.not_ else "TRUE"))
        if type(node) in _COMPARISON:
            lhs = self.expr(node.lhs)
            rhs = self._coerce(lhs, self.expr(node.rhs))
            if "geometry" in (lhs.kind, rhs.kind):
                raise InvalidParameter("Compare geometries with spatial operators (S_EQUALS...).",
                                       parameter="filter")
            return Frag(sql.SQL("({} {} {})").format(lhs.frag.sql, sql.SQL(_COMPARISON[type(node)]),
                                                      rhs.frag.sql), lhs.frag.params + rhs.frag.params)
        if isinstance(node, ast.Like):
            lhs = self.expr(node.lhs)
            if lhs.kind != "text" or not isinstance(node.pattern, str):
                raise InvalidParameter("LIKE needs a text property and a text pattern.",
                                       parameter="filter")
            op = ("NOT " if node.not_ else "") + ("ILIKE" if node.nocase else "LIKE")
            # CQL2 wildcards are PostgreSQL's: % any run, _ one character, \ escapes.
            return Frag(sql.SQL("({} {} %s)").format(lhs.frag.sql, sql.SQL(op)), lhs.frag.params + [node.pattern])
        if isinstance(node, ast.In):
            lhs = self.expr(node.lhs)
            if not node.sub_nodes or len(node.sub_nodes) > MAX_IN_VALUES:
                raise InvalidParameter(f"IN needs 1 to {MAX_IN_VALUES} values.", parameter="filter")
            items = [self._coerce(lhs, self.expr(v)) for v in node.sub_nodes]
            return Frag(sql.SQL("({} {}IN ({}))").format(
                lhs.frag.sql, sql.SQL("NOT " if node.not_ else ""), sql.SQL(", ").join(i.frag.sql for i in items)),
                lhs.frag.params + [p for i in items for p in i.frag.params])
        if isinstance(node, ast.Between):
            lhs = self.expr(node.lhs)
            low, high = self._coerce(lhs, self.expr(node.low)), self._coerce(lhs, self.expr(node.high))
            return Frag(sql.SQL("({} {}BETWEEN {} AND {})").format(
                lhs.frag.sql, sql.SQL("NOT " if node.not_ else ""), low.frag.sql, high.frag.sql),
                lhs.frag.params + low.frag.params + high.frag.params)
        if isinstance(node, ast.IsNull):
            lhs = self.expr(node.lhs)
            return Frag(sql.SQL("({} IS {}NULL)").format(lhs.frag.sql, sql.SQL("NOT " if node.not_ else "")),
                        lhs.frag.params)
        if type(node) in _SPATIAL or isinstance(node, ast.Relate):
            lhs, rhs = self._geom(node.lhs), self._geom(node.rhs)
            if isinstance(node, ast.Relate):
                if not _RELATE.match(str(node.pattern)):
                    raise InvalidParameter("S_RELATE needs a 9-character DE-9IM pattern.", parameter="filter")
                return Frag(sql.SQL("ST_Relate({}, {}, %s)").format(lhs.sql, rhs.sql),
                            lhs.params + rhs.params + [str(node.pattern).upper()])
            return Frag(sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL[type(node)]), lhs.sql, rhs.sql),
                        lhs.params + rhs.params)
        if isinstance(node, ast.BBox):
            lhs = self._geom(node.lhs)
            env = self.geometry_literal(values.Envelope(node.minx, node.maxx, node.miny, node.maxy))
            return Frag(sql.SQL("ST_Intersects({}, {})").format(lhs.sql, env.frag.sql),
                        lhs.params + env.frag.params)
        if isinstance(node, (ast.DistanceWithin, ast.DistanceBeyond)):
            return self._dwithin(node)
        if isinstance(node, ast.TemporalPredicate):
            return self._temporal(node)
        raise InvalidParameter(f"Unsupported filter operator {type(node).__name__}.", parameter="filter")

    def _geom(self, node: Any) -> Frag:
        e = self.expr(node)
        if e.kind != "geometry":
            raise InvalidParameter("Spatial operators need the geometry property and a geometry "
                                   "literal (WKT in cql2-text, GeoJSON in cql2-json).", parameter="filter")
        return e.frag

    def _dwithin(self, node) -> Frag:
        lhs, rhs = self._geom(node.lhs), self._geom(node.rhs)
        unit = str(node.units or "meters").lower()
        if unit not in _METRES:
            raise InvalidParameter(f"Unknown distance unit {unit[:20]!r}: use meters or kilometers.",
                                   parameter="filter")
        try:
            metres = float(node.distance) * _METRES[unit]
        except (TypeError, ValueError):
            raise InvalidParameter("S_DWITHIN needs a numeric distance.", parameter="filter") from None
        if not (0 <= metres <= 1e7):
            raise InvalidParameter("S_DWITHIN distance must be between 0 and 10,000 km.", parameter="filter")
        # Index prefilter in the layer's units (conservative up to 80° of latitude), then the
        # exact test on the ellipsoid.
        rows = self.layer.rows
        frag = within_metres(lhs, rhs, metres, rows.srid, rows.geographic)
        if isinstance(node, ast.DistanceBeyond):
            return Frag(sql.SQL("(NOT {})").format(frag.sql), frag.params)
        return frag

    def _temporal(self, node) -> Frag:
        lhs = self.expr(node.lhs)
        if lhs.kind not in ("date", "timestamp"):
            raise InvalidParameter("Temporal operators need a date or timestamp property.", parameter="filter")
        rhs = node.rhs
        if isinstance(rhs, values.Interval):
            start = self.literal(rhs.start) if isinstance(rhs.start, dt.date) else None
            end = self.literal(rhs.end) if isinstance(rhs.end, dt.date) else None
        else:
            start = end = self._coerce(lhs, self.expr(rhs))
        a = lhs.frag

        def cmp(op: str, other: Expr | None) -> Frag:
            if other is None:
                return Frag(sql.SQL("TRUE"))
            return Frag(sql.SQL("({} {} {})").format(a.sql, sql.SQL(op), other.frag.sql), a.params + other.frag.params)

        if isinstance(node, ast.TimeAfter):
            return cmp(">", end)
        if isinstance(node, ast.TimeBefore):
            return cmp("<", start)
        if isinstance(node, ast.TimeEquals) and start is end:
            return cmp("=", start)
        if isinstance(node, (ast.TimeDuring,)):
            return Frag.join([cmp(">", start), cmp("<", end)], " AND ")
        if isinstance(node, (ast.TimeOverlaps, ast.TimeContains, ast.TimeEquals)):   # T_INTERSECTS
            return Frag.join([cmp(">=", start), cmp("<=", end)], " AND ")
        if isinstance(node, ast.TimeDisjoint):
            inner = Frag.join([cmp(">=", start), cmp("<=", end)], " AND ")
            return Frag(sql.SQL("(NOT ({}))").format(inner.sql), inner.params)
        raise InvalidParameter(f"Unsupported temporal operator {type(node).__name__} for an "
                               "instant property.", parameter="filter")


def to_sql(node: ast.Node, layer: Layer, filter_crs: CrsRef) -> Frag:
    """The filter as a SQL condition on the layer's table (columns unqualified)."""
    return Translator(layer, filter_crs).cond(node)


def queryables_schema(layer: Layer, url: str) -> dict:
    """The layer's queryables as a JSON Schema (Part 3)."""
    props: dict[str, Any] = {"geometry": {"title": "geometry", "format": _geometry_format(layer),
                                          "x-ogc-role": "primary-geometry"}}
    for attr in layer.attributes:
        kind = kind_of(attr.type)
        schema: dict[str, Any] = {"title": attr.name}
        if kind == "number":
            schema["type"] = "integer" if attr.type in ("bigint", "integer", "smallint") else "number"
        elif kind == "bool":
            schema["type"] = "boolean"
        elif kind == "date":
            schema.update(type="string", format="date")
        elif kind == "timestamp":
            schema.update(type="string", format="date-time")
        else:
            schema["type"] = "string"
        if attr.description:
            schema["description"] = attr.description
        if attr.unit:
            schema["x-unit"] = attr.unit
        if layer.time_column == attr.name:
            schema["x-ogc-role"] = "primary-instant"
        props[attr.name] = schema
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": url, "type": "object",
           "title": layer.title, "properties": props, "additionalProperties": False}
    rel = layer.relation
    if rel is not None and rel.is_function:
        # Not properties: the arguments of the function that computes the rows, given as
        # query parameters of items and tiles (required ones listed).
        doc["x-parameters"] = {a.name: arg_schema(a) for a in rel.args}
        doc["x-required-parameters"] = [a.name for a in rel.args if a.required]
    return doc


def _geometry_format(layer: Layer) -> str:
    base = (layer.geometry_type or "").lower()
    mapping = {"point": "geometry-point", "multipoint": "geometry-multipoint",
               "linestring": "geometry-linestring", "multilinestring": "geometry-multilinestring",
               "polygon": "geometry-polygon", "multipolygon": "geometry-multipolygon"}
    return mapping.get(base, "geometry-any")
