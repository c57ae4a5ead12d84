"""Loading prepared data into PostGIS with binary COPY, all-or-nothing.

Every mode runs in one transaction:

* ``create``  – the id must be new; COPY into a new table, index, register.
* ``replace`` – COPY into a staging table, index and ANALYZE it, then drop the old table and
  rename the staging one into place, and update the catalog; readers see the old layer until
  the commit and the new one after it.
* ``append``  – the columns must match the layer's; COPY into the live table.

Every ingest is a change set recorded in ``gis_meta.layer_loads`` (who, when, why, from
what).  On an editable layer - one that keeps its history - a replace keeps the rows it
replaces (the old table is renamed, not dropped) and an append records each new feature as a
'create' version, so "as of" reads go back across ingests (:mod:`layers.edit`).

Any failure rolls the transaction back, so the previous layer is left exactly as it was.
Geometries travel as EWKB with their SRID (the column's typmod is the SRID guard).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gis_platform.errors import Conflict, IngestError, LayerNotFound
from layers.catalog import DATA_SCHEMA, Layer, ensure_new_id, get_layer, refuse_if_view
from layers.ingest.prepare import Prepared
from layers.selection import parse as parse_selection

_COPY_TYPES = {"text": "text", "bigint": "int8", "integer": "int4", "double precision": "float8",
               "boolean": "bool", "date": "date", "timestamp": "timestamp",
               "timestamptz": "timestamptz"}
BATCH = 20_000


def _create_table(conn: psycopg.Connection, table: str, prepared: Prepared) -> None:
    cols = [sql.SQL("fid bigint PRIMARY KEY")]
    cols += [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
             for c in prepared.columns]
    cols.append(sql.SQL("geom geometry({}, {}) NOT NULL").format(
        sql.SQL(prepared.geometry_type), sql.Literal(int(prepared.srid))))
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(
        sql.Identifier(DATA_SCHEMA, table), sql.SQL(", ").join(cols)))


def _copy(conn: psycopg.Connection, table: str, prepared: Prepared, first_fid: int,
          progress: Callable[[int], None] | None) -> None:
    names = ["fid", *[c.name for c in prepared.columns], "geom"]
    # Geometry goes as bytea: in binary COPY the server runs the column's own receive
    # function (geometry_recv) on the bytes, which reads EWKB.
    types = ["int8", *[_COPY_TYPES[c.pg_type] for c in prepared.columns], "bytea"]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(DATA_SCHEMA, table), sql.SQL(", ").join(sql.Identifier(n) for n in names))
    n = prepared.count
    columns = [c.values for c in prepared.columns]
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.set_types(types)
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            fids = range(first_fid + start, first_fid + stop)
            rows = zip(fids, *(col[start:stop] for col in columns), prepared.wkb[start:stop])
            for row in rows:
                copy.write_row(row)
            if progress:
                progress(stop - start)


def _index_and_analyze(conn: psycopg.Connection, table: str) -> None:
    conn.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
        sql.Identifier(f"{table}_geom_idx"[:63]), sql.Identifier(DATA_SCHEMA, table)))
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(DATA_SCHEMA, table)))


def _stats(conn: psycopg.Connection, table: str) -> tuple[int, list[float] | None]:
    n, xmin, ymin, xmax, ymax = conn.execute(sql.SQL(
        "SELECT c, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT count(*) AS c, ST_Extent(geom) AS e FROM {}) s").format(
        sql.Identifier(DATA_SCHEMA, table))).fetchone()
    extent = None if xmin is None else [float(xmin), float(ymin), float(xmax), float(ymax)]
    return int(n), extent


def _schema_json(prepared: Prepared, units: dict[str, str] | None = None) -> list[dict]:
    units = units or {}
    return [{"name": c.name, "type": c.pg_type, "source_name": c.source_name,
             "unit": units.get(c.name) or units.get(c.source_name)} for c in prepared.columns]


def _archive(conn: psycopg.Connection, table: str, change_set: int) -> str:
    """Keep the table an ingest replaces (an editable layer's history): renamed, with its
    indexes, out of the way of the new one.  Returns its new name."""
    kept = f"_g{change_set}_{table}"[:63]
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
        sql.Identifier(DATA_SCHEMA, table), sql.Identifier(kept)))
    for suffix in ("geom_idx", "pkey"):
        old = f"{table}_{suffix}"[:63]
        if conn.execute("SELECT to_regclass(%s)", (f'{DATA_SCHEMA}."{old}"',)).fetchone()[0]:
            conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(DATA_SCHEMA, old), sql.Identifier(f"_g{change_set}_{suffix}")))
    return kept


def _record_load(conn: psycopg.Connection, layer_id: str, mode: str, change_set: int, at, *,
                 actor: str, reason: str | None, source: str | None, features: int,
                 archived: str | None = None, valid_from=None, archived_schema=None) -> None:
    conn.execute(
        "INSERT INTO gis_meta.layer_loads (layer_id, change_set, mode, actor, reason, source, at, "
        "features, archived_table, valid_from, archived_schema) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (layer_id, change_set, mode, actor, reason, source, at, features, archived, valid_from,
         Jsonb(archived_schema) if archived_schema is not None else None))


def write_layer(conn: psycopg.Connection, prepared: Prepared, layer_id: str, *, mode: str,
                metadata: dict, progress: Callable[[int], None] | None = None,
                actor: str = "ingest", reason: str | None = None) -> Layer:
    """COPY ``prepared`` into the layer ``layer_id``; returns the new catalog record.
    ``actor`` and ``reason`` go into the layer's history with the load."""
    if mode not in ("create", "replace", "append"):
        raise IngestError(f"Unknown mode {mode!r}: use create, replace or append.")
    with conn.transaction():
        # Serialise writers of the same layer (two replaces racing would otherwise collide).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('gis_layer:' || %s))", (layer_id,))
        existing = get_layer(conn, layer_id, for_update=True)
        change_set = int(conn.execute("SELECT nextval('gis_meta.change_set_seq')").fetchone()[0])
        keeps_history = existing is not None and existing.editable and existing.relation is None
        archived = None
        at = None
        if mode == "create":
            if existing is not None:
                ensure_new_id(conn, layer_id)
            table = layer_id
            if conn.execute("SELECT to_regclass(%s)", (f'{DATA_SCHEMA}."{table}"',)).fetchone()[0]:
                raise Conflict(f"A table named '{table}' already exists in {DATA_SCHEMA}; "
                               "choose another layer id.")
            _create_table(conn, table, prepared)
            _copy(conn, table, prepared, 1, progress)
            _index_and_analyze(conn, table)
        elif mode == "replace":
            if existing is None:
                raise LayerNotFound(f"No layer '{layer_id}' to replace; use mode 'create'.")
            if existing.kind != "vector":
                raise IngestError(f"Layer '{layer_id}' is a raster layer; replace it with a raster.")
            refuse_if_view(conn, existing, "replaced")
            stage = f"_stage_{secrets.token_hex(4)}"
            _create_table(conn, stage, prepared)
            _copy(conn, stage, prepared, 1, progress)
            _index_and_analyze(conn, stage)
            table = existing.table_name or layer_id
            if keeps_history:
                # The moment the old rows stop being the layer: after every edit of them
                # committed (the lock waits for those in flight).
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(DATA_SCHEMA, table)))
                at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
                archived = _archive(conn, table, change_set)
            else:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(DATA_SCHEMA, table)))
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(DATA_SCHEMA, stage), sql.Identifier(table)))
            conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(DATA_SCHEMA, f"{stage}_geom_idx"), sql.Identifier(f"{table}_geom_idx"[:63])))
            conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(DATA_SCHEMA, f"{stage}_pkey"), sql.Identifier(f"{table}_pkey"[:63])))
        else:  # append
            if existing is None:
                raise LayerNotFound(f"No layer '{layer_id}' to append to; use mode 'create'.")
            if existing.kind != "vector":
                raise IngestError(f"Layer '{layer_id}' is a raster layer; cannot append vectors.")
            refuse_if_view(conn, existing, "appended to")
            table = existing.table_name
            _check_append(existing, prepared)
            start = conn.execute(sql.SQL("SELECT coalesce(max(fid), 0) + 1 FROM {}").format(
                sql.Identifier(DATA_SCHEMA, table))).fetchone()[0]
            _copy(conn, table, prepared, int(start), progress)
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(DATA_SCHEMA, table)))
            if keeps_history:          # each new feature's first version: created by this load
                at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
                conn.execute(sql.SQL(
                    "INSERT INTO gis_meta.feature_versions (layer_id, fid, change_set, op, actor, "
                    "reason, properties, geom, at) SELECT %s, t.fid::text, %s, 'create', %s, %s, "
                    "to_jsonb(t) - 'fid' - 'geom', t.geom, %s FROM {} AS t WHERE t.fid >= %s "
                    "ORDER BY t.fid").format(sql.Identifier(DATA_SCHEMA, table)),
                    (layer_id, change_set, actor, reason, at, int(start)))
        count, extent = _stats(conn, table)
        schema = existing.model_dump(by_alias=True)["schema"] if (existing and mode == "append") \
            else _schema_json(prepared, metadata.get("units"))
        if existing is not None and mode == "replace":
            # Keep units the planner documented for columns that still exist.
            old_units = {a.name: a.unit for a in existing.attributes if a.unit}
            for a in schema:
                a["unit"] = a["unit"] or old_units.get(a["name"])
        _upsert_catalog(conn, layer_id, table, prepared, existing, metadata, count, extent, schema,
                        mode)
        at = at or conn.execute("SELECT clock_timestamp()").fetchone()[0]
        # The load's moment (after the locks), not the transaction's start: "as of" reads
        # before it see the layer without the load.
        conn.execute("UPDATE gis_meta.layers SET updated_at = %s, loaded_at = CASE WHEN %s THEN "
                     "loaded_at ELSE %s END WHERE id = %s", (at, mode == "append", at, layer_id))
        _record_load(conn, layer_id, mode, change_set, at, actor=actor, reason=reason,
                     source=metadata.get("source"), features=prepared.count, archived=archived,
                     valid_from=(existing.loaded_at or existing.created_at) if archived else None,
                     archived_schema=[a.model_dump() for a in existing.attributes] if archived else None)
        return get_layer(conn, layer_id)


def _check_append(layer: Layer, prepared: Prepared) -> None:
    have = {a.name: a.type for a in layer.attributes}
    new = {c.name: c.pg_type for c in prepared.columns}
    unknown = sorted(set(new) - set(have))
    if unknown:
        raise IngestError(f"Cannot append: columns {unknown} are not in layer '{layer.id}' "
                          f"(it has {sorted(have)}).")
    clash = sorted(n for n, t in new.items() if have[n] != t and not
                   (have[n] in ("bigint", "double precision") and t in ("integer", "bigint")))
    if clash:
        raise IngestError("Cannot append: column types differ: " + ", ".join(
            f"{n} is {have[n]} in the layer but {new[n]} in the file" for n in clash))
    base = layer.geometry_type or ""
    if prepared.geometry_type.replace("Multi", "") != base.replace("Multi", ""):
        raise IngestError(f"Cannot append {prepared.geometry_type} features to a {base} layer.")
    if base and not base.startswith("Multi") and prepared.geometry_type.startswith("Multi"):
        raise IngestError(f"Cannot append multi-part geometries to the single-part {base} layer "
                          f"'{layer.id}'; replace it instead.")


_META_FIELDS = ("title", "title_ko", "description", "description_ko", "keywords", "source",
                "licence", "attribution", "access_level", "minzoom", "maxzoom", "default_style",
                "time_column")


def _upsert_catalog(conn, layer_id, table, prepared, existing, metadata, count, extent, schema,
                    mode):
    meta = {k: metadata[k] for k in _META_FIELDS if metadata.get(k) is not None}
    if "default_style" in meta:
        parse_selection(meta["default_style"], [(a["name"], a["type"]) for a in schema])
        meta["default_style"] = Jsonb(meta["default_style"])
    if existing is None:
        meta.setdefault("title", layer_id.replace("_", " ").title())
        fields = {"id": layer_id, "kind": "vector", "table_name": table,
                  "geometry_type": prepared.geometry_type, "storage_srid": prepared.srid,
                  "source_crs": prepared.source_crs, "feature_count": count, "extent": extent,
                  "schema": Jsonb(schema), **meta}
        cols = sql.SQL(", ").join(sql.Identifier(k) for k in fields)
        vals = sql.SQL(", ").join(sql.Placeholder() for _ in fields)
        conn.execute(sql.SQL("INSERT INTO gis_meta.layers ({}, data_version) VALUES ({}, "
                             "nextval('gis_meta.data_version_seq'))").format(cols, vals),
                     list(fields.values()))
    else:
        fields = {"feature_count": count, "extent": extent, "schema": Jsonb(schema), **meta}
        if mode == "replace":
            fields["geometry_type"] = prepared.geometry_type
            fields["source_crs"] = prepared.source_crs
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fields)
        conn.execute(sql.SQL("UPDATE gis_meta.layers SET {}, updated_at = now(), "
                             "data_version = nextval('gis_meta.data_version_seq') WHERE id = %s")
                     .format(sets), [*fields.values(), layer_id])
