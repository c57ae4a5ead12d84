"""The in-process layer registry: every catalog record in memory, keyed by id.

The access choke point for layers (:meth:`Registry.readable`, :meth:`Registry.writable`)
lives here, in front of :func:`gis_platform.access.authorize`.  The layers feature starts it
in the app's lifespan and subscribes it to the catalog events.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from psycopg.rows import dict_row

from gis_platform import access
from gis_platform.access import Action, Resource, RowFilter
from gis_platform.apikeys import KEYS_CHANGED
from gis_platform.db import Database
from gis_platform.db.events import CATALOG
from gis_platform.errors import LayerNotFound
from gis_platform.principal import Principal
from layers.catalog import SELECT_LAYERS, Layer, row_to_layer
from layers.changes import CHANGES, EMPTY, SELECT_CHANGES, SELECT_NEW_CHANGES, ChangeLog, from_rows, merge


#: The snapshot a read saw, and the primary's WAL position after it (at least the commit
#: of everything the snapshot sees); NULL on a standby (then there is nothing to wait for).
_SNAPSHOT_AND_LSN = ("SELECT pg_current_snapshot()::text, CASE WHEN pg_is_in_recovery() THEN NULL "
                     "ELSE pg_current_wal_lsn()::text END")


class Registry:
    """Every layer by id, in memory; reloaded when the catalog announces a change (the
    process's :class:`~gis_platform.db.CatalogEvents`), so every worker sees a new data
    version at once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._layers: dict[str, Layer] = {}
        self._logs: dict[str, ChangeLog] = {}
        self._updated: asyncio.Condition | None = None
        self._snapshot: str | None = None      # what the last read of the change log saw

    async def _announce(self) -> None:
        if self._updated is None:
            self._updated = asyncio.Condition()
        async with self._updated:
            self._updated.notify_all()

    async def wait_updated(self, timeout: float) -> bool:
        """Until the registry next reloads (the catalog or the change log): True, or False
        after ``timeout`` seconds (the change feed's keep-alive)."""
        if self._updated is None:
            self._updated = asyncio.Condition()
        async with self._updated:
            try:
                await asyncio.wait_for(self._updated.wait(), timeout)
                return True
            except TimeoutError:
                return False

    async def load(self) -> None:
        """Re-read the whole catalog (a few hundred rows at most) and the change log, in one
        snapshot."""
        async with self.db.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(SELECT_LAYERS)
                rows = await cur.fetchall()
            logs = from_rows(await (await conn.execute(SELECT_CHANGES)).fetchall())
            snapshot, lsn = await (await conn.execute(_SNAPSHOT_AND_LSN)).fetchone()
        self._seen(lsn)
        self._logs = logs
        self._snapshot = snapshot
        self._layers = {r["id"]: self._with_log(row_to_layer(r)) for r in rows}
        await self._announce()

    async def load_changes(self) -> None:
        """Read the changes committed since the last read (rows changed: an edit, a published
        relation's statement).  Only what the previous read's snapshot did not see is read,
        in commit order or not; a log folded away comes with a catalog change (:meth:`load`)."""
        if self._snapshot is None:
            await self.load()
            return
        async with self.db.connection() as conn:
            cur = await conn.execute(SELECT_NEW_CHANGES, (self._snapshot, self._snapshot))
            new = await cur.fetchall()
            snapshot, lsn = await (await conn.execute(_SNAPSHOT_AND_LSN)).fetchone()
        self._seen(lsn)
        if new:
            self._logs = merge(self._logs, from_rows([r[:5] for r in new]))
            self._layers = {k: self._with_log(l) for k, l in self._layers.items()}
        self._snapshot = snapshot
        await self._announce()

    def _seen(self, lsn: str | None) -> None:
        """Reads keyed on what was just loaded must see the primary as of ``lsn`` (a read
        replica that has not replayed that far is not used for them: gis_platform.db.replica)."""
        router = getattr(self.db, "router", None)
        if router is not None and lsn:
            router.need(lsn)

    def _with_log(self, layer: Layer) -> Layer:
        log = self._logs.get(layer.id, EMPTY)
        return layer if log is layer.changes else layer.with_changes(log)

    async def on_events(self, events: frozenset[tuple[str, str]]) -> None:
        """A catalog change (any layer id, or a resync): reload; rows changed: the log."""
        relevant = {payload for channel, payload in events
                    if channel in (CATALOG, "*") and payload != KEYS_CHANGED}
        if relevant == {CHANGES}:
            await self.load_changes()
        elif relevant:
            await self.load()

    def get(self, layer_id: str) -> Layer | None:
        return self._layers.get(layer_id)

    def all(self) -> list[Layer]:
        return sorted(self._layers.values(), key=lambda l: l.id)

    def readable(self, layer_id: str, principal: Principal, *, filtered: bool = False,
                 action: Action = "read") -> Layer:
        """The layer if this caller may ``action`` it; otherwise the same 404 as a missing one.

        The access decision is :func:`gis_platform.access.authorize` (levels, the key's layer
        scope, row scopes; audited).  Callers that read the layer's *rows* must apply
        :meth:`rows_of` in their SQL and pass ``filtered=True``; a caller that does not say
        so gets a 404 for a layer on which this principal has a row filter (fail closed: no
        path can forget the filter).  Metadata-only readers pass ``action="describe"``.
        """
        layer = self._layers.get(layer_id)
        if layer is None:
            raise LayerNotFound(f"No layer '{layer_id}'.")
        access.authorize(principal, action, layer.resource, rows_supported=filtered,
                         hidden=LayerNotFound(f"No layer '{layer_id}'."))
        return layer

    def writable(self, layer_id: str, principal: Principal, *, anonymous_writes: bool = False,
                 action: Action = "write") -> Layer:
        """The layer if this caller may change it (as a whole, or its rows); 404 when it may
        not even see it, 401/403 otherwise.  Audited."""
        layer = self._layers.get(layer_id)
        if layer is None:
            access.authorize(principal, "create", Resource.new_layer(layer_id),
                             anonymous_writes=anonymous_writes)   # role and scope first
            raise LayerNotFound(f"No layer '{layer_id}'.")
        access.authorize(principal, action, layer.resource, anonymous_writes=anonymous_writes,
                         hidden=LayerNotFound(f"No layer '{layer_id}'."))
        return layer

    @staticmethod
    def rows_of(principal: Principal, layer: Layer) -> RowFilter | None:
        """The rows of ``layer`` this caller may read (None: all); see :meth:`readable`."""
        return access.row_filter_for(principal, layer.resource)

    def visible(self, principal: Principal) -> list[Layer]:
        """Every layer this caller may see (catalog listings; metadata only, not audited)."""
        return [l for l in self.all() if access.decide(principal, "describe", l.resource).allowed]

    def put(self, layer: Layer) -> None:
        """Update one record immediately (after a write in this process)."""
        self._layers[layer.id] = self._with_log(layer)

    def drop(self, layer_id: str) -> None:
        self._layers.pop(layer_id, None)


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
