"""Reads from a streaming replica that are never older than what they are keyed on.

With ``GIS_READ_DATABASE_URL`` tiles and read-only queries go to a streaming replica.  A
replica replays the primary's WAL a little later, and the caches key what they store by the
catalog's data versions and change log as this worker knows them: a tile rendered from a
replica that has not yet replayed the re-ingest the worker has heard of would hold the old
rows under the new key - and be served until the next write.  So every state the worker
learns (the layer registry's loads, its own writes, other workers' writes announced on
``gis_writes``) comes with the primary's WAL position at that moment (an LSN), and a read
goes to the replica only once the replica has replayed that far: :meth:`ReplicaRouter.choose`
waits up to ``replica_max_wait_ms`` for it, then reads from the primary.  A replica ahead of
the worker is harmless (newer rows under an older key, a key no one asks for once the worker
catches up).

A replica that fails (a connection error, a check that does not answer) is left out for
``replica_retry_s``, its reads going to the primary with no error to the caller, and used
again once a check answers.  :meth:`status` tells ``/ready`` and ``/metrics`` which is in use
and how far behind the replica is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("gis_platform.replica")

from gis_platform.db.events import WRITES


def lsn_int(text: str | None) -> int:
    """``'16/B374D848'`` -> an integer that orders like the WAL position."""
    if not text:
        return 0
    hi, lo = str(text).split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


class ReplicaRouter:
    """Chooses, per read, between the replica and the primary (see the module docstring)."""

    def __init__(self, primary: AsyncConnectionPool, replica: AsyncConnectionPool, *,
                 max_wait_ms: float = 200.0, retry_s: float = 5.0, check_s: float = 1.0) -> None:
        self.primary = primary
        self.replica = replica
        self.max_wait = max_wait_ms / 1000.0
        self.retry_s = retry_s
        self.check_s = check_s
        self.needed = 0            # the WAL position every read must see
        self.replayed = 0          # how far the replica has replayed, last seen
        self.primary_lsn = 0       # the primary's position, last seen (for the lag)
        self.lag_seconds: float | None = None
        self.down_until = 0.0
        self.last_error: str | None = None
        self.reads = {"replica": 0, "primary": 0}
        self.fallbacks = {"behind": 0, "down": 0}
        self._task: asyncio.Task | None = None

    # --- what reads must see --------------------------------------------------------------
    def need(self, lsn: int | str | None) -> None:
        """Reads from now on must see the primary as of ``lsn``."""
        value = lsn if isinstance(lsn, int) else lsn_int(lsn)
        self.needed = max(self.needed, value)

    async def on_events(self, events: frozenset[tuple[str, str]]) -> None:
        """Other workers' writes (``gis_writes``) raise what reads must see here too."""
        for channel, payload in events:
            if channel == WRITES:
                with contextlib.suppress(ValueError):
                    self.need(lsn_int(payload))

    # --- choosing -------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def mark_down(self, error: BaseException | str) -> None:
        """The replica failed: reads go to the primary for ``retry_s``."""
        self.down_until = time.monotonic() + self.retry_s
        self.last_error = str(error)[:200]
        log.warning("replica left out", extra={"error": self.last_error, "retry_s": self.retry_s})

    async def choose(self) -> AsyncConnectionPool:
        """The replica if it is up and has replayed what reads must see (waiting a moment
        for it), else the primary."""
        if not self.up:
            self.fallbacks["down"] += 1
            self.reads["primary"] += 1
            return self.primary
        if self.replayed < self.needed:
            deadline = time.monotonic() + self.max_wait
            while True:
                try:
                    await self._refresh_replayed()
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    self.mark_down(exc)
                    self.fallbacks["down"] += 1
                    self.reads["primary"] += 1
                    return self.primary
                if self.replayed >= self.needed:
                    break
                if time.monotonic() >= deadline:
                    self.fallbacks["behind"] += 1
                    self.reads["primary"] += 1
                    return self.primary
                await asyncio.sleep(0.01)
        self.reads["replica"] += 1
        return self.replica

    async def _refresh_replayed(self) -> None:
        async with self.replica.connection(timeout=1.0) as conn:
            cur = await conn.execute("SELECT pg_last_wal_replay_lsn()::text, "
                                     "extract(epoch FROM now() - pg_last_xact_replay_timestamp())")
            text, lag = await cur.fetchone()
        if text is None:           # not a standby (a primary given as replica): all replayed
            self.replayed = max(self.needed, self.replayed)
            self.lag_seconds = 0.0
            return
        self.replayed = max(self.replayed, lsn_int(text))
        self.lag_seconds = float(lag) if lag is not None else None

    # --- background checks ----------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="replica-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            try:
                await self._refresh_replayed()
                if not self.up:
                    log.info("replica back in use")
                self.down_until = 0.0
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: primary until it answers
                if self.up:
                    self.mark_down(exc)
                else:
                    self.down_until = time.monotonic() + self.retry_s
            with contextlib.suppress(Exception):
                async with self.primary.connection(timeout=1.0) as conn:
                    cur = await conn.execute("SELECT pg_current_wal_lsn()::text")
                    self.primary_lsn = lsn_int((await cur.fetchone())[0])
            await asyncio.sleep(self.check_s)

    def status(self) -> dict:
        """For /ready and /metrics."""
        behind = max(0, self.primary_lsn - self.replayed) if self.primary_lsn else None
        return {"configured": True, "in_use": self.up, "lag_bytes": behind,
                "lag_seconds": self.lag_seconds, "reads": dict(self.reads),
                "fallbacks": dict(self.fallbacks), "error": self.last_error}
