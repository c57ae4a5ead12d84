"""The tile-read pool of :class:`gis_platform.db.Database`: no health query per checkout.

The platform's read/write pool checks every connection before
handing it out (an empty query, one round trip), so that after a database restart no
request gets a dead connection.  For a cold tile that check measured ~1 ms - a third of a
z15 tile's SQL - and it spends PostgreSQL CPU on the two cores the tiles need.  Tile
statements are read-only and idempotent, so this pool skips the check and instead retries a
statement once on a fresh connection when the one it got turns out to be broken: the same
"service resumes by itself" behaviour, paid for only after a restart.  Errors map like the
platform pool's: no connection in time -> 503 DatabaseUnavailable, statement timeout ->
503 QueryTimeout.
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gis_platform.db.connections import pooled_kwargs
from gis_platform.errors import DatabaseUnavailable, QueryTimeout


class TilePool:
    """Read-only autocommit connections for ``SELECT <one bytea>`` tile statements; with a
    replica (``replica_conninfo``), one pool on each, and a
    :class:`~gis_platform.db.replica.ReplicaRouter` choosing per tile."""

    def __init__(self, conninfo: str, settings, replica_conninfo: str | None = None) -> None:
        self.settings = settings
        self.router = None          # set by Database when there is a replica
        # No parallel workers by default: a dense tile's scan would otherwise start two
        # (PostgreSQL plans them for a few thousand rows), which pays on an idle server
        # and costs on a busy one - at 8 concurrent z14-z16 tiles on 2 cores the SQL alone
        # ran 1.5-1.7x faster without them (bench/tiles/RESULTS.md, run 13's notes).
        parallel = int(settings.tiles.parallel_workers)
        kwargs = {"options": f"-c statement_timeout={int(settings.database.statement_timeout_ms)} "
                             f"-c max_parallel_workers_per_gather={parallel}",
                  "connect_timeout": 5, "autocommit": True,
                  # A handful of statement texts (per layer set, zoom band and overview
                  # level) serve every tile: prepare each on its first use rather than
                  # planning it five times per connection first (psycopg's default).
                  "prepare_threshold": 0}
        kwargs = pooled_kwargs(settings, kwargs)
        max_size = int(settings.database.pool_max_size)
        # Connections opened at startup (in the background): the first burst of a map
        # view - a dozen tiles at once - must not wait for a dozen connection handshakes.
        min_size = max(1, min(max_size, int(settings.tiles.pool_min_size)))
        self.pool = AsyncConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs,
            timeout=float(settings.database.pool_timeout), open=False, name="gis-tiles",
            reconnect_timeout=0)
        self.replica = None
        if replica_conninfo:
            self.replica = AsyncConnectionPool(
                replica_conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs,
                timeout=float(settings.database.pool_timeout), open=False, name="gis-tiles-ro",
                reconnect_timeout=0)

    async def open(self) -> None:
        await self.pool.open(wait=False)
        if self.replica is not None:
            await self.replica.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()
        if self.replica is not None:
            await self.replica.close()

    async def _pool(self) -> AsyncConnectionPool:
        if self.router is None or self.replica is None:
            return self.pool
        chosen = await self.router.choose()
        return self.replica if chosen is self.router.replica else self.pool

    async def fetch_bytes(self, stmt: str, values: dict) -> bytes:
        """The statement's single bytea value (``b""`` for NULL or no row)."""
        pool = await self._pool()
        for attempt in (0, 1):
            try:
                async with pool.connection() as conn:
                    # binary=True: bytea comes back raw instead of hex text.
                    cur = await conn.execute(stmt, values, binary=True)
                    row = await cur.fetchone()
                return bytes(row[0]) if row and row[0] else b""
            except PoolTimeout as exc:
                if pool is self.replica:          # the replica is gone: the primary serves
                    self.router.mark_down(exc)
                    pool = self.pool
                    continue
                raise DatabaseUnavailable(
                    "The database is not reachable right now; please retry in a few seconds.") from exc
            except pg_errors.QueryCanceled as exc:
                raise QueryTimeout(
                    "The tile query ran longer than the server allows "
                    f"({self.settings.database.statement_timeout_ms} ms).") from exc
            except (psycopg.OperationalError, pg_errors.AdminShutdown) as exc:
                # A connection that died while idle (database restarted): the pool drops it
                # on return; try once more on a fresh one (the primary's, if the replica
                # failed).
                if pool is self.replica:
                    self.router.mark_down(exc)
                    pool = self.pool
                    continue
                if attempt:
                    raise DatabaseUnavailable(
                        "The connection to the database was lost; please retry in a few "
                        "seconds.") from exc
        raise AssertionError("unreachable")
