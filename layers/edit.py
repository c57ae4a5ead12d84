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
def check_editable(layer: Layer) -> None:
    if not layer.editable:
        raise Conflict(f"Layer '{layer.id}' is not editable. An administrator can allow it: "
                       f"PATCH /layers/{layer.id} {{\"editable\": true}}.")
    if layer.published or not layer.table_name:
        raise Conflict(f"Layer '{layer.id}' is published in place from another system's "
                       "relation: edit it there.")


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
_SELECT_ROW = "SELECT t.fid FROM {table} AS t WHERE t.fid = %s{rows} FOR UPDATE"


def _locked_row(conn, layer: Layer, fid: int, rows: RowFilter | None) -> tuple[dict, Any] | None:
    cond = sql.SQL("")
    params: list = [fid]
    if rows is not None:
        frag = rows.frag()
        cond = sql.SQL(" AND ({})").format(frag.sql)
        params += frag.params
    return conn.execute(sql.SQL(_SELECT_ROW).format(table=layer.table(), rows=cond), params).fetchone()


def _fid(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise NotFound(f"No feature {value[:40]!r}.") from None
    if not -2**63 <= n < 2**63:
        raise NotFound(f"No feature {value[:40]!r}.")
    return n


def _geom_value(layer: Layer, geometry) -> tuple[sql.Composable, list]:
    """The geometry for the layer's column: a multi-type column takes a single one as multi."""
    if (layer.geometry_type or "").startswith("Multi"):
        return sql.SQL("ST_Multi({})").format(geometry.sql), list(geometry.params)
    return geometry.sql, list(geometry.params)


def _record(conn, layer: Layer, fid: str, op: str, actor: str, reason: str | None, change_set: int,
            previous: int | None) -> int:
    """The feature's state now (after the write) as a version; its number."""
    if op == "delete":
        row = conn.execute(
            "INSERT INTO gis_meta.feature_versions (layer_id, fid, change_set, op, actor, reason, previous) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING version",
            (layer.id, fid, change_set, op, actor, reason, previous)).fetchone()
        return int(row[0])
    # The state as loaded is the state since the layer was made (as-of reads go back to it).
    at = sql.SQL("(SELECT coalesce(loaded_at, created_at) FROM gis_meta.layers WHERE id = {})").format(
        sql.Literal(layer.id)) if op == "loaded" else sql.SQL("now()")
    row = conn.execute(sql.SQL(
        "INSERT INTO gis_meta.feature_versions (layer_id, fid, change_set, op, actor, reason, previous, "
        "properties, geom, at) SELECT %s, %s, %s, %s, %s, %s, %s, to_jsonb(t) - 'fid' - 'geom', t.geom, {} "
        "FROM {} AS t WHERE t.fid = %s RETURNING version").format(at, layer.table()),
        (layer.id, fid, change_set, op, actor, reason, previous, int(fid))).fetchone()
    return int(row[0])


def _loaded(conn, layer: Layer, fid: str, change_set: int) -> int | None:
    """Before a feature's first edit, its state as loaded becomes version one of its history."""
    v = _latest(conn, layer, fid)
    if v is not None:
        return v
    return _record(conn, layer, fid, "loaded", "loaded", None, change_set, None) if fid else None


def _touch(conn, layer: Layer, extent: list[float] | None) -> None:
    """The change, with its lon/lat extent, for tiles and every worker."""
    conn.execute("INSERT INTO gis_meta.layer_changes (layer_id, extent, source) VALUES (%s, %s, 'edit')",
                 (layer.id, extent))
    conn.execute("SELECT pg_notify('gis_catalog', %s)", (CHANGES,))


def _extent(conn, layer: Layer, fids: list[int]) -> list[float] | None:
    """The lon/lat box of these features as stored now."""
    row = conn.execute(sql.SQL(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT ST_Extent(ST_Transform("
        "geom, 4326)) AS b FROM {} WHERE fid = ANY(%s)) s").format(layer.table()), (fids,)).fetchone()
    return [float(v) for v in row] if row[0] is not None else None


def _union(a: list[float] | None, b: list[float] | None) -> list[float] | None:
    if a is None or b is None:
        return a or b
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def _rows_ok(conn, layer: Layer, fid: int, rows: RowFilter | None) -> None:
    """The row as written must still be the caller's (an operator cannot give it away)."""
    if rows is None:
        return
    frag = rows.frag()
    ok = conn.execute(sql.SQL("SELECT 1 FROM {} WHERE fid = %s AND ({})").format(layer.table(), frag.sql),
                      [fid, *frag.params]).fetchone()
    if not ok:
        raise Forbidden("The feature as written would be outside the rows this API key may change "
                        "(its scope: owner, kind or district).")


def _assign(layer: Layer, props: dict) -> tuple[sql.Composable, list]:
    cols = [sql.Identifier(k) for k in props]
    return sql.SQL(", ").join(cols), list(props.values())


def create(conn, layer: Layer, features: list[FeatureIn], *, actor: str, reason: str | None,
           rows: RowFilter | None) -> list[Written]:
    """New features (all or nothing); ids follow the layer's largest."""
    check_editable(layer)
    change_set = int(conn.execute("SELECT nextval('gis_meta.change_set_seq')").fetchone()[0])
    # One creator at a time per layer (ids are max + 1); readers are not blocked.
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(layer.table()))
    next_fid = int(conn.execute(sql.SQL("SELECT coalesce(max(fid), 0) + 1 FROM {}").format(
        layer.table())).fetchone()[0])
    out = []
    for i, f in enumerate(features):
        fid = next_fid + i
        try:
            props = _apply_rules(conn, layer, dict(f.properties), dict(f.properties))
        except PlatformError as exc:
            if len(features) > 1:
                raise type(exc)(f"Feature {i + 1}: {exc.detail}", **exc.extra) from None
            raise
        f = FeatureIn(props, f.geometry, f.present)
        names = [k for k in f.properties]
        g_sql, g_params = _geom_value(layer, f.geometry)
        cols = sql.SQL(", ").join([sql.Identifier("fid"), *[sql.Identifier(k) for k in names],
                                   sql.Identifier("geom")])
        vals = sql.SQL(", ").join([sql.SQL("%s")] * (1 + len(names)) + [g_sql])
        try:
            conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                layer.table(), cols, vals), [fid, *[f.properties[k] for k in names], *g_params])
        except psycopg.errors.DataError as exc:
            raise Unprocessable(f"Feature {i + 1}: {str(exc).splitlines()[0][:200]}.") from None
        _rows_ok(conn, layer, fid, rows)
        version = _record(conn, layer, str(fid), "create", actor, reason, change_set, None)
        out.append(Written(str(fid), f"v{version}", change_set))
    extent = _extent(conn, layer, [int(w.fid) for w in out])
    _touch(conn, layer, extent)
    for w in out:
        w.extent = extent
    return out


def _begin(conn, layer: Layer, fid_text: str, expect: str | None,
           rows: RowFilter | None) -> tuple[int, int, int | None]:
    """Lock the caller's row, check its version, open a change set: (fid, change set,
    the version being replaced)."""
    check_editable(layer)
    fid = _fid(fid_text)
    if _locked_row(conn, layer, fid, rows) is None:
        raise NotFound(f"No feature {fid_text[:40]!r} in collection '{layer.id}'.")
    _check_match(version_token(conn, layer, fid_text), expect, fid_text)
    change_set = int(conn.execute("SELECT nextval('gis_meta.change_set_seq')").fetchone()[0])
    return fid, change_set, _loaded(conn, layer, fid_text, change_set)


def replace(conn, layer: Layer, fid_text: str, f: FeatureIn, *, expect: str | None, actor: str,
            reason: str | None, rows: RowFilter | None, patch: bool = False) -> Written:
    """PUT (every attribute: missing ones become null) or, ``patch``, a JSON merge patch."""
    fid, change_set, previous = _begin(conn, layer, fid_text, expect, rows)
    before = _extent(conn, layer, [fid])
    props = dict(f.properties) if patch else {a.name: f.properties.get(a.name) for a in layer.attributes}
    if layer.id in _RULES:
        current = conn.execute(sql.SQL("SELECT to_jsonb(t) - 'fid' - 'geom' FROM {} AS t WHERE t.fid = %s")
                               .format(layer.table()), (fid,)).fetchone()[0]
        props = _apply_rules(conn, layer, {**current, **props}, props)
    sets = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in props]
    params = list(props.values())
    if f.geometry is not None:
        g_sql, g_params = _geom_value(layer, f.geometry)
        sets.append(sql.SQL("geom = {}").format(g_sql))
        params += g_params
    if sets:
        try:
            conn.execute(sql.SQL("UPDATE {} SET {} WHERE fid = %s").format(
                layer.table(), sql.SQL(", ").join(sets)), [*params, fid])
        except psycopg.errors.DataError as exc:
            raise Unprocessable(str(exc).splitlines()[0][:200] + ".") from None
    _rows_ok(conn, layer, fid, rows)
    version = _record(conn, layer, fid_text, "update" if patch else "replace", actor, reason,
                      change_set, previous)
    extent = _union(before, _extent(conn, layer, [fid]))
    _touch(conn, layer, extent)
    return Written(fid_text, f"v{version}", change_set, extent)


def delete(conn, layer: Layer, fid_text: str, *, expect: str | None, actor: str, reason: str | None,
           rows: RowFilter | None) -> Written:
    """Remove a feature; its history keeps a tombstone."""
    fid, change_set, previous = _begin(conn, layer, fid_text, expect, rows)
    extent = _extent(conn, layer, [fid])
    conn.execute(sql.SQL("DELETE FROM {} WHERE fid = %s").format(layer.table()), (fid,))
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
    fid = _fid(fid_text)
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
    exists = _locked_row(conn, layer, fid, rows) is not None
    if not exists and rows is not None and conn.execute(sql.SQL("SELECT 1 FROM {} WHERE fid = %s").format(
            layer.table()), (fid,)).fetchone():
        raise NotFound(f"No feature {fid_text[:40]!r} in collection '{layer.id}'.")
    _check_match(version_token(conn, layer, fid_text), expect, fid_text)
    change_set = int(conn.execute("SELECT nextval('gis_meta.change_set_seq')").fetchone()[0])
    previous = _loaded(conn, layer, fid_text, change_set) if exists else \
        _latest(conn, layer, fid_text)
    before = _extent(conn, layer, [fid]) if exists else None
    if exists:
        conn.execute(sql.SQL("DELETE FROM {} WHERE fid = %s").format(layer.table()), (fid,))
    conn.execute(sql.SQL(
        "INSERT INTO {t} SELECT (jsonb_populate_record(NULL::{t}, properties || jsonb_build_object("
        "'fid', fid::bigint, 'geom', ST_AsEWKT(geom)))).* FROM gis_meta.feature_versions "
        "WHERE layer_id = %s AND fid = %s AND version = %s").format(t=layer.table()),
        (layer.id, fid_text, v))
    _rows_ok(conn, layer, fid, rows)
    version_new = _record(conn, layer, fid_text, "restore", actor, reason, change_set, previous)
    extent = _union(before, _extent(conn, layer, [fid]))
    _touch(conn, layer, extent)
    return Written(fid_text, f"v{version_new}", change_set, extent)
