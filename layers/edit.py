"""Feature writes on editable layers, with versions kept (the system of record, #17).

Each function runs inside one transaction the caller opened (``Database.run_sync(...,
transaction=True)``): the row is locked, the caller's expected version checked, the row
written, the version recorded in ``gis_meta.feature_versions`` and the change - with the
lon/lat extent of the old and the new geometry - appended to ``gis_meta.layer_changes``, so
only the tiles over it are rendered anew (:mod:`layers.changes`).  Everything or nothing.

A feature's version token (its ETag) is ``v<version>`` of its latest recorded version, or
``b<data version>`` for a feature never edited since the layer was loaded.  Writes name the
version they change (``If-Match``); a stale one is refused with the current one.

The caller's row filter (an operator limited to its owner's facilities) applies twice: the
row must be one the caller may write, and so must the row as written.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import shapely
from psycopg import sql

from gis_platform.access import RowFilter
from gis_platform.errors import Conflict, Forbidden, InvalidParameter, NotFound, PlatformError, Unprocessable
from gis_platform.sqlfrag import Frag
from layers.catalog import DATA_SCHEMA, Generation, Layer
from layers.changes import CHANGES
from layers.spatial import CrsRef, geometry_sql, shape_from_geojson

_NUMBER = {"smallint", "integer", "bigint", "double precision", "real", "numeric"}
_INT = {"smallint", "integer", "bigint"}


class PreconditionFailed(PlatformError):
    status, title, type_slug = 412, "Precondition failed", "precondition-failed"


class PreconditionRequired(PlatformError):
    status, title, type_slug = 428, "Precondition required", "precondition-required"


@dataclass
class Written:
    """What one write did: the feature id, its new version token and the change set."""

    fid: str
    etag: str | None
    change_set: int
    extent: list[float] | None = None


@dataclass
class FeatureIn:
    """A validated feature from a request body (attributes typed, geometry as SQL)."""

    properties: dict[str, Any]
    geometry: Any = None                 # a Frag in the layer's SRID, or None (PATCH without one)
    present: set[str] = field(default_factory=set)    # attributes the request named


# --- validation -------------------------------------------------------------------------------
def why_not_editable(layer: Layer) -> str | None:
    """Why the layer's rows cannot take feature writes at all (None: they can, once the
    layer is marked editable): only tables - ingested, or published in place with a key."""
    rel = layer.relation
    if rel is None:
        return None if layer.kind == "vector" and layer.table_name else \
            f"Layer '{layer.id}' has no table of features to edit."
    if rel.kind not in ("table", "partitioned table"):
        return (f"Layer '{layer.id}' is published from the {rel.kind} {rel.qualified}: only tables "
                "take writes. Edit the tables it reads, or publish those.")
    if not rel.key:
        return (f"Layer '{layer.id}' is published from {rel.qualified}, which has no key: features "
                "without a stable id cannot be edited. Add a primary key and publish it again.")
    return None


def writable(layer: Layer) -> bool:
    """Marked editable, and its rows can take writes."""
    return layer.editable and why_not_editable(layer) is None


def check_grants(conn: psycopg.Connection, layer: Layer) -> None:
    """A published relation to be edited: this login must be allowed to write it (409
    naming the GRANT that is missing)."""
    rel = layer.relation
    if rel is None:
        return
    missing = [p for p in ("INSERT", "UPDATE", "DELETE") if not conn.execute(
        "SELECT has_table_privilege(%s, %s)", (rel.qualified, p)).fetchone()[0]]
    if missing:
        who = conn.execute("SELECT current_user").fetchone()[0]
        raise Conflict(f"The platform's login may not write {rel.qualified}. Its owner can allow "
                       f"it: GRANT {', '.join(missing)} ON {rel.qualified} TO {who};")


def check_editable(layer: Layer) -> None:
    why = why_not_editable(layer)
    if why:
        raise Conflict(why)
    if not layer.editable:
        raise Conflict(f"Layer '{layer.id}' is not editable. An administrator can allow it: "
                       f"PATCH /layers/{layer.id} {{\"editable\": true}}.")


def _value(layer: Layer, name: str, value: Any) -> Any:
    attr = layer.attribute(name)
    t = attr.type.lower()
    if value is None:
        return None
    try:
        if t in _NUMBER or t.startswith("numeric"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError
            if not math.isfinite(float(value)):
                raise ValueError
            if t in _INT and (not float(value).is_integer()):
                raise ValueError
            return int(value) if t in _INT else float(value)
        if t == "boolean":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if t == "date":
            return dt.date.fromisoformat(str(value))
        if t.startswith("timestamp"):
            v = dt.datetime.fromisoformat(str(value))
            return v if v.tzinfo or t == "timestamp without time zone" else v.replace(tzinfo=dt.UTC)
        if isinstance(value, dict | list):
            raise ValueError
        if not isinstance(value, str):
            raise ValueError
        if len(value) > 10_000:
            raise InvalidParameter(f"{name} is too long (at most 10,000 characters).", parameter=name)
        return value
    except (ValueError, TypeError):
        kind = ("a whole number" if t in _INT else "a number" if t in _NUMBER or t.startswith("numeric")
                else "true or false" if t == "boolean" else "a date (YYYY-MM-DD)" if t == "date"
                else "a date-time (RFC 3339)" if t.startswith("timestamp") else "text")
        raise InvalidParameter(f"Property {name!r} must be {kind}, not {orjson.dumps(value).decode()[:60]}.",
                               parameter=name) from None


def parse_feature(layer: Layer, doc: Any, crs: CrsRef, *, partial: bool = False) -> FeatureIn:
    """A GeoJSON Feature (or, ``partial``, a merge patch of one) checked against the layer:
    known attributes of the right types, a geometry of the layer's family in ``crs``."""
    if not isinstance(doc, dict) or (doc.get("type") not in ("Feature", None) and not partial):
        raise InvalidParameter("The body must be a GeoJSON Feature.", parameter="body")
    unknown = sorted(set(doc) - {"type", "id", "properties", "geometry", "links", "bbox"})
    if unknown:
        raise InvalidParameter(f"Unknown members {unknown} in the feature.", parameter=unknown[0])
    props = doc.get("properties") if "properties" in doc else ({} if partial else None)
    if props is None and not partial:
        props = {}
    if not isinstance(props, dict):
        raise InvalidParameter("properties must be a JSON object.", parameter="properties")
    names = {a.name for a in layer.attributes}
    bad = sorted(k for k in props if k not in names)
    if bad:
        raise InvalidParameter(f"Unknown properties {bad[:5]}; the layer has: "
                               + ", ".join(sorted(names)[:40]) + ".", parameter=bad[0])
    typed = {k: _value(layer, k, v) for k, v in props.items()}
    geometry = None
    if "geometry" in doc or not partial:
        g = doc.get("geometry")
        if g is None:
            raise InvalidParameter("A feature of this layer needs a geometry.", parameter="geometry")
        shape = shape_from_geojson(g, param="geometry")
        _check_family(layer, shape)
        geometry = geometry_sql(shape, crs, param="geometry", srid=layer.rows.srid)
    return FeatureIn(typed, geometry, set(props))


def _check_family(layer: Layer, shape: shapely.Geometry) -> None:
    want = (layer.geometry_type or "").replace("Multi", "")
    got = shape.geom_type.replace("Multi", "")
    if want and want != "Geometry" and got != want:
        raise Unprocessable(f"This layer holds {layer.geometry_type} features; the geometry is a "
                            f"{shape.geom_type}.", parameter="geometry")
    if not shape.is_valid:
        raise Unprocessable(f"The geometry is not valid ({shapely.is_valid_reason(shape)}).",
                            parameter="geometry")


# --- rules of a domain -------------------------------------------------------------------------
#: ``check(conn, attributes, written) -> attributes``: a domain's rules for a layer's
#: features (known kinds, plausible depths...), given the feature's whole state after the
#: write and the names the write sets; raises Unprocessable naming the field and the rule
#: (a rule the write touches: a wrong value left from before does not block an unrelated
#: edit), or returns the attributes normalised (a Korean kind name mapped to its code).
#: Registered by the domain package at start-up.
RuleCheck = Callable[[psycopg.Connection, dict[str, Any], set[str]], dict[str, Any]]
_RULES: dict[str, RuleCheck] = {}


def register_rules(layer_id: str, check: RuleCheck) -> None:
    _RULES[layer_id] = check


def _apply_rules(conn, layer: Layer, state: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """``written`` (the attributes the request sets) after the layer's rules judged the
    feature's whole ``state``."""
    check = _RULES.get(layer.id)
    if check is None:
        return written
    fixed = check(conn, state, set(written))
    return {k: fixed.get(k, v) for k, v in written.items()}


# --- versions ---------------------------------------------------------------------------------
#: Versions of the rows the layer has now (not of those an earlier ingest replaced, whose
#: feature ids were another feature's): ``%s`` the layer id.
CURRENT = ("at >= (SELECT coalesce(loaded_at, created_at) FROM gis_meta.layers "
           "WHERE id = %s)")


def _latest(conn: psycopg.Connection, layer: Layer, fid: str) -> int | None:
    row = conn.execute(f"SELECT version FROM gis_meta.feature_versions WHERE layer_id = %s AND fid = %s "
                       f"AND {CURRENT} ORDER BY version DESC LIMIT 1", (layer.id, fid, layer.id)).fetchone()
    return int(row[0]) if row else None


def version_token(conn: psycopg.Connection, layer: Layer, fid: str) -> str:
    v = _latest(conn, layer, fid)
    return f"v{v}" if v is not None else f"b{layer.data_version}"


def _check_match(current: str, expect: str | None, fid: str) -> None:
    if expect is None:
        raise PreconditionRequired(
            f"Send If-Match with the ETag of feature {fid} as you last read it (GET it first): "
            "writes never overwrite a change you have not seen.", currentEtag=f'"{current}"')
    tokens = {t.strip().removeprefix("W/").strip('"') for t in expect.split(",")}
    if "*" not in tokens and current not in tokens:
        raise PreconditionFailed(
            f"Feature {fid} changed since you read it: it is now version \"{current}\". "
            "Read it again, apply your change to it, and send that ETag.", currentEtag=f'"{current}"')


# --- writes -----------------------------------------------------------------------------------
# Every statement names the layer's rows through its RowSource (layers.relation): an ingested
# table (key ``fid``, geometry ``geom``) or a relation published in place (its own key
# columns, geometry column, SRID, geometry or geography).

def _where(layer: Layer, fid_text: str, alias: str | None = "t") -> Frag:
    """The condition selecting feature ``fid_text`` (404 when it cannot be one)."""
    cond = layer.rows.id_where(fid_text, alias)
    if cond is None:
        raise NotFound(f"No feature {fid_text[:40]!r} in collection '{layer.id}'.")
    return cond


def _with_rows(cond: Frag, rows: RowFilter | None) -> Frag:
    return cond if rows is None else Frag.join([cond, rows.frag()], " AND ")


def _locked_row(conn, layer: Layer, fid_text: str, rows: RowFilter | None) -> bool:
    cond = _with_rows(_where(layer, fid_text), rows)
    return conn.execute(sql.SQL("SELECT 1 FROM {} AS t WHERE {} FOR UPDATE").format(
        layer.table(), cond.sql), cond.params).fetchone() is not None


def _geom_column(layer: Layer) -> str:
    return layer.relation.geometry_column if layer.relation is not None else "geom"


def _geom_value(layer: Layer, geometry) -> tuple[sql.Composable, list]:
    """The geometry for the layer's column: a multi-type column takes a single one as multi;
    a geography column takes it cast."""
    g = geometry.sql
    if (layer.geometry_type or "").startswith("Multi"):
        g = sql.SQL("ST_Multi({})").format(g)
    if layer.relation is not None and layer.relation.geography:
        g = sql.SQL("({})::geography").format(g)
    return g, list(geometry.params)


def _state(layer: Layer) -> tuple[sql.Composable, sql.Composable]:
    """A row ``t``'s attributes (jsonb) and geometry, as history keeps them."""
    if layer.relation is None:
        return sql.SQL("to_jsonb(t) - 'fid' - 'geom'"), sql.SQL("t.geom")
    return (sql.SQL("to_jsonb(t) - {}").format(sql.Literal(layer.relation.geometry_column)),
            layer.rows.geom("t"))


def _record(conn, layer: Layer, fid: str, op: str, actor: str, reason: str | None, change_set: int,
            previous: int | None) -> int:
    """The feature's state now (after the write) as a version; its number."""
    if op == "delete":
        row = conn.execute(
            "INSERT INTO gis_meta.feature_versions (layer_id, fid, change_set, op, actor, reason, previous) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING version",
            (layer.id, fid, change_set, op, actor, reason, previous)).fetchone()
        return int(row[0])
    # The state as loaded is the state since the rows were loaded (as-of reads go back to
    # it); a published relation's, the state found before the platform's first write.
    at = sql.SQL("(SELECT coalesce(loaded_at, created_at) FROM gis_meta.layers WHERE id = {})").format(
        sql.Literal(layer.id)) if op == "loaded" and layer.relation is None else sql.SQL("now()")
    props, geom = _state(layer)
    cond = _where(layer, fid)
    row = conn.execute(sql.SQL(
        "INSERT INTO gis_meta.feature_versions (layer_id, fid, change_set, op, actor, reason, previous, "
        "properties, geom, at) SELECT %s, %s, %s, %s, %s, %s, %s, {}, {}, {} "
        "FROM {} AS t WHERE {} RETURNING version").format(props, geom, at, layer.table(), cond.sql),
        [layer.id, fid, change_set, op, actor, reason, previous, *cond.params]).fetchone()
    return int(row[0])


def _loaded(conn, layer: Layer, fid: str, change_set: int) -> int | None:
    """Before a feature's first edit, its state as loaded becomes version one of its history."""
    v = _latest(conn, layer, fid)
    if v is not None:
        return v
    return _record(conn, layer, fid, "loaded", "loaded", None, change_set, None) if fid else None


def _touch(conn, layer: Layer, extent: list[float] | None) -> None:
    """The change, with its lon/lat extent, for tiles and every worker (a published relation
    whose statement triggers log it themselves: nothing to add)."""
    if layer.relation is not None and layer.relation.tracking == "trigger":
        return
    conn.execute("INSERT INTO gis_meta.layer_changes (layer_id, extent, source) VALUES (%s, %s, 'edit')",
                 (layer.id, extent))
    conn.execute("SELECT pg_notify('gis_catalog', %s)", (CHANGES,))


def _extent(conn, layer: Layer, fids: list[str]) -> list[float] | None:
    """The lon/lat box of these features as stored now."""
    conds = [_where(layer, f) for f in fids]
    cond = Frag.join(conds, " OR ")
    row = conn.execute(sql.SQL(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT ST_Extent({}) AS b "
        "FROM {} AS t WHERE {}) s").format(layer.rows.geom_in(4326, "t"), layer.table(), cond.sql),
        cond.params).fetchone()
    return [float(v) for v in row] if row[0] is not None else None


def _union(a: list[float] | None, b: list[float] | None) -> list[float] | None:
    if a is None or b is None:
        return a or b
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def _rows_ok(conn, layer: Layer, fid: str, rows: RowFilter | None) -> None:
    """The row as written must still be the caller's (an operator cannot give it away)."""
    if rows is None:
        return
    cond = _with_rows(_where(layer, fid), rows)
    if not conn.execute(sql.SQL("SELECT 1 FROM {} AS t WHERE {}").format(layer.table(), cond.sql),
                        cond.params).fetchone():
        raise Forbidden("The feature as written would be outside the rows this API key may change "
                        "(its scope: owner, kind or district).")


def _keys(layer: Layer) -> list[str]:
    """Key columns a write may not change (a published relation's; ``fid`` is not an attribute)."""
    return [k.name for k in layer.relation.key] if layer.relation is not None else []


def create(conn, layer: Layer, features: list[FeatureIn], *, actor: str, reason: str | None,
           rows: RowFilter | None) -> list[Written]:
    """New features (all or nothing).  An ingested layer's ids follow its largest; a
    published relation's come from its key's default (an identity, a sequence, a uuid
    function) or from the properties."""
    check_editable(layer)
    change_set = int(conn.execute("SELECT nextval('gis_meta.change_set_seq')").fetchone()[0])
    next_fid = None
    if layer.relation is None:
        # One creator at a time per layer (ids are max + 1); readers are not blocked.
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(layer.table()))
        next_fid = int(conn.execute(sql.SQL("SELECT coalesce(max(fid), 0) + 1 FROM {}").format(
            layer.table())).fetchone()[0])
    out = []
    for i, f in enumerate(features):
        try:
            props = _apply_rules(conn, layer, dict(f.properties), dict(f.properties))
        except PlatformError as exc:
            if len(features) > 1:
                raise type(exc)(f"Feature {i + 1}: {exc.detail}", **exc.extra) from None
            raise
        names = list(props)
        g_sql, g_params = _geom_value(layer, f.geometry)
        cols = [sql.Identifier(k) for k in names] + [sql.Identifier(_geom_column(layer))]
        vals = [sql.SQL("%s")] * len(names) + [g_sql]
        params = [props[k] for k in names] + g_params
        if next_fid is not None:
            cols.insert(0, sql.Identifier("fid"))
            vals.insert(0, sql.SQL("%s"))
            params.insert(0, next_fid + i)
        try:
            with conn.transaction():            # a savepoint: the error is a 4xx, not a dead transaction
                got = conn.execute(sql.SQL("INSERT INTO {} AS t ({}) VALUES ({}) RETURNING {}").format(
                    layer.table(), sql.SQL(", ").join(cols), sql.SQL(", ").join(vals),
                    layer.rows.fid("t")), params).fetchone()
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise Unprocessable(f"Feature {i + 1}: {_db_message(exc)}") from None
        fid = str(got[0])
        _rows_ok(conn, layer, fid, rows)
        version = _record(conn, layer, fid, "create", actor, reason, change_set, None)
        out.append(Written(fid, f"v{version}", change_set))
    extent = _extent(conn, layer, [w.fid for w in out])
    _touch(conn, layer, extent)
    for w in out:
        w.extent = extent
    return out


def _db_message(exc: psycopg.Error) -> str:
    """What the database refused, for a person (a missing key, a duplicate, a wrong value)."""
    diag = exc.diag
    if isinstance(exc, psycopg.errors.NotNullViolation) and diag.column_name:
        return f"{diag.column_name} is required (the column cannot be empty)."
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return f"a feature with this key exists already ({(diag.message_detail or '')[:200]})."
    if isinstance(exc, psycopg.errors.ForeignKeyViolation | psycopg.errors.CheckViolation):
        return f"the relation's rule {diag.constraint_name or ''} refuses it: {(diag.message_detail or diag.message_primary or '')[:200]}"
    return (diag.message_primary or str(exc).splitlines()[0])[:200] + "."


def _begin(conn, layer: Layer, fid_text: str, expect: str | None,
           rows: RowFilter | None) -> tuple[int, int | None]:
    """Lock the caller's row, check its version, open a change set: (change set, the
    version being replaced)."""
    check_editable(layer)
    if not _locked_row(conn, layer, fid_text, rows):
        raise NotFound(f"No feature {fid_text[:40]!r} in collection '{layer.id}'.")
    _check_match(version_token(conn, layer, fid_text), expect, fid_text)
    change_set = int(conn.execute("SELECT nextval('gis_meta.change_set_seq')").fetchone()[0])
    return change_set, _loaded(conn, layer, fid_text, change_set)


def _current(conn, layer: Layer, fid_text: str) -> dict[str, Any]:
    props, _ = _state(layer)
    cond = _where(layer, fid_text)
    return conn.execute(sql.SQL("SELECT {} FROM {} AS t WHERE {}").format(props, layer.table(), cond.sql),
                        cond.params).fetchone()[0]


def replace(conn, layer: Layer, fid_text: str, f: FeatureIn, *, expect: str | None, actor: str,
            reason: str | None, rows: RowFilter | None, patch: bool = False) -> Written:
    """PUT (every attribute: missing ones become null) or, ``patch``, a JSON merge patch.
    A published relation's key columns identify the feature: they cannot change."""
    change_set, previous = _begin(conn, layer, fid_text, expect, rows)
    before = _extent(conn, layer, [fid_text])
    keys = _keys(layer)
    props = dict(f.properties) if patch else {a.name: f.properties.get(a.name) for a in layer.attributes
                                              if a.name not in keys or a.name in f.properties}
    current = _current(conn, layer, fid_text) if (keys or layer.id in _RULES) else {}
    for k in keys:
        if k in props:
            if props[k] is not None and str(props[k]) == str(current.get(k)):
                del props[k]
            else:
                raise Unprocessable(f"{k} is part of the feature's key: it cannot change "
                                    "(create a new feature and delete this one).", parameter=k)
    if layer.id in _RULES:
        props = _apply_rules(conn, layer, {**current, **props}, props)
    sets = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in props]
    params = list(props.values())
    if f.geometry is not None:
        g_sql, g_params = _geom_value(layer, f.geometry)
        sets.append(sql.SQL("{} = {}").format(sql.Identifier(_geom_column(layer)), g_sql))
        params += g_params
    if sets:
        cond = _where(layer, fid_text)
        try:
            with conn.transaction():
                conn.execute(sql.SQL("UPDATE {} AS t SET {} WHERE {}").format(
                    layer.table(), sql.SQL(", ").join(sets), cond.sql), [*params, *cond.params])
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise Unprocessable(_db_message(exc)) from None
    _rows_ok(conn, layer, fid_text, rows)
    version = _record(conn, layer, fid_text, "update" if patch else "replace", actor, reason,
                      change_set, previous)
    extent = _union(before, _extent(conn, layer, [fid_text]))
    _touch(conn, layer, extent)
    return Written(fid_text, f"v{version}", change_set, extent)


def delete(conn, layer: Layer, fid_text: str, *, expect: str | None, actor: str, reason: str | None,
           rows: RowFilter | None) -> Written:
    """Remove a feature; its history keeps a tombstone."""
    change_set, previous = _begin(conn, layer, fid_text, expect, rows)
    extent = _extent(conn, layer, [fid_text])
    cond = _where(layer, fid_text)
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DELETE FROM {} AS t WHERE {}").format(layer.table(), cond.sql), cond.params)
    except psycopg.errors.IntegrityError as exc:
        raise Conflict(f"Feature {fid_text} cannot be deleted: {_db_message(exc)}") from None
    _record(conn, layer, fid_text, "delete", actor, reason, change_set, previous)
    _touch(conn, layer, extent)
    return Written(fid_text, None, change_set, extent)


def versions(conn, layer: Layer, fid_text: str) -> list[dict]:
    """Every recorded version of a feature, newest first (properties and GeoJSON geometry)."""
    rows = conn.execute(
        "SELECT version, op, actor, reason, at, previous, change_set, properties, "
        "ST_AsGeoJSON(ST_Transform(geom, 4326), 7) FROM gis_meta.feature_versions "
        f"WHERE layer_id = %s AND fid = %s AND {CURRENT} ORDER BY version DESC",
        (layer.id, fid_text, layer.id)).fetchall()
    return [{"version": f"v{r[0]}", "op": r[1], "actor": r[2], "reason": r[3],
             "at": r[4].isoformat().replace("+00:00", "Z"), "previous": f"v{r[5]}" if r[5] else None,
             "changeSet": r[6], "properties": r[7],
             "geometry": orjson.loads(r[8]) if r[8] else None} for r in rows]


# --- the past ---------------------------------------------------------------------------------
def parse_as_of(value: str, layer: Layer) -> dt.datetime:
    """``asOf``: an RFC 3339 instant (a date: the end of that day), on a layer with history,
    not before the layer was made."""
    if not layer.editable or layer.published:
        raise InvalidParameter(f"Layer '{layer.id}' keeps no history (it is not editable): "
                               "asOf cannot be used.", parameter="asOf")
    text = value.strip()
    try:
        if len(text) == 10:
            at = dt.datetime.combine(dt.date.fromisoformat(text), dt.time.max, tzinfo=dt.UTC)
        else:
            at = dt.datetime.fromisoformat(text)
            at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    except ValueError:
        raise InvalidParameter(f"asOf {text[:40]!r} is not an RFC 3339 date-time "
                               "(e.g. 2026-06-01T00:00:00Z).", parameter="asOf") from None
    first = earliest(layer)
    if first is not None and at < first:
        raise InvalidParameter(f"asOf {text[:40]} is before the history of layer '{layer.id}' "
                               f"begins ({first.isoformat()}).", parameter="asOf")
    return at


#: The end of the current generation: none.
FOREVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def generation_at(layer: Layer, at: dt.datetime) -> tuple[Generation | None, dt.datetime, dt.datetime]:
    """Which rows were the layer at ``at``: ``(None, since, FOREVER)`` the current ones,
    else the kept rows an ingest replaced, with the window they were the layer in."""
    start = layer.loaded_at or layer.created_at
    if start is None or at >= start:
        return None, start or dt.datetime.min.replace(tzinfo=dt.UTC), FOREVER
    for g in reversed(layer.generations):
        if g.valid_from <= at < g.valid_to:
            return g, g.valid_from, g.valid_to
    raise InvalidParameter(f"Layer '{layer.id}' keeps no rows from {at.isoformat()} (its history "
                           f"begins {earliest(layer).isoformat()}).", parameter="asOf")


def earliest(layer: Layer) -> dt.datetime | None:
    """Since when the layer's history goes back."""
    if layer.generations:
        return layer.generations[0].valid_from
    return layer.loaded_at or layer.created_at


def _generation_rows(layer: Layer, g: Generation) -> sql.Composable:
    """Kept rows of an earlier ingest with the layer's columns now (a column they lacked,
    or had with another type, reads as null)."""
    had = {a.name: a.type for a in g.attributes}
    cols = [sql.SQL("fid")]
    for a in layer.attributes:
        if had.get(a.name) == a.type:
            cols.append(sql.Identifier(a.name))
        else:
            cols.append(sql.SQL("NULL::{} AS {}").format(sql.SQL(a.type), sql.Identifier(a.name)))
    cols.append(sql.SQL("geom"))
    return sql.SQL("(SELECT {} FROM {})").format(sql.SQL(", ").join(cols),
                                                 sql.Identifier(DATA_SCHEMA, g.table))


def as_of_source(layer: Layer, at: dt.datetime | None, named: str | None = None,
                 alias: str | None = "as_of", generation: Generation | None = None
                 ) -> tuple[sql.Composable, list]:
    """The layer's rows as they were at ``at``, as a ``FROM`` item with the table's columns:
    the rows of then (the current table, or the kept rows an earlier ingest replaced), those
    edited since read from their history (deleted ones included, created ones left out).

    ``named``: a prefix of named placeholders (``%(<prefix>l)s`` the layer, ``t`` the time,
    ``lo`` and ``hi`` the window of the generation read, which is ``generation`` - the
    caller chose it with :func:`generation_at`); params as one dict, filled when ``at`` is
    given."""
    t = layer.table()
    if at is not None:
        generation, lo_v, hi_v = generation_at(layer, at)
    else:
        lo_v = hi_v = None
    base = t if generation is None else _generation_rows(layer, generation)
    if named is not None:
        lid, ts, lo, hi = (sql.SQL("%({})s").format(sql.SQL(named + k)) for k in ("l", "t", "lo", "hi"))
        params: list = [{named + "l": layer.id, named + "t": at, named + "lo": lo_v, named + "hi": hi_v}]
    else:
        lid = ts = lo = hi = sql.SQL("%s")
        params = [layer.id, at, hi_v, layer.id, at, lo_v, layer.id, at, hi_v]
    q = sql.SQL(
        "(SELECT t.* FROM {base} AS t WHERE NOT EXISTS (SELECT 1 FROM gis_meta.feature_versions v "
        "WHERE v.layer_id = {lid} AND v.fid = t.fid::text AND v.at > {ts} AND v.at < {hi}) "
        "UNION ALL SELECT (s.r).* FROM (SELECT jsonb_populate_record(NULL::{t}, h.properties || "
        "jsonb_build_object('fid', h.fid::bigint, 'geom', ST_AsEWKT(h.geom))) AS r FROM ("
        "SELECT DISTINCT ON (fid) fid, op, properties, geom FROM gis_meta.feature_versions "
        "WHERE layer_id = {lid} AND at <= {ts} AND at >= {lo} AND fid IN (SELECT fid FROM "
        "gis_meta.feature_versions WHERE layer_id = {lid} AND at > {ts} AND at < {hi}) "
        "ORDER BY fid, version DESC) AS h WHERE h.op <> 'delete') AS s)").format(
        base=base, t=t, lid=lid, ts=ts, lo=lo, hi=hi)
    if alias is not None:
        q = q + sql.SQL(" AS {}").format(sql.Identifier(alias))
    return q, params


def restore(conn, layer: Layer, fid_text: str, version: str, *, expect: str | None, actor: str,
            reason: str | None, rows: RowFilter | None) -> Written:
    """Bring back a recorded version (a deleted feature too): itself a new version."""
    check_editable(layer)
    cond = _where(layer, fid_text)
    try:
        v = int(version.removeprefix("v"))
    except ValueError:
        raise InvalidParameter("version must be a version of the feature, e.g. v1234.",
                               parameter="version") from None
    old = conn.execute("SELECT op FROM gis_meta.feature_versions WHERE layer_id = %s AND fid = %s "
                       f"AND version = %s AND {CURRENT}", (layer.id, fid_text, v, layer.id)).fetchone()
    if old is None:
        raise NotFound(f"Feature {fid_text!r} has no version v{v}.")
    if old[0] == "delete":
        raise InvalidParameter(f"v{v} is the deletion of feature {fid_text}; restore the version "
                               "before it.", parameter="version")
    exists = _locked_row(conn, layer, fid_text, rows)
    if not exists and rows is not None and conn.execute(sql.SQL("SELECT 1 FROM {} AS t WHERE {}").format(
            layer.table(), cond.sql), cond.params).fetchone():
        raise NotFound(f"No feature {fid_text[:40]!r} in collection '{layer.id}'.")
    _check_match(version_token(conn, layer, fid_text), expect, fid_text)
    change_set = int(conn.execute("SELECT nextval('gis_meta.change_set_seq')").fetchone()[0])
    previous = _loaded(conn, layer, fid_text, change_set) if exists else _latest(conn, layer, fid_text)
    before = _extent(conn, layer, [fid_text]) if exists else None
    if exists:
        conn.execute(sql.SQL("DELETE FROM {} AS t WHERE {}").format(layer.table(), cond.sql), cond.params)
    names = ([] if layer.relation is not None else ["fid"]) + [a.name for a in layer.attributes] \
        + [_geom_column(layer)]
    extra = sql.SQL("jsonb_build_object({}, ST_AsEWKT(v.geom))").format(sql.Literal(_geom_column(layer)))
    if layer.relation is None:
        extra = sql.SQL("jsonb_build_object('fid', v.fid::bigint, 'geom', ST_AsEWKT(v.geom))")
    try:
        with conn.transaction():
            conn.execute(sql.SQL(
                "INSERT INTO {t} ({cols}) SELECT {vals} FROM gis_meta.feature_versions v, "
                "jsonb_populate_record(NULL::{t}, v.properties || {extra}) AS r "
                "WHERE v.layer_id = %s AND v.fid = %s AND v.version = %s").format(
                t=layer.table(), cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
                vals=sql.SQL(", ").join(sql.Identifier("r", n) for n in names), extra=extra),
                (layer.id, fid_text, v))
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        raise Conflict(f"Version v{v} cannot be brought back: {_db_message(exc)}") from None
    _rows_ok(conn, layer, fid_text, rows)
    version_new = _record(conn, layer, fid_text, "restore", actor, reason, change_set, previous)
    extent = _union(before, _extent(conn, layer, [fid_text]))
    _touch(conn, layer, extent)
    return Written(fid_text, f"v{version_new}", change_set, extent)
