"""One catalog-event listener per process, and the subscribers it tells.

PostgreSQL announces changes on two channels: ``gis_catalog`` (a layer id on every catalog
change, ``api_keys`` when a key is revoked, ``*`` after a restore) and ``gis_tiles`` (an
overview built or dropped).  :class:`CatalogEvents` holds the one ``LISTEN`` connection of
the worker and passes each batch of notifications to its subscribers - the layer registry,
the overview manager, the API-key cache, the feature count cache - as a set of
``(channel, payload)`` pairs.  After a (re)connect, and when nothing was heard for ``ttl``
seconds, subscribers get :data:`RESYNC` so they can catch up with anything they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from psycopg import sql

from gis_platform.db.connections import connect_async

log = logging.getLogger("gis_platform.events")

CATALOG = "gis_catalog"
TILES = "gis_tiles"
#: A committed write's WAL position (gis_platform.db.replica: reads with a replica).
WRITES = "gis_writes"
CHANNELS = (CATALOG, TILES, WRITES)
#: Told to every subscriber after a (re)connect or a quiet ``ttl``: re-read everything.
RESYNC = frozenset({("*", "*")})

Subscriber = Callable[[frozenset[tuple[str, str]]], Awaitable[None]]


class CatalogEvents:
    """The process's one ``LISTEN`` connection (see the module docstring)."""

    def __init__(self, conninfo: str, ttl: float = 60.0, settle: float = 0.005) -> None:
        self.conninfo = conninfo
        self.ttl = ttl
        self.settle = settle          # gather the burst of notifications one write sends
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    def subscribe(self, name: str, fn: Subscriber) -> None:
        """Call ``fn(events)`` with every batch (``name`` is for the logs)."""
        self._subscribers.append((name, fn))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def publish(self, events: frozenset[tuple[str, str]]) -> None:
        """Tell every subscriber (a failing one is logged; the others still hear it)."""
        for name, fn in list(self._subscribers):
            try:
                await fn(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one subscriber's trouble is its own
                log.warning("catalog event subscriber failed",
                            extra={"subscriber": name, "error": str(exc)})

    async def _run(self) -> None:
        while True:
            try:
                async with await connect_async(self.conninfo) as conn:
                    for channel in CHANNELS:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.connected.set()
                    await self.publish(RESYNC)      # catch up with anything missed
                    while True:
                        batch = {(n.channel, n.payload) async for n in
                                 conn.notifies(timeout=self.ttl, stop_after=1)}
                        if not batch:
                            await self.publish(RESYNC)
                            continue
                        await asyncio.sleep(self.settle)
                        batch |= {(n.channel, n.payload) async for n in
                                  conn.notifies(timeout=0.001)}
                        await self.publish(frozenset(batch))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database down: retry
                self.connected.clear()
                log.warning("catalog listener reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
