"""Keeping published relations fresh without owning them (one worker at a time).

Every ``publish_poll_seconds`` the worker holding the advisory lock ``gis-platform:watch``
(any worker; another takes over when it stops) looks at every published layer:

* **a signal** per relation it reads - the statistics counters of inserted, updated and
  deleted rows (``pg_stat_all_tables``) and the file node (a ``TRUNCATE``, a ``REFRESH
  MATERIALIZED VIEW``) of the relation, its partitions or a view's base tables.  For a
  layer without a change trigger, a new signal appends a change without an extent (the
  whole layer) to ``gis_meta.layer_changes`` and notifies every worker.  Staleness is at
  most the poll interval plus the moment PostgreSQL takes to publish a session's counters
  (it does when the session goes idle, at most a second after its commit).
* **the shape** - columns and types, the partitions, a function's signature: a change
  re-reads the relation into the catalog (a new data version); a relation that is gone
  leaves a discovered layer unpublished, and a published one answering 503 until it is
  back or unpublished.
* **the change log's length** - past ``publish_max_changes`` rows, the oldest changes of a
  layer are folded into one row per cell of a 2.4 km grid (one transaction), keeping the
  data version: only tiles under folded changes are rendered again.
* **discovery** (``publish_schemas``), every ``publish_discover_seconds``: new spatial
  relations of the watched schemas are published as ``internal`` layers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time

import psycopg

from gis_platform.config import Settings
from gis_platform.db.connections import connect, connect_async
from gis_platform.errors import PlatformError
from layers.catalog import Layer, get_layer
from layers.changes import CHANGES, FOLD_ZOOM, cell_extent, fold_cells
from layers.publish import publish, publish_schema, unpublish

log = logging.getLogger("layers.watch")

LOCK = "gis-platform:watch"


def _watched(layer: Layer) -> list[str]:
    """Quoted names of the relations whose counters tell that ``layer`` changed."""
    rel = layer.relation
    if rel.kind in ("table", "partitioned table", "materialized view"):
        return [rel.qualified, *rel.parts]
    return list(rel.depends_on)


_SIGNAL = """
SELECT coalesce(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::text || '/'
       || coalesce(string_agg(c.relfilenode::text, ',' ORDER BY c.oid), '')
FROM unnest(%s::text[]) AS w(name)
LEFT JOIN pg_class c ON c.oid = to_regclass(w.name)
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
"""

_SHAPE_RELATION = """
SELECT c.relkind::text || ':' || coalesce((SELECT string_agg(a.attname || ':' || a.atttypid, ','
                                     ORDER BY a.attnum) FROM pg_attribute a
                                     WHERE a.attrelid = c.oid AND a.attnum > 0
                                     AND NOT a.attisdropped), '')
       || ':' || coalesce((SELECT string_agg(i.inhrelid::text, ',' ORDER BY i.inhrelid)
                           FROM pg_inherits i WHERE i.inhparent = c.oid), '')
FROM pg_class c WHERE c.oid = to_regclass(%s)
"""

_SHAPE_FUNCTION = """
SELECT string_agg(pg_get_function_arguments(p.oid) || '->' || pg_get_function_result(p.oid)
                  || ':' || p.provolatile, ';' ORDER BY p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s AND p.proname = %s
"""


class RelationWatcher:
    """See the module docstring.  ``layers`` gives the registry's current records."""

    def __init__(self, conninfo: str, settings: Settings, layers) -> None:
        self.conninfo = conninfo
        self.settings = settings
        self.layers = layers
        self._task: asyncio.Task | None = None
        self._last_discovery = 0.0
        self._failed: dict[tuple[str, str], float] = {}
        self.leader = False
        self.ticks = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relation-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        interval = float(self.settings.publish.poll_seconds)
        while True:
            try:
                async with await connect_async(self.conninfo, autocommit=True) as conn:
                    while True:
                        if not self.leader:
                            cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK,))
                            self.leader = bool((await cur.fetchone())[0])
                        if self.leader:
                            await self.tick(conn)
                        await asyncio.sleep(interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database down: retry
                self.leader = False
                log.warning("relation watch reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(min(interval, 5.0))

    async def tick(self, conn: psycopg.AsyncConnection) -> None:
        """One round (the leader): signals and shapes, compaction, discovery."""
        published = [l for l in self.layers() if l.relation is not None]
        cur = await conn.execute("SELECT layer_id, signal FROM gis_meta.relation_signals")
        known = dict(await cur.fetchall())
        changed: list[str] = []
        for layer in published:
            try:
                changed += await self._check(conn, layer, known.get(layer.id))
            except psycopg.Error as exc:
                log.warning("relation check failed", extra={"layer": layer.id, "error": str(exc)})
        if changed:
            await conn.execute("SELECT pg_notify('gis_catalog', %s)", (CHANGES,))
        await self._compact(conn)
        schemas = list(self.settings.publish.schemas)
        if schemas and time.monotonic() - self._last_discovery >= self.settings.publish.discover_seconds:
            self._last_discovery = time.monotonic()
            await asyncio.to_thread(self.discover, schemas)
        self.ticks += 1

    async def _check(self, conn: psycopg.AsyncConnection, layer: Layer, before: str | None) -> list[str]:
        rel = layer.relation
        if rel.is_function:
            cur = await conn.execute(_SHAPE_FUNCTION, (rel.schema_name, rel.name))
        else:
            cur = await conn.execute(_SHAPE_RELATION, (rel.qualified,))
        shape = (await cur.fetchone() or (None,))[0]
        if shape is None:
            await self._gone(layer)
            return []
        watched = _watched(layer)
        counters = ""
        if watched:
            cur = await conn.execute(_SIGNAL, (watched,))
            counters = (await cur.fetchone())[0]
        signal = hashlib.sha1(shape.encode()).hexdigest()[:16] + "|" + counters
        if signal == before:
            return []
        await conn.execute(
            "INSERT INTO gis_meta.relation_signals (layer_id, signal) VALUES (%s, %s) "
            "ON CONFLICT (layer_id) DO UPDATE SET signal = EXCLUDED.signal, checked_at = now()",
            (layer.id, signal))
        if before is None:
            return []                                # the first look: the baseline
        old_shape, _, old_counters = before.partition("|")
        if old_shape != signal.partition("|")[0]:
            await asyncio.to_thread(self.refresh, layer)
            return []
        if rel.tracking == "trigger" or old_counters == counters:
            return []                                # the triggers told already
        await conn.execute("INSERT INTO gis_meta.layer_changes (layer_id, extent, source) "
                           "VALUES (%s, NULL, 'poll')", (layer.id,))
        return [layer.id]

    async def _gone(self, layer: Layer) -> None:
        rel = layer.relation
        if rel.discovered:
            log.info("published relation gone: unpublished", extra={"layer": layer.id})
            await asyncio.to_thread(self._unpublish, layer.id)
        else:
            log.warning("published relation gone", extra={"layer": layer.id,
                                                           "relation": rel.qualified})

    def _unpublish(self, layer_id: str) -> None:
        with connect(self.conninfo, autocommit=True) as conn, contextlib.suppress(PlatformError):
            unpublish(conn, layer_id)

    def refresh(self, layer: Layer) -> None:
        """Re-read a relation whose columns changed (a new data version)."""
        rel = layer.relation
        with connect(self.conninfo, autocommit=True) as conn:
            current = get_layer(conn, layer.id)
            if current is None or current.relation is None:
                return
            try:
                publish(conn, rel.qualified, layer_id=layer.id, geometry_column=rel.geometry_column,
                        id_column=",".join(k.name for k in rel.key) or None,
                        access_level=current.access_level, replace=True,
                        discovered=rel.discovered, serving_role=None)
                log.info("published relation re-read", extra={"layer": layer.id})
            except PlatformError as exc:
                log.warning("published relation changed and cannot be re-read",
                            extra={"layer": layer.id, "error": exc.detail})

    async def _compact(self, conn: psycopg.AsyncConnection) -> None:
        """Fold the oldest changes of a layer whose log outgrew ``publish.max_changes`` into
        one row per cell of a coarse grid (:func:`layers.changes.fold_cells`): the log stays
        short, tiles under folded changes are rendered once more, and every other cached tile
        keeps its key - no new data version, no city-wide cold cache, no overview rebuild.
        A cell's row carries the latest transaction and time of what it folds (what an
        overview's snapshot and an "as of" read compare with)."""
        limit = int(self.settings.publish.max_changes)
        cur = await conn.execute("SELECT layer_id, count(*) FROM gis_meta.layer_changes GROUP BY layer_id "
                                 "HAVING count(*) > %s", (limit,))
        for layer_id, count in await cur.fetchall():
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT id, xid::text::bigint, extent, extract(epoch FROM at) FROM gis_meta.layer_changes "
                    "WHERE layer_id = %s ORDER BY id LIMIT %s FOR UPDATE", (layer_id, int(count) - limit // 2))
                old = await cur.fetchall()
                # Coarser cells while they would keep the log over three quarters of its limit.
                zoom = FOLD_ZOOM
                cells = fold_cells([(xid, extent, at) for _, xid, extent, at in old], zoom)
                while zoom > 2 and len(cells) + int(count) - len(old) > limit * 3 // 4:
                    zoom -= 2
                    cells = fold_cells([(xid, extent, at) for _, xid, extent, at in old], zoom)
                await conn.execute("DELETE FROM gis_meta.layer_changes WHERE id = ANY(%s)", ([r[0] for r in old],))
                for cell, (xid, at) in cells.items():
                    await conn.execute(
                        "INSERT INTO gis_meta.layer_changes (layer_id, xid, extent, source, at) "
                        "VALUES (%s, %s::text::xid8, %s, 'fold', to_timestamp(%s))",
                        (layer_id, xid, cell_extent(cell, zoom) if cell is not None else None, at))
                # Every worker re-reads the whole log (rows went away, not only came).
                await conn.execute("SELECT pg_notify('gis_catalog', %s)", (layer_id,))
            log.info("change log folded", extra={"layer": layer_id, "changes": len(old),
                                                 "cells": len(cells)})

    def discover(self, schemas: list[str]) -> None:
        """Publish the new spatial relations of the watched schemas (``internal``)."""
        now = time.monotonic()
        with connect(self.conninfo, autocommit=True) as conn:
            for schema in schemas:
                ignored = {r[0] for r in conn.execute(
                    "SELECT name FROM gis_meta.publish_ignored WHERE schema_name = %s",
                    (schema,)).fetchall()}
                failed = {n for (s, n), t in self._failed.items() if s == schema and now - t < 600}
                done, skipped = publish_schema(conn, schema, access_level="internal",
                                               discovered=True, skip=ignored | failed)
                for p in done:
                    log.info("discovered and published", extra={"layer": p.layer.id,
                                                                "relation": p.layer.relation.qualified})
                for name, why in skipped:
                    self._failed[(schema, name)] = now
                    log.info("discovered relation not published", extra={"relation": name,
                                                                          "reason": why})
