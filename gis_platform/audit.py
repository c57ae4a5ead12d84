"""The audit trail: every access decision on non-public data and every write, on record.

Design (cheap on the hot path, complete on the record):

* :class:`AuditMiddleware` (pure ASGI) gives each HTTP request an :class:`AuditContext` in a
  context variable.  The one access decision (:func:`gis_platform.access.authorize`) calls
  :func:`record_decision` for every decision - allowed or denied - on data of an audited
  level (``audit_levels``: internal and restricted) and for every write attempt; a refused
  API key calls :func:`record_auth_failure`.  Requests that touch nothing audited cost one
  context-variable set and nothing more.
* After the response the middleware turns the context into rows (who, when, layer,
  feature id, area (bbox), endpoint, result bytes, status, client IP, request id) and
  appends them to the :class:`AuditWriter` buffer: no database round trip per request.
* The writer flushes the buffer with ``COPY`` every ``audit_flush_seconds`` (or at once when
  it holds ``audit_batch_rows``), and on shutdown (the middleware sees the ASGI
  ``lifespan.shutdown`` before the app closes its pool).  A failed flush keeps the rows and
  retries; past ``audit_max_buffer`` rows the request path waits for a flush (back-pressure)
  rather than dropping records.

``gis_meta.audit_log`` is append-only (trigger, 0001 and 0005).  Search it with
:func:`search` (``GET /admin/audit``, ``gis-platform audit search``); :func:`digest` reports
principals whose restricted-read volume in the last hour is unusual.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import orjson

from gis_platform.errors import InvalidParameter

log = logging.getLogger("gis_platform.audit")

_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("gis_audit", default=None)

COLUMNS = ("at", "actor", "roles", "action", "endpoint", "layer_id", "feature_id", "area",
           "result_size", "status", "client_ip", "details")
_FEATURE_RE = re.compile(r"^/collections/[^/]+/items/([^/]{1,40})$")


@dataclass
class AuditContext:
    """What one request decided about non-public data or writes (filled by the access code)."""

    levels: frozenset[str]
    entries: list[tuple] = field(default_factory=list)   # (principal, action, label, level, allowed, reason)
    _seen: set = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.entries)


def record_decision(principal, action: str, label: str, level: str, allowed: bool,
                    reason: str = "") -> None:
    """Put one access decision of the current request on the record.

    Writes (``write``, ``write_rows``, ``create``) are always recorded; reads when the
    resource's level is audited (``audit_levels``: internal and restricted by default).
    A request that reads the same resource twice (a composite tile) gives one row.
    """
    ctx = _current.get()
    if ctx is None:
        return
    if action in ("read", "describe") and level not in ctx.levels:
        return
    key = (principal.id, action, label, allowed)
    if key in ctx._seen:
        return
    ctx._seen.add(key)
    ctx.entries.append((principal, action, label, level, allowed, reason))


def record_auth_failure(actor: str, reason: str) -> None:
    """A request whose API key was refused (unknown, revoked, expired or malformed)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.entries.append((actor, "authenticate", None, None, False, reason))


# --- the writer ------------------------------------------------------------------------------
class AuditWriter:
    """Buffers audit rows in memory and COPYs them into ``gis_meta.audit_log`` in batches."""

    def __init__(self, *, flush_seconds: float = 1.0, batch_rows: int = 5_000,
                 max_buffer: int = 100_000) -> None:
        self.flush_seconds = flush_seconds
        self.batch_rows = batch_rows
        self.max_buffer = max_buffer
        self.buffer: list[tuple] = []
        self.db = None
        self.written = 0
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    def start(self, db) -> None:
        """Start the periodic flush on the running loop (idempotent)."""
        self.db = db
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._lock = asyncio.Lock()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def add(self, rows: list[tuple]) -> None:
        """Queue rows; O(1) unless the buffer is over its bound (then wait for a flush)."""
        self.buffer.extend(rows)
        if len(self.buffer) >= self.batch_rows and self._wake is not None:
            self._wake.set()
        if len(self.buffer) > self.max_buffer:
            await self.flush()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - DB down: keep the rows, retry later
                log.warning("audit flush failed; will retry", extra={"error": type(exc).__name__,
                                                                     "pending": len(self.buffer)})
                await asyncio.sleep(min(5.0, self.flush_seconds * 2))

    async def flush(self) -> int:
        """Write everything buffered now (one COPY per batch).  Returns rows written."""
        if self.db is None or not self.buffer:
            return 0
        async with self._lock:
            rows, self.buffer = self.buffer, []
            try:
                async with self.db.pool.connection() as conn, conn.transaction():
                    async with conn.cursor().copy(
                            "COPY gis_meta.audit_log (" + ", ".join(COLUMNS) + ") FROM STDIN") as cp:
                        for row in rows:
                            await cp.write_row(row)
            except BaseException:
                self.buffer[:0] = rows        # keep them, oldest first
                raise
            self.written += len(rows)
            return len(rows)

    async def close(self) -> None:
        """Stop the periodic task and write what is left (called at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None
        if self.buffer:
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001
                log.error("audit rows lost at shutdown", extra={"rows": len(self.buffer),
                                                                "error": type(exc).__name__})


def _area(query: str) -> str | None:
    """The request's CRS84 ``bbox`` as EWKT (the audited area), if it has a plain one."""
    if "bbox=" not in query:
        return None
    qs = parse_qs(query)
    if qs.get("bbox-crs") or not qs.get("bbox"):
        return None
    try:
        nums = [float(v) for v in qs["bbox"][0].split(",")]
    except ValueError:
        return None
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4:
        return None
    x1, y1, x2, y2 = nums
    if not (-180 <= x1 <= x2 <= 180 and -90 <= y1 <= y2 <= 90):
        return None
    return f"SRID=4326;POLYGON(({x1} {y1},{x2} {y1},{x2} {y2},{x1} {y2},{x1} {y1}))"


def _ip(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(text)) if text else None
    except ValueError:        # a unix socket or a test client's name
        return None


def rows_for(ctx: AuditContext, scope, status: int, size: int) -> list[tuple]:
    """The audit rows of one finished request."""
    now = datetime.now(UTC)
    path = scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    endpoint = f"{scope.get('method', 'GET')} {path}" + (f"?{query}" if query else "")
    endpoint = endpoint[:1000]
    client = _ip((scope.get("client") or (None, 0))[0])
    request_id = (scope.get("state") or {}).get("request_id")
    m = _FEATURE_RE.match(path)
    feature = m.group(1) if m else None
    area = None
    out = []
    for who, action, label, level, allowed, reason in ctx.entries:
        actor, roles = (who, []) if isinstance(who, str) else (who.id, sorted(who.roles))
        denied = not allowed or status in (401, 403)
        details = {"request_id": request_id, "denied": denied}
        if level:
            details["access_level"] = level
        if reason and not allowed:
            details["reason"] = reason[:300]
        if action in ("read", "describe") and area is None:
            area = _area(query)
        out.append((now, actor, roles, action, endpoint, (label or None) and label[:200],
                    feature if action in ("read", "describe", "write_rows") else None,
                    area if action in ("read", "describe") else None, size, status,
                    client, orjson.dumps(details).decode()))
    return out


# --- the middleware --------------------------------------------------------------------------
class AuditMiddleware:
    """Pure ASGI: an audit context per request, rows queued after the response, flush on shutdown."""

    def __init__(self, app, *, levels=("restricted",), flush_seconds: float = 1.0,
                 batch_rows: int = 5_000, max_buffer: int = 100_000) -> None:
        self.app = app
        self.levels = frozenset(levels)
        self.writer = AuditWriter(flush_seconds=flush_seconds, batch_rows=batch_rows,
                                  max_buffer=max_buffer)

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        ctx = AuditContext(self.levels)
        token = _current.set(ctx)
        result = {"status": 500, "bytes": 0}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                result["status"] = message["status"]
            elif message["type"] == "http.response.body":
                result["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _current.reset(token)
            if ctx.entries:
                app = scope.get("app")
                db = getattr(getattr(app, "state", None), "db", None)
                if db is not None:
                    self.writer.start(db)
                await self.writer.add(rows_for(ctx, scope, result["status"], result["bytes"]))

    async def _lifespan(self, scope, receive, send):
        app = scope.get("app")
        if app is not None:
            app.state.audit_writer = self.writer

        async def receive_wrapper():
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.writer.close()   # before the app's lifespan closes the pool
            return message

        await self.app(scope, receive_wrapper, send)


# --- search and digest -----------------------------------------------------------------------
def search(conn, *, principal: str | None = None, layer: str | None = None,
           action: str | None = None, since: datetime | None = None, until: datetime | None = None,
           status: int | None = None, limit: int = 100) -> list[dict]:
    """Audit rows, newest first.  ``principal`` matches the actor exactly or as a prefix
    (``key:ab12cd`` finds ``key:ab12cd:name``)."""
    where, params = ["TRUE"], []
    if principal:
        where.append("(actor = %s OR actor LIKE %s)")
        params += [principal, principal.replace("%", r"\%").replace("_", r"\_") + ":%"]
    for cond, value in (("layer_id = %s", layer), ("action = %s", action), ("at >= %s", since),
                        ("at < %s", until), ("status = %s", status)):
        if value is not None and value != "":
            where.append(cond)
            params.append(value)
    params.append(max(1, min(int(limit), 10_000)))
    cur = conn.execute(
        "SELECT id, at, actor, roles, action, endpoint, layer_id, feature_id, "
        "ST_AsText(area) AS area, result_size, status, host(client_ip) AS client_ip, details "
        "FROM gis_meta.audit_log WHERE " + " AND ".join(where) + " ORDER BY at DESC, id DESC LIMIT %s",
        params)
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def digest(conn, *, factor: float = 5.0, min_reads: int = 100, now: datetime | None = None,
           baseline_days: int = 7) -> list[dict]:
    """Principals whose restricted reads in the last hour are unusual.

    Flagged when ``last_hour >= min_reads`` and ``last_hour > factor x baseline``, the
    baseline being the principal's mean hourly restricted reads over the ``baseline_days``
    before that hour (a principal never seen before has baseline 0, so only ``min_reads``
    applies).  Returns one dict per flagged principal, largest first.
    """
    now = now or datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)
    base_from = hour_ago - timedelta(days=baseline_days)
    cur = conn.execute(
        "SELECT actor, count(*) FILTER (WHERE at >= %(h)s) AS last_hour, "
        "count(*) FILTER (WHERE at < %(h)s) AS baseline_reads, "
        "count(DISTINCT layer_id) FILTER (WHERE at >= %(h)s) AS layers, "
        "coalesce(sum(result_size) FILTER (WHERE at >= %(h)s), 0) AS bytes "
        "FROM gis_meta.audit_log WHERE action = 'read' AND at >= %(b)s AND at < %(n)s "
        "AND coalesce(details->>'access_level', 'restricted') = 'restricted' "
        "GROUP BY actor", {"h": hour_ago, "b": base_from, "n": now})
    out = []
    for actor, last_hour, base_reads, layers, size in cur.fetchall():
        baseline = base_reads / (baseline_days * 24)
        if last_hour >= min_reads and last_hour > factor * baseline:
            out.append({"principal": actor, "last_hour": int(last_hour),
                        "baseline_per_hour": round(baseline, 2), "layers": int(layers),
                        "bytes": int(size),
                        "ratio": round(last_hour / baseline, 1) if baseline else None})
    return sorted(out, key=lambda r: -r["last_hour"])


def now_minus(text: str, param: str = "since") -> datetime:
    """``'2h'``, ``'30m'``, ``'7d'`` or an ISO 8601 instant -> an aware datetime."""
    text = text.strip()
    m = re.fullmatch(r"(\d{1,6})([smhd])", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(m.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"{param}={text[:40]!r} is neither a duration (30m, 2h, 7d) nor an "
                               "ISO 8601 time (2026-05-01T09:00:00Z).", parameter=param) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
