"""Where a layer's rows live, and the SQL that reads them.

An *ingested* layer is a table the platform wrote: ``gis_data.<table_name>``, geometry in
EPSG:4326 in column ``geom``, a ``bigint`` key ``fid``.  A *published* layer is a relation
someone else keeps in PostGIS - a table (partitioned or not), a view, a materialized view,
a foreign table, or a set-returning function - served in place: any schema and names, any
geometry column (geometry or geography), any SRID, a key of any type, several columns, or
none.  :class:`Relation` describes the latter; :class:`RowSource` gives every statement of
the platform the same pieces for both (``FROM``, the geometry, the feature id, the order),
so no SQL elsewhere assumes ``fid``, ``geom`` or EPSG:4326.

Identifiers come from the catalog (introspected by :mod:`layers.publish`), never from a
request; function arguments are bound as parameters, cast to their declared type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any, Literal
from urllib.parse import quote, unquote

from psycopg import sql
from pydantic import BaseModel, Field

from gis_platform.errors import InvalidParameter
from gis_platform.sqlfrag import Frag

RelationKind = Literal["table", "partitioned table", "view", "materialized view", "foreign table",
                       "function"]
INT_TYPES = ("smallint", "integer", "bigint")
_TEXT_TYPES = ("text", "character varying", "character")
#: Separates the parts of a composite key in a feature id (each part percent-escaped).
KEY_SEPARATOR = "~"


class KeyColumn(BaseModel):
    name: str
    type: str                       # format_type() without modifiers: integer, text, uuid...


class FunctionArg(BaseModel):
    """One argument of a function layer: a query parameter of its features and tiles."""

    name: str
    type: str
    required: bool = True           # False: the function declares a default
    description: str | None = None


class Relation(BaseModel):
    """A relation published in place (stored in ``gis_meta.layers.relation``)."""

    kind: RelationKind
    schema_name: str = Field(alias="schema")
    name: str
    geometry_column: str
    geography: bool = False
    #: Coordinates in degrees (a geographic SRID): sizes and distances are converted.
    geographic: bool = True
    key: list[KeyColumn] = Field(default_factory=list)
    args: list[FunctionArg] = Field(default_factory=list)
    #: How changes are noticed: ``trigger`` (statement triggers on ``triggers_on``, with the
    #: extent), ``poll`` (a cheap signal every few seconds), ``none`` (a function of unknown
    #: inputs: its tiles are never cached).
    tracking: Literal["trigger", "poll", "none"] = "poll"
    triggers_on: list[str] = Field(default_factory=list)    # quoted names
    #: Base tables of a view or function (quoted ``schema.name``), partitions of a table.
    depends_on: list[str] = Field(default_factory=list)
    parts: list[str] = Field(default_factory=list)
    discovered: bool = False        # published by the discovery setting, not by a person

    model_config = {"populate_by_name": True}

    @property
    def qualified(self) -> str:
        """``"schema"."name"`` as PostgreSQL quotes it (for messages and the change log)."""
        return quote_ident(self.schema_name) + "." + quote_ident(self.name)

    @property
    def is_function(self) -> bool:
        return self.kind == "function"


def quote_ident(name: str) -> str:
    """PostgreSQL's quote_ident: bare when it can be, else double-quoted."""
    if name and (name[0].isalpha() and name[0].islower() or name[0] == "_") and all(
            c.islower() or c.isdigit() or c == "_" for c in name) and name not in _RESERVED_WORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


# Words quote_ident quotes (PostgreSQL's reserved keywords; enough for names, not a parser).
_RESERVED_WORDS = frozenset(["all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case", "cast", "check", "collate", "column", "constraint", "create", "current_catalog", "current_date", "current_role", "current_time", "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "from", "grant", "group", "having", "in", "initially", "intersect", "into", "lateral", "leading", "limit", "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or", "order", "placing", "primary", "references", "returning", "select", "session_user", "some", "symmetric", "table", "then", "to", "trailing", "true", "union", "unique", "user", "using", "variadic", "when", "where", "window", "with", "authorization", "binary", "collation", "concurrently", "cross", "current_schema", "freeze", "full", "ilike", "inner", "is", "isnull", "join", "left", "like", "natural", "notnull", "outer", "overlaps", "right", "similar", "tablesample", "verbose"])


def id_kind_of(key: list[KeyColumn]) -> Literal["int", "text", "none"]:
    if not key:
        return "none"
    if len(key) == 1 and key[0].type in INT_TYPES:
        return "int"
    return "text"


def _key_text(col: sql.Composable, composite: bool) -> sql.Composable:
    """A text key (part) as it appears in a feature id: ``%`` and ``/`` percent-escaped (an
    id is a URL path segment), and in a composite key the separator ``~`` too."""
    # chr(37) is "%": no percent sign in the statement's text (it is a placeholder there).
    text = sql.SQL("replace(replace(({})::text, chr(37), chr(37) || '25'), '/', chr(37) || '2F')"
                   ).format(col)
    return sql.SQL("replace({}, '~', chr(37) || '7E')").format(text) if composite else text


def parse_arg(arg: FunctionArg, value: str) -> Any:
    """A function argument from a query parameter, typed (400 with the expected form)."""
    t = arg.type
    name = arg.name
    try:
        if t in INT_TYPES:
            n = int(value.strip())
            if not -2**63 <= n < 2**63:
                raise ValueError
            return n
        if t in ("double precision", "real", "numeric"):
            x = float(value)
            if not math.isfinite(x):
                raise ValueError
            return decimal.Decimal(value.strip()) if t == "numeric" else x
        if t == "boolean":
            if value.lower() not in ("true", "false"):
                raise ValueError
            return value.lower() == "true"
        if t == "date":
            return dt.date.fromisoformat(value.strip())
        if t.startswith("timestamp"):
            v = dt.datetime.fromisoformat(value.strip())
            if t == "timestamp with time zone" and v.tzinfo is None:
                v = v.replace(tzinfo=dt.UTC)
            return v
        if t == "uuid":
            return uuid.UUID(value.strip())
    except (ValueError, decimal.InvalidOperation):
        raise InvalidParameter(f"{name} must be a {_ARG_FORMS.get(t, t)}; got {value[:40]!r}.",
                               parameter=name) from None
    if len(value) > 1000:
        raise InvalidParameter(f"{name} is too long (at most 1000 characters).", parameter=name)
    return value


_ARG_FORMS = {"smallint": "whole number", "integer": "whole number", "bigint": "whole number",
              "double precision": "number", "real": "number", "numeric": "number",
              "boolean": "true or false", "date": "date (YYYY-MM-DD)",
              "timestamp with time zone": "date-time (RFC 3339)",
              "timestamp without time zone": "date-time (RFC 3339)", "uuid": "UUID"}


def parse_args(rel: Relation | None, params: Any) -> dict:
    """A function layer's arguments from query parameters (a mapping), typed; a missing
    required one is a 400 naming them all.  Not a function: ``{}``."""
    if rel is None or not rel.is_function:
        return {}
    out = {}
    for a in rel.args:
        if a.name in params:
            out[a.name] = parse_arg(a, params[a.name])
        elif a.required:
            raise InvalidParameter(f"{a.name} is required: this layer is computed by a function "
                                   f"of {', '.join(x.name for x in rel.args)}.", parameter=a.name)
    return out


def arg_names(rel: Relation | None) -> set[str]:
    """The query parameters a function layer takes (its arguments)."""
    return {a.name for a in rel.args} if rel is not None and rel.is_function else set()


def arg_schema(arg: FunctionArg) -> dict:
    """The JSON schema of a function argument (OpenAPI, queryables, TileJSON)."""
    t = arg.type
    if t in INT_TYPES:
        out: dict = {"type": "integer"}
    elif t in ("double precision", "real", "numeric"):
        out = {"type": "number"}
    elif t == "boolean":
        out = {"type": "boolean"}
    elif t == "date":
        out = {"type": "string", "format": "date"}
    elif t.startswith("timestamp"):
        out = {"type": "string", "format": "date-time"}
    elif t == "uuid":
        out = {"type": "string", "format": "uuid"}
    else:
        out = {"type": "string"}
    if arg.description:
        out["description"] = arg.description
    return out


class RowSource:
    """The SQL pieces of a layer's rows (see the module docstring).

    Built from a catalog record by :meth:`Layer.rows`; ``alias`` qualifies column
    references when the statement names its ``FROM`` item (``src``, ``s``...).
    """

    def __init__(self, table: sql.Composable | None, relation: Relation | None, srid: int) -> None:
        self._table = table
        self.relation = relation
        self.srid = int(srid)

    # --- what ---------------------------------------------------------------------------
    @property
    def published(self) -> bool:
        return self.relation is not None

    @property
    def is_function(self) -> bool:
        return self.relation is not None and self.relation.is_function

    @property
    def geographic(self) -> bool:
        """Coordinates in degrees."""
        return self.relation.geographic if self.relation is not None else True

    @property
    def id_kind(self) -> Literal["int", "text", "none"]:
        return "int" if self.relation is None else id_kind_of(self.relation.key)

    @property
    def key_names(self) -> list[str]:
        return ["fid"] if self.relation is None else [k.name for k in self.relation.key]

    # --- FROM -----------------------------------------------------------------------------
    def table(self) -> sql.Composable:
        """The relation (not a function: see :meth:`from_`)."""
        if self._table is None:
            raise InvalidParameter("This layer is a function: it is read with its arguments.")
        return self._table

    def from_(self, args: dict[str, Any] | None = None, *, named: str | None = None) -> Frag:
        """The ``FROM`` item: the table, or the function called with ``args`` (already
        typed by :func:`parse_arg`; missing optional ones take the function's default).
        ``named``: a prefix for named placeholders (``%(fa_x)s``) instead of ``%s``."""
        rel = self.relation
        if rel is None or not rel.is_function:
            return Frag(self.table(), [])
        args = args or {}
        parts, params = [], []
        values: dict[str, Any] = {}
        for a in rel.args:
            if a.name not in args:
                if a.required:
                    raise InvalidParameter(f"{a.name} is required ({_ARG_FORMS.get(a.type, a.type)}).",
                                           parameter=a.name)
                continue
            cast = sql.SQL(a.type)        # a type name from pg_catalog, not from a request
            if named is not None:
                ph = sql.SQL("%({})s").format(sql.SQL(named + str(len(values))))
                values[named + str(len(values))] = args[a.name]
            else:
                ph = sql.SQL("%s")
                params.append(args[a.name])
            parts.append(sql.SQL("{} => CAST({} AS {})").format(sql.Identifier(a.name), ph, cast))
        call = sql.SQL("{}({})").format(sql.Identifier(rel.schema_name, rel.name),
                                        sql.SQL(", ").join(parts))
        return Frag(call, params) if named is None else Frag(call, [values])

    # --- columns --------------------------------------------------------------------------
    def _col(self, name: str, alias: str | None) -> sql.Composable:
        return sql.Identifier(alias, name) if alias else sql.Identifier(name)

    def geom(self, alias: str | None = None) -> sql.Composable:
        """The geometry, as ``geometry`` in the layer's SRID (geography cast)."""
        if self.relation is None:
            return self._col("geom", alias)
        col = self._col(self.relation.geometry_column, alias)
        return sql.SQL("({})::geometry").format(col) if self.relation.geography else col

    def geom_in(self, srid: int, alias: str | None = None) -> sql.Composable:
        """The geometry transformed to ``srid`` (no transform when it is already there)."""
        g = self.geom(alias)
        if int(srid) == self.srid:
            return g
        return sql.SQL("ST_Transform({}, {})").format(g, sql.Literal(int(srid)))

    def geography(self, alias: str | None = None) -> sql.Composable:
        """The geometry as ``geography`` (for metres): a geography column as it is."""
        if self.relation is not None and self.relation.geography:
            return self._col(self.relation.geometry_column, alias)
        return sql.SQL("({})::geography").format(self.geom_in(4326, alias))

    def to_layer_srid(self, expr: sql.Composable, srid: int = 4326) -> sql.Composable:
        """An expression in ``srid`` brought to the layer's SRID."""
        if int(srid) == self.srid:
            return expr
        return sql.SQL("ST_Transform({}, {})").format(expr, sql.Literal(self.srid))

    def fid(self, alias: str | None = None) -> sql.Composable:
        """The feature id: a number (int key), text (any other or a composite key), or
        NULL (no key)."""
        rel = self.relation
        if rel is None:
            return self._col("fid", alias)
        kind = id_kind_of(rel.key)
        if kind == "none":
            return sql.SQL("NULL::text")
        if kind == "int":
            return self._col(rel.key[0].name, alias)
        if len(rel.key) == 1:
            return _key_text(self._col(rel.key[0].name, alias), False)
        return sql.SQL("concat_ws({}, {})").format(
            sql.Literal(KEY_SEPARATOR),
            sql.SQL(", ").join(_key_text(self._col(k.name, alias), True) for k in rel.key))

    def mvt_id(self, alias: str | None = None) -> sql.Composable | None:
        """The MVT feature id (an integer key only), or None."""
        return self.fid(alias) if self.id_kind == "int" else None

    def id_json(self, alias: str | None = None) -> sql.Composable:
        """SQL text of ``"id":<id>,`` for a GeoJSON feature ('' without a key)."""
        kind = self.id_kind
        if kind == "none":
            return sql.SQL("''")
        if kind == "int":
            return sql.SQL("'\"id\":' || {} || ','").format(self.fid(alias))
        return sql.SQL("'\"id\":' || to_json({})::text || ','").format(self.fid(alias))

    def order(self, alias: str | None = None, *, descending: bool = False) -> list[sql.Composable]:
        """Keys that make an ordering total (the paging tie-breaker); [] when the relation
        has neither a key nor row ids (a view without a key: pages are not stable)."""
        d = sql.SQL(" DESC" if descending else "")
        if self.relation is None:
            return [self._col("fid", alias) + d]
        if self.relation.key:
            return [self._col(k.name, alias) + d for k in self.relation.key]
        if self.relation.kind in ("table", "partitioned table", "materialized view"):
            return [self._col("ctid", alias) + d]
        return []

    def id_where(self, value: str, alias: str | None = None) -> Frag | None:
        """The condition selecting feature ``value`` (a path segment), or None when the
        value cannot be an id of this layer (the caller answers 404)."""
        rel = self.relation
        if rel is None or id_kind_of(rel.key) == "int":
            col = self._col("fid" if rel is None else rel.key[0].name, alias)
            try:
                n = int(value)
            except ValueError:
                return None
            if not -2**63 <= n < 2**63 or str(n) != value.strip():
                return None
            return Frag(sql.SQL("{} = %s").format(col), [n])
        if not rel.key or len(value) > 2000:
            return None
        parts = [value] if len(rel.key) == 1 else value.split(KEY_SEPARATOR)
        if len(parts) != len(rel.key):
            return None
        conds, params = [], []
        for k, raw in zip(rel.key, parts):
            text = unquote(raw)
            col = self._col(k.name, alias)
            conds.append(sql.SQL("{} = %s").format(col) if k.type in _TEXT_TYPES
                         else sql.SQL("{} = CAST(%s AS {})").format(col, sql.SQL(k.type)))
            params.append(text)
        return Frag(sql.SQL(" AND ").join(conds), params)


def id_in_path(fid: Any) -> str:
    """A feature id as a URL path segment."""
    return quote(str(fid), safe="")
