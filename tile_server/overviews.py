"""Per worker: which overviews exist (in memory, for the tile path) and the background
builder (see :mod:`tile_server.overview_build` for what an overview is and how it is built)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from gis_platform.apikeys import KEYS_CHANGED
from gis_platform.db.connections import connect_async
from gis_platform.db.events import WRITES
from layers.catalog import SELECT_LAYERS, Layer, row_to_layer
from layers.changes import CHANGES, Snapshot
from tile_server.overview_build import (
    OverviewInfo,
    OverviewPlan,
    _drop_stale,
    MAX_PATCH_BOXES,
    build_layer,
    list_overviews,
    patch_layer,
    spec_for,
)
from tile_server.sources import TileTuning

log = logging.getLogger("tile_server.overviews")


def _patchable(missed: list) -> bool:
    """Row changes an overview update in place can follow: each with its extent, not too many."""
    return 0 < len(missed) <= MAX_PATCH_BOXES and all(c.box is not None for c in missed)


@dataclass
class OverviewManager:
    """Per worker: which overviews exist (in memory), and background builds.

    ``table_for(layer, z)`` is a dictionary lookup on the tile path.
    """

    conninfo: str
    tuning: TileTuning
    plan: OverviewPlan
    #: The vector layers as the worker's registry knows them (the app passes it); without
    #: it (the bench, a script) the catalog is read.
    layers: Callable[[], list[Layer]] | None = None
    reload_seconds: float = 60.0
    rebuild_quiet_s: float = 10.0
    rebuild_max_stale_s: float = 120.0
    #: Changes few and located enough to update the overviews in place (patch_layer):
    #: done this long after the last of them.
    patch_quiet_s: float = 1.0
    _tables: dict[tuple[str, int], dict[int, tuple[str, Snapshot | None]]] = field(default_factory=dict)
    next_check: float | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _dirty: asyncio.Event | None = None
    building: str | None = None
    #: Bumped whenever the list changes, so memoised per-zoom plans know to look again.
    generation: int = 0

    @property
    def spec(self) -> str:
        return spec_for(self.tuning, self.plan)

    def table_for(self, layer: Layer, z: int) -> tuple[int, str, Snapshot | None] | None:
        """``(level, table, snapshot)`` of the overview serving ``layer`` at zoom ``z``, if
        built (the snapshot tells which of the layer's row changes it holds)."""
        level = self.plan.level_for(z)
        if level is None:
            return None
        tables = self._tables.get((layer.id, layer.data_version))
        if not tables:
            return None
        hit = tables.get(level)
        return (level, *hit) if hit else None

    def forget(self, table: str) -> None:
        """Stop using ``table`` (it vanished under us: dropped as stale)."""
        for tables in self._tables.values():
            for z, (t, _) in list(tables.items()):
                if t == table:
                    del tables[z]
        self.generation += 1

    async def load(self) -> None:
        """Re-read the list of built overviews of this spec."""
        async with await connect_async(self.conninfo, autocommit=True) as conn:
            rows = await list_overviews(conn, self.spec)
        tables: dict[tuple[str, int], dict[int, tuple[str, Snapshot | None]]] = {}
        for o in rows:
            tables.setdefault((o.layer_id, o.data_version), {})[o.zoom] = (
                o.table_name, Snapshot.parse(o.snapshot))
        self._tables = tables
        self.generation += 1

    def _stale(self, layer: Layer, have: dict, now: float) -> tuple[bool, float | None]:
        """(rebuild now, or when to look again) for a layer whose rows changed in place
        after its overviews were built: once the changes have settled for
        ``rebuild_quiet_s``, or ``rebuild_max_stale_s`` after the first one they miss."""
        if not have or not len(layer.changes):
            return False, None
        missed = layer.changes.unseen_by([snap for _, snap in have.values()])
        if not missed:
            return False, None
        quiet = self.patch_quiet_s if _patchable(missed) else self.rebuild_quiet_s
        due = min(max(c.at for c in missed) + quiet,
                  min(c.at for c in missed) + self.rebuild_max_stale_s)
        return (now >= due), (None if now >= due else due)

    async def build_missing(self) -> list[OverviewInfo]:
        """Build overviews of every layer that wants them and lacks them (current versions),
        and rebuild those of published relations whose rows changed since (debounced)."""
        async with await connect_async(self.conninfo, autocommit=True) as conn:
            if self.layers is not None:
                layers = [l for l in self.layers() if l.kind == "vector"]
            else:
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(SELECT_LAYERS + sql.SQL(" WHERE kind = 'vector'"))
                    layers = [row_to_layer(r) for r in await cur.fetchall()]
            await _drop_stale(conn, None, None)          # layers deleted
            have = {layer_id for layer_id, _ in self._tables}
            for layer in layers:                          # re-ingested under the threshold
                if layer.id in have and not self.plan.wants(layer):
                    await _drop_stale(conn, layer.id, layer.data_version, self.spec)
        built: list[OverviewInfo] = []
        self.next_check = None
        now = time.time()
        for layer in layers:
            if not self.plan.wants(layer):
                continue
            have = self._tables.get((layer.id, layer.data_version), {})
            rebuild, later = self._stale(layer, have, now)
            if later is not None:
                self.next_check = min(later, self.next_check or later)
            if not rebuild and all(z in have for z in self.plan.levels_for(layer)):
                continue
            self.building = layer.id
            try:
                patched = None
                if rebuild and all(z in have for z in self.plan.levels_for(layer)):
                    missed = layer.changes.unseen_by([snap for _, snap in have.values()])
                    if _patchable(missed):
                        patched = await patch_layer(self.conninfo, layer.id, self.tuning, self.plan,
                                                    [c.box for c in missed])
                if patched is not None:
                    built += patched
                else:
                    built += await build_layer(self.conninfo, layer.id, self.tuning, self.plan,
                                               rebuild=rebuild)
            finally:
                self.building = None
            await self.load()
        return built

    async def start(self) -> None:
        """Load the list and start the background builder; :meth:`on_events` (subscribed
        to the process's catalog events) keeps the list current and wakes the builder."""
        self._dirty = asyncio.Event()
        try:
            await self.load()
        except psycopg.Error as exc:      # DB not up yet: the next event catches up
            log.warning("overview list not loaded", extra={"error": str(exc)})
        if self.plan.auto_build:
            self._dirty.set()
            self._tasks.append(asyncio.create_task(self._builder(), name="tile-overviews-builder"))

    async def on_events(self, events: frozenset[tuple[str, str]]) -> None:
        """A catalog change, an overview built or dropped, or a resync: re-read the list
        and let the builder look for missing levels; rows of a published relation changed:
        let the builder see whether its overviews are due for a rebuild."""
        payloads = {payload for channel, payload in events if channel != WRITES} - {KEYS_CHANGED}
        if payloads - {CHANGES}:
            await self.load()
        if payloads and self._dirty is not None:
            self._dirty.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _builder(self) -> None:
        while True:
            timeout = None if self.next_check is None else max(0.5, self.next_check - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout)
            self._dirty.clear()
            # Let the catalog settle (an ingest sends several notifications).
            await asyncio.sleep(0.5)
            try:
                await self.build_missing()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the next notification retries
                log.warning("overview build failed", extra={"error": str(exc)})
                await asyncio.sleep(5.0)
