"""Per worker: which overviews exist (in memory, for the tile path) and the background
builder (see :mod:`tile_server.overview_build` for what an overview is and how it is built)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from gis_platform.apikeys import KEYS_CHANGED
from gis_platform.db.connections import connect_async
from layers.catalog import SELECT_LAYERS, Layer, row_to_layer
from tile_server.overview_build import (
    OverviewInfo,
    OverviewPlan,
    _drop_stale,
    build_layer,
    list_overviews,
    spec_for,
)
from tile_server.sources import TileTuning

log = logging.getLogger("tile_server.overviews")


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
    _tables: dict[tuple[str, int], dict[int, str]] = field(default_factory=dict)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _dirty: asyncio.Event | None = None
    building: str | None = None
    #: Bumped whenever the list changes, so memoised per-zoom plans know to look again.
    generation: int = 0

    @property
    def spec(self) -> str:
        return spec_for(self.tuning, self.plan)

    def table_for(self, layer: Layer, z: int) -> tuple[int, str] | None:
        """``(level, table)`` of the overview serving ``layer`` at zoom ``z``, if built."""
        level = self.plan.level_for(z)
        if level is None:
            return None
        tables = self._tables.get((layer.id, layer.data_version))
        if not tables:
            return None
        table = tables.get(level)
        return (level, table) if table else None

    def forget(self, table: str) -> None:
        """Stop using ``table`` (it vanished under us: dropped as stale)."""
        for tables in self._tables.values():
            for z, t in list(tables.items()):
                if t == table:
                    del tables[z]
        self.generation += 1

    async def load(self) -> None:
        """Re-read the list of built overviews of this spec."""
        async with await connect_async(self.conninfo, autocommit=True) as conn:
            rows = await list_overviews(conn, self.spec)
        tables: dict[tuple[str, int], dict[int, str]] = {}
        for o in rows:
            tables.setdefault((o.layer_id, o.data_version), {})[o.zoom] = o.table_name
        self._tables = tables
        self.generation += 1

    async def build_missing(self) -> list[OverviewInfo]:
        """Build overviews of every layer that wants them and lacks them (current versions)."""
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
        for layer in layers:
            if not self.plan.wants(layer):
                continue
            have = self._tables.get((layer.id, layer.data_version), {})
            if all(z in have for z in self.plan.levels_for(layer)):
                continue
            self.building = layer.id
            try:
                built += await build_layer(self.conninfo, layer.id, self.tuning, self.plan)
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
        and let the builder look for missing levels."""
        if any(payload != KEYS_CHANGED for _, payload in events):
            await self.load()
            if self._dirty is not None:
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
            await self._dirty.wait()
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
