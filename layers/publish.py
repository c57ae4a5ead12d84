"""Publishing PostGIS relations in place: introspection, the catalog record, change tracking.

``publish(conn, "city.water_mains")`` looks the relation up in the system catalogs - a table,
partitioned table, view, materialized view, foreign table, or a set-returning function -
and records a layer whose :class:`~layers.relation.Relation` says where its rows live.
Nothing is copied and nothing is written into the relation's schema, with one exception the
city can allow or not: where the login may (it owns the table, or was granted TRIGGER), a
statement-level trigger on the table (or, for a view, on its base tables) appends to the
platform's change log (``gis_meta.layer_changes``) with the extent of what changed, so
cached tiles elsewhere stay valid.  Where it may not, the layer is *polled*
(:mod:`layers.poll`): a cheap signal per relation, read every ``publish_poll_seconds``.

Serving needs only ``SELECT`` on the relation (and ``USAGE`` on its schema) for the
platform's login; publishing checks it and says which ``GRANT`` is missing.
:func:`unpublish` removes the catalog record and the platform's own triggers; the relation
is left as it was.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gis_platform.errors import Conflict, InvalidParameter, LayerNotFound
from layers.catalog import Attribute, Layer, get_layer, slugify, validate_layer_id
from layers.relation import FunctionArg, KeyColumn, Relation, quote_ident

log = logging.getLogger("layers.publish")

TRIGGER_PREFIX = "gis_platform_changed"
_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view",
          "f": "foreign table"}
_GEOM_TYPES = {"POINT": "Point", "MULTIPOINT": "MultiPoint", "LINESTRING": "LineString",
               "MULTILINESTRING": "MultiLineString", "POLYGON": "Polygon",
               "MULTIPOLYGON": "MultiPolygon", "GEOMETRYCOLLECTION": "GeometryCollection",
               "GEOMETRY": None}


@dataclass
class Published:
    """What :func:`publish` did for one layer."""

    layer: Layer
    tracking: str
    note: str = ""
    triggers_on: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        rel = self.layer.relation
        return {"id": self.layer.id, "relation": rel.qualified, "kind": rel.kind,
                "geometry_column": rel.geometry_column, "srid": self.layer.storage_srid,
                "geometry_type": self.layer.geometry_type,
                "key": [k.name for k in rel.key], "features": self.layer.feature_count,
                "access_level": self.layer.access_level, "tracking": self.tracking,
                "triggers_on": self.triggers_on, "note": self.note,
                "parameters": [a.model_dump() for a in rel.args]}


# --- names --------------------------------------------------------------------------------
_PART = r'(?:"((?:[^"]|"")+)"|([^".\s]+))'
_QUALIFIED = re.compile(rf"^\s*{_PART}\s*\.\s*{_PART}\s*$")


def parse_qualified(text: str) -> tuple[str, str, bool]:
    """``schema.name`` (either part may be double-quoted) -> (schema, name, quoted).

    Unquoted parts are matched as written and then lower-cased (PostgreSQL folds them), so
    ``City.Pipes`` finds ``city.pipes`` and ``"City"."Pipes"`` finds exactly that."""
    m = _QUALIFIED.match(text or "")
    if not m or len(text) > 300:
        raise InvalidParameter(f"{text[:80]!r} is not schema.name (quote a part with double "
                               "quotes if it has dots, spaces or capitals: \"My Schema\".\"Pipes\").",
                               parameter="relation")
    schema = m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2)
    name = m.group(3).replace('""', '"') if m.group(3) is not None else m.group(4)
    return schema, name, m.group(1) is not None or m.group(3) is not None


# --- introspection ------------------------------------------------------------------------
@dataclass
class _Rel:
    oid: int
    kind: str
    schema: str
    name: str
    owner_ok: bool            # the login may install triggers (owner or TRIGGER)


def _find_relation(conn: psycopg.Connection, schema: str, name: str) -> _Rel | None:
    row = conn.execute(
        "SELECT c.oid, c.relkind, n.nspname, c.relname, "
        "       pg_has_role(current_user, c.relowner, 'USAGE') "
        "       OR has_table_privilege(c.oid, 'TRIGGER') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        (schema, name)).fetchone()
    return _Rel(int(row[0]), _KINDS[row[1]], row[2], row[3], bool(row[4])) if row else None


def _find_function(conn: psycopg.Connection, schema: str, name: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT p.oid, p.proretset, p.provolatile, p.prokind, p.pronargs, p.pronargdefaults, "
            "       p.proargnames, p.proargmodes, p.prorettype, t.typrelid, "
            "       pg_get_function_identity_arguments(p.oid) AS ident, "
            "       obj_description(p.oid, 'pg_proc') AS comment "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "JOIN pg_type t ON t.oid = p.prorettype "
            "WHERE n.nspname = %s AND p.proname = %s", (schema, name)).fetchall()


def _resolve(conn: psycopg.Connection, text: str) -> tuple[str, str]:
    schema, name, quoted = parse_qualified(text)
    for s, n in ([(schema, name)] if quoted else [(schema, name), (schema.lower(), name.lower())]):
        if _find_relation(conn, s, n) is not None or _find_function(conn, s, n):
            return s, n
    raise LayerNotFound(f"No table, view or function {text[:80]!r} that the platform's login can "
                        "see. Check the name, and that it was granted USAGE on the schema.")


def _columns(conn: psycopg.Connection, oid: int) -> list[dict]:
    """Columns of a relation (or a composite type's relation): name, base type, typmod info."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type, t.typname, "
            "       CASE WHEN t.typname IN ('geometry', 'geography') AND a.atttypmod > 0 "
            "            THEN postgis_typmod_srid(a.atttypmod) END AS srid, "
            "       CASE WHEN t.typname IN ('geometry', 'geography') AND a.atttypmod > 0 "
            "            THEN postgis_typmod_type(a.atttypmod) END AS gtype, "
            "       col_description(a.attrelid, a.attnum) AS comment "
            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (oid,)).fetchall()


def _function_columns(conn: psycopg.Connection, fn: dict) -> list[dict]:
    """The result columns of a set-returning function: RETURNS TABLE (...), OUT arguments,
    or SETOF a table (whose column types keep their SRID)."""
    if fn["typrelid"]:
        return _columns(conn, int(fn["typrelid"]))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT a.name, format_type(a.type, NULL) AS type, t.typname, NULL::int AS srid, "
            "       NULL::text AS gtype, NULL::text AS comment "
            "FROM pg_proc p, unnest(p.proallargtypes, p.proargmodes, p.proargnames) "
            "     WITH ORDINALITY AS a(type, mode, name, ord) "
            "JOIN pg_type t ON t.oid = a.type "
            "WHERE p.oid = %s AND a.mode IN ('t', 'o', 'b') ORDER BY a.ord", (fn["oid"],)).fetchall()


def _function_args(conn: psycopg.Connection, fn: dict) -> list[FunctionArg]:
    rows = conn.execute(
        "SELECT a.name, format_type(a.type, NULL), a.mode FROM pg_proc p, "
        "unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), "
        "       coalesce(p.proargmodes, array_fill('i'::\"char\", ARRAY[p.pronargs::int])), "
        "       coalesce(p.proargnames, array_fill(NULL::text, ARRAY[p.pronargs::int]))) "
        "       WITH ORDINALITY AS a(type, mode, name, ord) "
        "WHERE p.oid = %s AND a.mode IN ('i', 'b', 'v') ORDER BY a.ord", (fn["oid"],)).fetchall()
    n = len(rows)
    with_default = int(fn["pronargdefaults"] or 0)
    args = []
    for i, (name, type_, mode) in enumerate(rows):
        if not name:
            raise InvalidParameter(f"Argument {i + 1} of the function has no name; name every "
                                   "argument (they become the layer's query parameters).")
        if mode == "v":
            raise InvalidParameter(f"Argument {name!r} of the function is VARIADIC; a query "
                                   "parameter carries one value.")
        if name in _RESERVED_PARAMS:
            raise InvalidParameter(f"Argument {name!r} clashes with a query parameter of the "
                                   f"features and tiles APIs ({', '.join(sorted(_RESERVED_PARAMS))}); "
                                   "rename it.")
        args.append(FunctionArg(name=name, type=type_, required=i < n - with_default))
    return args


_RESERVED_PARAMS = {"f", "bbox", "bbox-crs", "crs", "limit", "offset", "properties", "sortby",
                    "datetime", "filter", "filter-lang", "filter-crs", "v", "layers", "format",
                    "geometry", "point", "distance", "area", "sum", "avg", "group-by",
                    "geometry-crs", "bidx", "rescale", "colormap"}


def _primary_key(conn: psycopg.Connection, oid: int) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord", (oid,)).fetchall()
    if rows:
        return [r[0] for r in rows]
    # A materialized view (or a table without a primary key) with a unique index (REFRESH
    # ... CONCURRENTLY needs one): the one of fewest columns.
    rows = conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
        "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL "
        "GROUP BY i.indexrelid ORDER BY count(*), i.indexrelid LIMIT 1", (oid,)).fetchone()
    return list(rows[0]) if rows else []


def _base_tables(conn: psycopg.Connection, oid: int) -> list[tuple[int, str, str, str]]:
    """Tables (and materialized views) a view reads, through other views: (oid, schema,
    name, kind)."""
    rows = conn.execute("""
        WITH RECURSIVE deps(oid) AS (
            SELECT d.refobjid FROM pg_rewrite r JOIN pg_depend d ON d.objid = r.oid
            WHERE r.ev_class = %(v)s AND d.classid = 'pg_rewrite'::regclass
              AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> %(v)s
            UNION
            SELECT d.refobjid FROM deps JOIN pg_class c ON c.oid = deps.oid AND c.relkind = 'v'
            JOIN pg_rewrite r ON r.ev_class = deps.oid
            JOIN pg_depend d ON d.objid = r.oid
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid <> deps.oid
        )
        SELECT DISTINCT c.oid, n.nspname, c.relname, c.relkind FROM deps
        JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm', 'f') ORDER BY 2, 3""", {"v": oid}).fetchall()
    return [(int(r[0]), r[1], r[2], _KINDS[r[3]]) for r in rows]


def _function_tables(conn: psycopg.Connection, oid: int) -> list[tuple[int, str, str, str]]:
    """Tables a function's body depends on (recorded for SQL-standard bodies, BEGIN ATOMIC)."""
    rows = conn.execute(
        "SELECT DISTINCT c.oid, n.nspname, c.relname, c.relkind FROM pg_depend d "
        "JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE d.classid = 'pg_proc'::regclass AND d.objid = %s "
        "AND d.refclassid = 'pg_class'::regclass AND c.relkind IN ('r', 'p', 'm', 'v', 'f')",
        (oid,)).fetchall()
    out = []
    for r in rows:
        if r[3] == "v":
            out += _base_tables(conn, int(r[0]))
        else:
            out.append((int(r[0]), r[1], r[2], _KINDS[r[3]]))
    return sorted(set(out), key=lambda t: (t[1], t[2]))


def _partitions(conn: psycopg.Connection, oid: int) -> list[tuple[int, str, str]]:
    rows = conn.execute(
        "WITH RECURSIVE p(oid) AS (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s "
        "UNION SELECT i.inhrelid FROM pg_inherits i JOIN p ON i.inhparent = p.oid) "
        "SELECT c.oid, n.nspname, c.relname FROM p JOIN pg_class c ON c.oid = p.oid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') ORDER BY 2, 3",
        (oid,)).fetchall()
    return [(int(r[0]), r[1], r[2]) for r in rows]


def _srid_and_type(conn: psycopg.Connection, source: sql.Composable, col: dict,
                   geography: bool) -> tuple[int, str | None]:
    """The column's SRID and geometry type: from its type modifier, else from its rows."""
    srid, gtype = col["srid"], col["gtype"]
    if srid and gtype and gtype.upper() not in ("GEOMETRY", "GEOMETRYCOLLECTION"):
        return int(srid), _GEOM_TYPES.get(gtype.upper(), gtype)
    ident = sql.Identifier(col["name"])
    g = sql.SQL("({})::geometry").format(ident) if geography else ident
    rows = conn.execute(sql.SQL(
        "SELECT ST_SRID(g), upper(GeometryType(g)), count(*) FROM (SELECT {} AS g FROM {} "
        "WHERE {} IS NOT NULL LIMIT 2000) s GROUP BY 1, 2 ORDER BY 3 DESC").format(
        g, source, ident)).fetchall()
    srids = {int(r[0]) for r in rows}
    if srid:
        srids = {int(srid)}
    if len(srids) > 1:
        raise InvalidParameter(f"Column {col['name']!r} mixes SRIDs {sorted(srids)}; a layer "
                               "has one. Publish a view that transforms them to one.")
    found = srids.pop() if srids else (4326 if geography else 0)
    if found == 0:
        raise InvalidParameter(f"Column {col['name']!r} has no SRID (0). Give it one "
                               "(ALTER TABLE ... ALTER COLUMN ... TYPE geometry(<type>, <srid>) "
                               "USING ST_SetSRID(...)) or publish a view that sets it.")
    known = conn.execute("SELECT 1 FROM spatial_ref_sys WHERE srid = %s", (found,)).fetchone()
    if not known:
        raise InvalidParameter(f"SRID {found} of column {col['name']!r} is not in spatial_ref_sys.")
    types = {_GEOM_TYPES.get(r[1], r[1]) for r in rows}
    if gtype and gtype.upper() not in ("GEOMETRY",):
        types = {_GEOM_TYPES.get(gtype.upper(), gtype)}
    families = {t.replace("Multi", "") for t in types if t}
    if len(types) == 1:
        return found, types.pop()
    if len(families) == 1:                    # Point + MultiPoint...: the multi type
        return found, "Multi" + families.pop()
    return found, None                        # mixed or empty: any geometry


def _distinct(conn: psycopg.Connection, schema: str, name: str) -> dict[str, float]:
    """``pg_stats.n_distinct`` of each column (what autovacuum's ANALYZE found; {} when the
    relation was never analysed, or for a view)."""
    rows = conn.execute("SELECT attname, n_distinct FROM pg_stats WHERE schemaname = %s "
                        "AND tablename = %s", (schema, name)).fetchall()
    return {r[0]: float(r[1]) for r in rows if r[1] is not None}


def _geographic(conn: psycopg.Connection, srid: int) -> bool:
    row = conn.execute("SELECT srtext FROM spatial_ref_sys WHERE srid = %s", (srid,)).fetchone()
    text = (row[0] or "").lstrip().upper() if row else ""
    return text.startswith(("GEOGCS", "GEOGCRS", "GEODCRS"))


def _extent_and_count(conn: psycopg.Connection, rel: Relation, srid: int) -> tuple[list[float] | None, int]:
    """Lon/lat extent and exact row count (not for functions: they need arguments)."""
    if rel.is_function:
        return None, 0
    g = sql.Identifier(rel.geometry_column)
    geom = sql.SQL("({})::geometry").format(g) if rel.geography else g
    row = conn.execute(sql.SQL(
        "SELECT n, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
        "(SELECT count(*) AS n, ST_Extent({g}) AS e FROM {t}) s, LATERAL (SELECT CASE WHEN e IS NULL "
        "THEN NULL ELSE ST_Transform(ST_Segmentize(ST_SetSRID(e::geometry, {srid}), "
        "greatest(ST_XMax(e) - ST_XMin(e), ST_YMax(e) - ST_YMin(e), 1e-9) / 8), 4326) END AS b) b"
    ).format(g=geom, t=sql.Identifier(rel.schema_name, rel.name), srid=sql.Literal(srid))).fetchone()
    extent = [float(v) for v in row[1:]] if row[1] is not None else None
    return extent, int(row[0])


def _check_select(conn: psycopg.Connection, rel: Relation, serving_role: str | None) -> None:
    """The serving login must be able to read the relation (or run the function)."""
    role = serving_role or conn.execute("SELECT current_user").fetchone()[0]
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        return
    target = sql.Identifier(rel.schema_name, rel.name).as_string(conn)
    if rel.is_function:
        ok = conn.execute("SELECT bool_and(has_function_privilege(%s, p.oid, 'EXECUTE')) "
                          "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                          "WHERE n.nspname = %s AND p.proname = %s",
                          (role, rel.schema_name, rel.name)).fetchone()[0]
        what = f"GRANT EXECUTE ON FUNCTION {target} TO {role}"
    else:
        ok = conn.execute("SELECT has_table_privilege(%s, %s::regclass, 'SELECT')",
                          (role, target)).fetchone()[0]
        what = f"GRANT SELECT ON {target} TO {role}"
    usage = conn.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')",
                         (role, rel.schema_name)).fetchone()[0]
    if not usage:
        what = f"GRANT USAGE ON SCHEMA {quote_ident(rel.schema_name)} TO {role}; " + what
    if not (ok and usage):
        raise InvalidParameter(f"The platform's login {role!r} cannot read {rel.qualified}: "
                               f"run `{what}` as its owner, then publish again.",
                               parameter="relation")


# --- the record ---------------------------------------------------------------------------
@dataclass
class _Candidate:
    relation: Relation
    attributes: list[Attribute]
    srid: int
    geometry_type: str | None
    watch: list[tuple[int, str, str, str]]   # tables whose changes change the layer
    trigger_ok: bool
    comment: str | None = None


def inspect(conn: psycopg.Connection, text: str, *, geometry_column: str | None = None,
            id_column: str | None = None, depends_on: list[str] | None = None,
            srid_hint: int | None = None) -> list[_Candidate]:
    """What publishing ``schema.name`` would record: one candidate per geometry column
    (or only ``geometry_column``)."""
    schema, name = _resolve(conn, text)
    found = _find_relation(conn, schema, name)
    fn: dict | None = None
    if found is None:
        fns = [f for f in _find_function(conn, schema, name)]
        if len(fns) > 1:
            raise InvalidParameter(f"Several functions are named {schema}.{name} "
                                   f"({'; '.join(f['ident'] for f in fns)}); give them distinct "
                                   "names to publish one.")
        fn = fns[0]
        if not fn["proretset"] or fn["prokind"] != "f":
            raise InvalidParameter(f"{schema}.{name} must be a set-returning function "
                                   "(RETURNS TABLE (...) or RETURNS SETOF a table).")
        if fn["provolatile"] == "v":
            raise InvalidParameter(f"{schema}.{name} is VOLATILE; a function layer must be STABLE "
                                   "or IMMUTABLE (it is called for every tile and page, and may "
                                   "not change data).")
        cols = _function_columns(conn, fn)
        args = _function_args(conn, fn)
        kind = "function"
    else:
        cols = _columns(conn, found.oid)
        args = []
        kind = found.kind
    geoms = [c for c in cols if c["typname"] in ("geometry", "geography")]
    if not geoms:
        raise InvalidParameter(f"{schema}.{name} has no geometry or geography column.")
    if geometry_column is not None:
        chosen = [c for c in geoms if c["name"] == geometry_column]
        if not chosen:
            raise InvalidParameter(f"{schema}.{name} has no geometry column {geometry_column!r}; "
                                   f"it has {[c['name'] for c in geoms]}.", parameter="geometry_column")
        geoms = chosen
    names = [c["name"] for c in cols]
    if id_column:
        key_names = [k.strip() for k in id_column.split(",") if k.strip()]
        missing = [k for k in key_names if k not in names]
        if missing:
            raise InvalidParameter(f"{schema}.{name} has no column {missing[0]!r} for the id; it "
                                   f"has {names}.", parameter="id_column")
    elif found is not None and kind in ("table", "partitioned table", "materialized view"):
        key_names = _primary_key(conn, found.oid)
    else:
        key_names = []
    types = {c["name"]: c["type"] for c in cols}
    key = [KeyColumn(name=k, type=types[k]) for k in key_names]
    # What to watch for changes, and whether triggers can be installed on all of it.
    watch: list[tuple[int, str, str, str]] = []
    if found is not None and kind in ("table", "partitioned table"):
        watch = [(found.oid, found.schema, found.name, kind)]
        if kind == "partitioned table":
            watch += [(o, s, n, "table") for o, s, n in _partitions(conn, found.oid)]
    elif found is not None and kind == "view":
        watch = _base_tables(conn, found.oid)
    elif found is not None and kind == "materialized view":     # polled (no triggers)
        watch = [(found.oid, found.schema, found.name, kind)]
    elif found is not None:                  # a foreign table: changes cannot be seen
        watch = []
    else:
        watch = _function_tables(conn, int(fn["oid"]))
    for text_dep in depends_on or []:
        s, n, _ = parse_qualified(text_dep)
        dep = _find_relation(conn, s, n)
        if dep is None:
            raise LayerNotFound(f"--depends-on {text_dep!r}: no such table or view.")
        watch += _base_tables(conn, dep.oid) if dep.kind == "view" else [(dep.oid, dep.schema, dep.name, dep.kind)]
    watch = sorted(set(watch), key=lambda w: (w[1], w[2]))
    # Triggers can be put on tables (not on a materialized view or a foreign table); whether
    # the login may is found out when they are installed (see publish()).
    trigger_ok = bool(watch) and all(w[3] in ("table", "partitioned table") for w in watch)
    source = sql.Identifier(schema, name)
    out = []
    for g in geoms:
        geography = g["typname"] == "geography"
        if kind == "function":
            srid = int(g["srid"] or srid_hint or (4326 if geography else 0))
            gtype = _GEOM_TYPES.get((g["gtype"] or "").upper()) if g["gtype"] else None
            if not srid and all(not a.required for a in args):
                srid, gtype = _srid_and_type(conn, sql.SQL("{}()").format(source), g, geography)
            if not srid:
                raise InvalidParameter(f"The result column {g['name']!r} of {schema}.{name} "
                                       "declares no SRID; give it with --srid (or declare the "
                                       "column geometry(<type>, <srid>) in a SETOF table type).",
                                       parameter="srid")
        else:
            srid, gtype = _srid_and_type(conn, source, g, geography)
        distinct = _distinct(conn, schema, name) if kind != "function" else {}
        keys = {k.name for k in key}
        attrs = [Attribute(name=c["name"], type=c["type"], description=c["comment"],
                           distinct=-1.0 if c["name"] in keys and len(keys) == 1
                           else distinct.get(c["name"]))
                 for c in cols if c["typname"] not in ("geometry", "geography")
                 and not c["name"].startswith("__")]
        tracking = "none"
        if watch:
            tracking = "trigger" if trigger_ok else "poll"
        rel = Relation(kind=kind, schema=schema, name=name, geometry_column=g["name"],
                       geography=geography, geographic=_geographic(conn, srid), key=key, args=args,
                       tracking=tracking,
                       depends_on=[] if kind in ("table", "partitioned table") else
                       [quote_ident(w[1]) + "." + quote_ident(w[2]) for w in watch],
                       parts=[quote_ident(w[1]) + "." + quote_ident(w[2]) for w in watch
                              if kind == "partitioned table" and w[0] != found.oid])
        comment = conn.execute("SELECT obj_description(%s, 'pg_class')", (found.oid,)).fetchone()[0] \
            if found is not None else fn["comment"]
        out.append(_Candidate(rel, attrs, srid, gtype, watch, trigger_ok, comment))
    return out


def publish(conn: psycopg.Connection, text: str, *, layer_id: str | None = None,
            geometry_column: str | None = None, id_column: str | None = None,
            access_level: str = "internal", title: str | None = None,
            depends_on: list[str] | None = None, serving_role: str | None = "gis_platform_app",
            trigger_conn: psycopg.Connection | None = None, discovered: bool = False,
            replace: bool = False, srid: int | None = None) -> list[Published]:
    """Publish ``schema.name`` in place (see the module docstring); one layer per geometry
    column unless ``geometry_column`` names one.  ``trigger_conn``: a login that may install
    change triggers where ``conn``'s may not (the command line's owner login)."""
    if access_level not in ("public", "internal", "restricted"):
        raise InvalidParameter("access must be public, internal or restricted.", parameter="access")
    candidates = inspect(conn, text, geometry_column=geometry_column, id_column=id_column,
                         depends_on=depends_on, srid_hint=srid)
    out = []
    for cand in candidates:
        rel = cand.relation
        base = layer_id or slugify(rel.name)
        lid = base if len(candidates) == 1 else f"{base}_{slugify(rel.geometry_column)}"[:63]
        validate_layer_id(lid)
        _check_select(conn, rel, serving_role)
        existing = get_layer(conn, lid)
        if existing is not None and not (replace and existing.relation is not None):
            raise Conflict(f"A layer {lid!r} already exists; choose another id (--id), or "
                           "unpublish it first.")
        extent, count = _extent_and_count(conn, rel, cand.srid)
        note = ""
        tracked_on: list[str] = []
        if rel.tracking == "trigger":
            tracked_on, why = _install_triggers(trigger_conn or conn, cand, lid)
            if why:
                rel = rel.model_copy(update={"tracking": "poll"})
                note = why
        elif rel.tracking == "poll":
            note = ("changes are polled: the platform's login may not add a change trigger to "
                    + ", ".join(quote_ident(w[1]) + "." + quote_ident(w[2]) for w in cand.watch))
        else:
            note = ("the function's inputs are unknown (declare --depends-on TABLE, or write "
                    "its body as BEGIN ATOMIC): its tiles are not cached")
        rel = rel.model_copy(update={"triggers_on": tracked_on, "discovered": discovered})
        record = {
            "id": lid, "title": title or rel.name,
            "description": cand.comment or f"Published in place from {rel.qualified}.",
            "kind": "vector", "geometry_type": cand.geometry_type, "storage_srid": cand.srid,
            "source_crs": f"EPSG:{cand.srid}", "extent": extent, "feature_count": count,
            "schema": Jsonb([a.model_dump(exclude_none=True) for a in cand.attributes]),
            "access_level": access_level,
            "relation": Jsonb(rel.model_dump(by_alias=True)),
            "source": rel.qualified,
        }
        with conn.transaction():
            if existing is not None:
                sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k))
                                          for k in record if k not in ("id", "access_level", "title"))
                conn.execute(sql.SQL("UPDATE gis_meta.layers SET {}, updated_at = now(), "
                                     "data_version = nextval('gis_meta.data_version_seq') "
                                     "WHERE id = %s").format(sets),
                             [v for k, v in record.items() if k not in ("id", "access_level", "title")]
                             + [lid])
                conn.execute("DELETE FROM gis_meta.layer_changes WHERE layer_id = %s", (lid,))
            else:
                cols = sql.SQL(", ").join(sql.Identifier(k) for k in record)
                vals = sql.SQL(", ").join(sql.Placeholder() for _ in record)
                conn.execute(sql.SQL("INSERT INTO gis_meta.layers ({}, data_version) VALUES ({}, "
                                     "nextval('gis_meta.data_version_seq'))").format(cols, vals),
                             list(record.values()))
            conn.execute("DELETE FROM gis_meta.publish_ignored WHERE schema_name = %s AND name = %s",
                         (rel.schema_name, rel.name))
        layer = get_layer(conn, lid)
        log.info("published", extra={"layer": lid, "relation": rel.qualified, "tracking": rel.tracking})
        out.append(Published(layer, rel.tracking, note, tracked_on))
    return out


def publish_schema(conn: psycopg.Connection, schema: str, *, skip: set[str] = frozenset(),
                   **kw) -> tuple[list[Published], list[tuple[str, str]]]:
    """Publish every spatial relation of ``schema`` not yet published (and every
    set-returning function returning a geometry), except the names in ``skip``.
    Returns (published, [(relation, why not)])."""
    done, skipped = [], []
    for name in spatial_relations(conn, schema):
        qualified = quote_ident(schema) + "." + quote_ident(name)
        if name in skip or published_ids(conn, schema, name):
            continue
        try:
            done += publish(conn, qualified, layer_id=free_id(conn, schema, name), **kw)
        except (InvalidParameter, Conflict, LayerNotFound) as exc:
            skipped.append((qualified, exc.detail))
    return done, skipped


def spatial_relations(conn: psycopg.Connection, schema: str) -> list[str]:
    """Names of the relations of ``schema`` with a geometry/geography column, and of its
    set-returning functions with one in their result."""
    rows = conn.execute(
        "SELECT DISTINCT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "JOIN pg_type t ON t.oid = a.atttypid AND t.typname IN ('geometry', 'geography') "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition "
        "UNION "
        "SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "JOIN pg_type t ON t.oid = ANY (coalesce(p.proallargtypes, ARRAY[]::oid[]) || p.prorettype) "
        "WHERE n.nspname = %s AND p.proretset AND p.prokind = 'f' AND p.provolatile <> 'v' "
        "AND (t.typname IN ('geometry', 'geography') OR EXISTS (SELECT 1 FROM pg_attribute a "
        "     JOIN pg_type g ON g.oid = a.atttypid WHERE a.attrelid = t.typrelid AND t.typrelid <> 0 "
        "     AND g.typname IN ('geometry', 'geography'))) "
        "ORDER BY 1", (schema, schema)).fetchall()
    return [r[0] for r in rows]


def published_ids(conn: psycopg.Connection, schema: str, name: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM gis_meta.layers WHERE relation->>'schema' = %s AND relation->>'name' = %s",
        (schema, name)).fetchall()]


def free_id(conn: psycopg.Connection, schema: str, name: str) -> str:
    """A layer id for a discovered relation: its name, else schema_name, else numbered."""
    for cand in (slugify(name), slugify(f"{schema}_{name}")):
        if get_layer(conn, cand) is None:
            return cand
    base = slugify(f"{schema}_{name}")[:58]
    i = 2
    while get_layer(conn, f"{base}_{i}") is not None:
        i += 1
    return f"{base}_{i}"


# --- change triggers ----------------------------------------------------------------------
def _geometry_args(conn: psycopg.Connection, schema: str, name: str, extra: str | None) -> list[str]:
    """Geometry columns the trigger on ``schema.name`` measures: those of the layers
    published directly from it (or its partitioned parent)."""
    rows = conn.execute(
        "SELECT DISTINCT relation->>'geometry_column' FROM gis_meta.layers "
        "WHERE relation->>'kind' IN ('table', 'partitioned table') AND "
        "((relation->>'schema' = %s AND relation->>'name' = %s) OR relation->'parts' ? %s)",
        (schema, name, quote_ident(schema) + "." + quote_ident(name))).fetchall()
    cols = {r[0] for r in rows}
    if extra:
        cols.add(extra)
    return sorted(cols)


def _install_triggers(conn: psycopg.Connection, cand: _Candidate, layer_id: str) -> tuple[list[str], str]:
    """Statement triggers on every watched table; ([tables], '') or ([], why not)."""
    rel = cand.relation
    direct = rel.kind in ("table", "partitioned table")
    done = []
    try:
        with conn.transaction():
            for _, schema, name, _kind in cand.watch:
                cols = _geometry_args(conn, schema, name, rel.geometry_column if direct else None) \
                    if direct else []
                install_table_triggers(conn, schema, name, cols)
                done.append(quote_ident(schema) + "." + quote_ident(name))
    except psycopg.Error as exc:
        # Installed before by a login that may (the owner, from the command line)? Then they
        # still report this layer's changes: the trigger function finds the layers itself.
        names = [quote_ident(w[1]) + "." + quote_ident(w[2]) for w in cand.watch]
        if all(_has_triggers(conn, n) for n in names):
            return names, ""
        log.info("no change trigger", extra={"layer": layer_id, "error": str(exc).splitlines()[0]})
        return [], ("changes are polled: a change trigger could not be added ("
                    + str(exc).splitlines()[0][:200] + ")")
    return done, ""


def _has_triggers(conn: psycopg.Connection, qualified: str) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s) "
                       "AND tgname LIKE %s AND NOT tgisinternal",
                       (qualified, TRIGGER_PREFIX + "_%")).fetchone()
    return int(row[0]) == 4


def install_table_triggers(conn: psycopg.Connection, schema: str, name: str, cols: list[str]) -> None:
    """(Re)create the platform's statement triggers on ``schema.name`` measuring ``cols``."""
    table = sql.Identifier(schema, name)
    args = sql.SQL(", ").join(sql.Literal(c) for c in cols)
    fn = sql.SQL("gis_meta.relation_changed({})").format(args)
    specs = [("ins", "INSERT", "REFERENCING NEW TABLE AS new_rows"),
             ("upd", "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
             ("del", "DELETE", "REFERENCING OLD TABLE AS old_rows"),
             ("trunc", "TRUNCATE", "")]
    for suffix, event, ref in specs:
        tname = sql.Identifier(f"{TRIGGER_PREFIX}_{suffix}")
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(tname, table))
        conn.execute(sql.SQL("CREATE TRIGGER {} AFTER {} ON {} {} FOR EACH STATEMENT "
                             "EXECUTE FUNCTION {}").format(
            tname, sql.SQL(event), table, sql.SQL(ref), fn))


def drop_table_triggers(conn: psycopg.Connection, schema: str, name: str) -> None:
    table = sql.Identifier(schema, name)
    for suffix in ("ins", "upd", "del", "trunc"):
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
            sql.Identifier(f"{TRIGGER_PREFIX}_{suffix}"), table))


def unpublish(conn: psycopg.Connection, layer_id: str, *, actor: str | None = None,
              trigger_conn: psycopg.Connection | None = None) -> Layer:
    """Remove a published layer from the catalog, and the platform's triggers that no other
    layer needs; the relation itself is left as it was.  A discovered relation is not
    discovered again (``gis_meta.publish_ignored``) until someone publishes it by hand."""
    layer = get_layer(conn, layer_id)
    if layer is None:
        raise LayerNotFound(f"No layer '{layer_id}'.")
    rel = layer.relation
    if rel is None:
        raise InvalidParameter(f"Layer '{layer_id}' was ingested, not published in place; "
                               "delete it instead (DELETE /layers/{id}).")
    with conn.transaction():
        conn.execute("DELETE FROM gis_meta.layers WHERE id = %s", (layer_id,))
        if rel.discovered or actor is not None:
            conn.execute("INSERT INTO gis_meta.publish_ignored (schema_name, name, actor) "
                         "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (rel.schema_name, rel.name, actor))
    _retrigger(trigger_conn or conn, rel.triggers_on)
    return layer


def _retrigger(conn: psycopg.Connection, tables: list[str]) -> None:
    """After a layer left: each table it had triggers on keeps them (with the remaining
    layers' columns) if another published layer still watches it, else loses them."""
    for qualified in tables:
        schema, name, _ = parse_qualified(qualified)
        still = conn.execute(
            "SELECT 1 FROM gis_meta.layers WHERE relation->'triggers_on' ? %s LIMIT 1",
            (qualified,)).fetchone()
        try:
            with conn.transaction():
                if still:
                    install_table_triggers(conn, schema, name, _geometry_args(conn, schema, name, None))
                else:
                    drop_table_triggers(conn, schema, name)
        except psycopg.Error as exc:       # the table is gone, or the login lost its right
            log.warning("triggers not removed", extra={"table": qualified, "error": str(exc)})
