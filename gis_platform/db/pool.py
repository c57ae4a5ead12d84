"""Async connection pool with the platform's failure semantics.

* Each connection gets a ``statement_timeout``; a query that hits it raises
  :class:`QueryTimeout` (HTTP 503 with a clear message) instead of hanging a worker.
* Connections are checked before being handed out, so after a database restart the pool
  drops its dead connections and reconnects by itself.  While the database is down,
  acquiring a connection fails after ``pool_timeout`` seconds with
  :class:`DatabaseUnavailable` (HTTP 503); the next request after it is back succeeds.
* Expensive requests (statistics over posted areas, spatial operators, exports, dig-checks,
  CQL2 filters) ask for a ``heavy`` connection: at most ``heavy_share`` of the pool serves
  them at once, so a burst of them never takes the connections that cheap requests (tiles,
  feature pages, the catalog) need.  ``budget_ms`` gives one statement a shorter timeout
  than the pool's (anonymous callers: ``anonymous_statement_timeout_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gis_platform import metrics
from gis_platform.config import Settings
from gis_platform.db.connections import connect, pooled_kwargs
from gis_platform.db.replica import WRITES, ReplicaRouter
from gis_platform.db.tiles import TilePool
from gis_platform.errors import DatabaseUnavailable, QueryTimeout

# A connection used successfully less than this long ago is handed out without the
# round-trip health check (a busy server would otherwise pay one per request).  If the
# database went away in between, that request fails with a clean 503 and the pool drops the
# broken connection; idle connections are still checked, so after a restart service resumes
# by itself.
RECENT_S = 2.0
T = TypeVar("T")


async def _check_unless_recent(conn: psycopg.AsyncConnection) -> None:
    if time.monotonic() - getattr(conn, "_gis_used", 0.0) < RECENT_S:
        return
    await AsyncConnectionPool.check_connection(conn)


def budget_for(principal, settings: Settings) -> int | None:
    """The statement budget of an expensive query by this caller (None: the pool's)."""
    return None if principal.authenticated else settings.database.anonymous_statement_timeout_ms


class Database:
    """Every way the server reaches PostgreSQL: the read/write pool, the optional read-replica
    pool, the tile-read pool (:class:`~gis_platform.db.tiles.TilePool`, on the replica when
    there is one) and :meth:`run_sync` for the blocking stores shared with the CLI."""

    def __init__(self, conninfo: str, settings: Settings, read_conninfo: str | None = None) -> None:
        self.conninfo = conninfo
        self.settings = settings
        self.tiles = TilePool(conninfo, settings, read_conninfo)
        kwargs = pooled_kwargs(settings, {"options": f"-c statement_timeout="
                                                     f"{int(settings.database.statement_timeout_ms)}",
                                          "connect_timeout": 5, "autocommit": True})
        self.pool = AsyncConnectionPool(
            conninfo, min_size=settings.database.pool_min_size, max_size=settings.database.pool_max_size,
            kwargs=kwargs, timeout=settings.database.pool_timeout, open=False,
            check=_check_unless_recent, name="gis-rw",
            # Give up a failed (re)connection at once instead of backing off: the next
            # request makes a new one, so service resumes as soon as the DB is back.
            reconnect_timeout=0,
        )
        self._heavy_slots = max(1, int(settings.database.pool_max_size * settings.database.pool_heavy_share))
        self._heavy: asyncio.Semaphore | None = None
        self.read_pool = None
        if read_conninfo:
            self.read_pool = AsyncConnectionPool(
                read_conninfo, min_size=settings.database.pool_min_size, max_size=settings.database.pool_max_size,
                kwargs=kwargs, timeout=settings.database.pool_timeout, open=False,
                check=_check_unless_recent, name="gis-ro", reconnect_timeout=0)
        #: Which reads may go to the replica (gis_platform.db.replica); None: no replica.
        self.router: ReplicaRouter | None = None
        if self.read_pool is not None:
            self.router = ReplicaRouter(self.pool, self.read_pool,
                                        max_wait_ms=settings.database.replica_max_wait_ms,
                                        retry_s=settings.database.replica_retry_s)
            # (its choice is this read pool or the primary's; the tile pool maps it to its own)
            self.tiles.router = self.router

    async def open(self) -> None:
        # wait=False: the app starts (and /health answers) even if the DB is not up yet;
        # /ready tells the truth.
        await self.pool.open(wait=False)
        if self.read_pool is not None:
            await self.read_pool.open(wait=False)
        await self.tiles.open()
        if self.router is not None:
            await self.router.start()

    async def close(self) -> None:
        if self.router is not None:
            await self.router.stop()
        await self.tiles.close()
        await self.pool.close()
        if self.read_pool is not None:
            await self.read_pool.close()

    async def run_sync(self, fn: Callable[..., T], *args: Any, transaction: bool = False,
                       **kw: Any) -> T:
        """``fn(conn, *args, **kw)`` on a short-lived connection in a worker thread.

        For the synchronous stores the CLI and the demo share (catalog edits, indicators,
        maps, permits): their requests are few and heavy compared with tiles, so a thread hop
        is the right trade.  Autocommit, unless ``transaction``: then ``fn`` runs in one
        transaction (all or nothing).  The statement timeout is the pool's.
        """
        timeout = int(self.settings.database.statement_timeout_ms)

        def call() -> T:
            with connect(self.conninfo, autocommit=not transaction,
                         **pooled_kwargs(self.settings, {"connect_timeout": 10,
                                                         "options": f"-c statement_timeout={timeout}"})) as conn:
                if transaction:
                    with conn.transaction():
                        out = fn(conn, *args, **kw)
                    if self.router is not None:
                        self._announce_write(conn)
                    return out
                return fn(conn, *args, **kw)

        return await asyncio.to_thread(call)

    def _announce_write(self, conn: psycopg.Connection) -> None:
        """After a committed write: reads from now on - this worker's and, through
        ``gis_writes``, every other's - must see it (read-your-writes with a replica)."""
        lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        conn.execute("SELECT pg_notify(%s, %s)", (WRITES, lsn))
        self.router.need(lsn)

    @contextlib.asynccontextmanager
    async def connection(self, *, read_only: bool = False, heavy: bool = False,
                         budget_ms: int | None = None) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled autocommit connection; maps DB failures to platform errors.

        ``heavy``: an expensive request (see the module docstring); it waits at most
        ``pool_timeout`` for one of the heavy slots, then 503.  ``budget_ms``: a statement
        timeout for this use of the connection, when shorter than the pool's.
        """
        if heavy:
            if self._heavy is None:
                self._heavy = asyncio.Semaphore(self._heavy_slots)
            try:
                await asyncio.wait_for(self._heavy.acquire(), timeout=self.settings.database.pool_timeout)
            except TimeoutError:
                metrics.DB_ERRORS.labels("busy").inc()
                raise DatabaseUnavailable(
                    "The server is busy with other expensive queries; retry in a few seconds, "
                    "or narrow the request.") from None
        try:
            async with self._connection(read_only, budget_ms) as conn:
                yield conn
        finally:
            if heavy:
                self._heavy.release()

    @contextlib.asynccontextmanager
    async def _connection(self, read_only: bool, budget_ms: int | None):
        pool = self.pool
        if read_only and self.router is not None:
            pool = await self.router.choose()
        budget = int(budget_ms) if budget_ms and budget_ms < self.settings.database.statement_timeout_ms else None
        t0 = time.perf_counter()
        try:
            async with self._from(pool) as conn:
                held = time.perf_counter()
                metrics.DB_WAIT.observe(held - t0)
                try:
                    if budget:
                        # SET LOCAL in a transaction: the budget ends with it, and behind a
                        # transaction pooler it never leaks to another client's statements.
                        async with conn.transaction():
                            await conn.execute(f"SET LOCAL statement_timeout = {budget}")
                            yield conn
                    else:
                        yield conn
                    conn._gis_used = time.monotonic()
                finally:
                    metrics.DB_HOLD.observe(time.perf_counter() - held)
        except PoolTimeout as exc:
            metrics.DB_ERRORS.labels("unavailable").inc()
            raise DatabaseUnavailable(
                "The database is not reachable right now; please retry in a few seconds.") from exc
        except pg_errors.QueryCanceled as exc:
            metrics.DB_ERRORS.labels("timeout").inc()
            if budget:
                raise QueryTimeout(
                    f"The query ran longer than the {budget} ms anonymous requests get. Narrow "
                    "it (a smaller area, a simpler geometry, a stricter filter) or send an API "
                    "key.") from exc
            raise QueryTimeout(
                "The query ran longer than the server allows "
                f"({self.settings.database.statement_timeout_ms} ms). Narrow it: a smaller area, a "
                "stricter filter or a lower limit.") from exc
        except (psycopg.OperationalError, pg_errors.AdminShutdown) as exc:
            metrics.DB_ERRORS.labels("connection").inc()
            if pool is self.read_pool and self.router is not None:
                self.router.mark_down(exc)       # the next reads go to the primary
            raise DatabaseUnavailable(
                "The connection to the database was lost; please retry in a few seconds.") from exc

    @contextlib.asynccontextmanager
    async def _from(self, pool: AsyncConnectionPool):
        """A connection of ``pool``; a replica that gives none within a second is left out
        and the primary's is used (a read never fails because the replica did)."""
        if pool is self.read_pool and self.router is not None:
            try:
                conn = await pool.getconn(timeout=min(1.0, float(self.settings.database.pool_timeout)))
            except PoolTimeout as exc:
                self.router.mark_down(exc)
                pool, conn = self.pool, None
        else:
            conn = None
        if conn is None:
            conn = await pool.getconn()
        try:
            yield conn
        finally:
            await pool.putconn(conn)

    async def fetchall(self, query, params=None, *, read_only: bool = True) -> list[dict]:
        """Run a query and return rows as dicts."""
        async with self.connection(read_only=read_only) as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, params)
                return await cur.fetchall()

    async def fetchone(self, query, params=None, *, read_only: bool = True) -> dict | None:
        async with self.connection(read_only=read_only) as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, params)
                return await cur.fetchone()

    async def fetchval(self, query, params=None, *, read_only: bool = True):
        async with self.connection(read_only=read_only) as conn:
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
            return row[0] if row else None
