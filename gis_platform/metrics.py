"""Prometheus metrics: requests per route family, latency, tile cache, pool, DB time.

* Request counts and latency are observed by the one request middleware
  (:class:`gis_platform.logs.RequestLogMiddleware`), labelled by a *route family* (tiles,
  features, maps, catalog, ...) rather than by raw path, so cardinality stays bounded.
* Database time is observed by :class:`gis_platform.db.Database` (pool wait and the time a
  connection is held, which is the query time of a request).
* Pool usage and the tile cache's hit/miss counters are sampled every few seconds from the
  live objects by a background task (:func:`start_sampler`).

With several worker processes (``gis-platform serve --workers N``) the serve command sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start; every worker then writes its samples
there and ``/metrics``, whichever worker answers it, aggregates all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger("gis_platform.metrics")

MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("gis_http_requests_total", "HTTP requests by route family and status class",
                   ["family", "method", "status"])
LATENCY = Histogram("gis_http_request_duration_seconds", "Request latency by route family",
                    ["family"], buckets=_LATENCY_BUCKETS)
RESPONSE_BYTES = Counter("gis_http_response_bytes_total", "Response body bytes by route family",
                         ["family"])
IN_FLIGHT = Gauge("gis_http_requests_in_flight", "Requests being served",
                  multiprocess_mode="livesum")
DB_WAIT = Histogram("gis_db_pool_wait_seconds", "Time waiting for a pooled connection",
                    buckets=_LATENCY_BUCKETS)
DB_HOLD = Histogram("gis_db_query_seconds", "Time a request holds a DB connection (its queries)",
                    buckets=_LATENCY_BUCKETS)
DB_ERRORS = Counter("gis_db_errors_total", "Database errors by kind", ["kind"])
POOL_SIZE = Gauge("gis_db_pool_connections", "Open pool connections", ["pool"],
                  multiprocess_mode="livesum")
POOL_IDLE = Gauge("gis_db_pool_idle", "Idle pool connections", ["pool"], multiprocess_mode="livesum")
POOL_WAITING = Gauge("gis_db_pool_waiting", "Requests waiting for a connection", ["pool"],
                     multiprocess_mode="livesum")
TILE_CACHE = Gauge("gis_tile_cache_events", "Tile cache lookups since start, by result",
                   ["result"], multiprocess_mode="livesum")
TILE_CACHE_BYTES = Gauge("gis_tile_cache_memory_bytes", "Bytes in the in-memory tile cache",
                         multiprocess_mode="livesum")
REPLICA_IN_USE = Gauge("gis_db_replica_in_use", "1 while reads may use the read replica, 0 while "
                       "it is left out", multiprocess_mode="min")
REPLICA_LAG = Gauge("gis_db_replica_lag_bytes", "WAL the replica has yet to replay",
                    multiprocess_mode="max")
REPLICA_READS = Gauge("gis_db_replica_reads", "Reads since start, by database (replica, or "
                      "primary: fallbacks included)", ["database"], multiprocess_mode="livesum")

# First path segment -> family.  Anything else is "other" (bounded label values).
_FAMILIES = {
    "tiles": "tiles", "tileMatrixSets": "tiles", "tilejson": "tiles", "viewer": "tiles",
    "collections": "features", "conformance": "features", "queryables": "features",
    "maps": "maps", "indicators": "indicators", "layers": "catalog", "static": "static",
    "health": "ops", "ready": "ops", "metrics": "ops", "docs": "docs", "openapi.json": "docs",
    "domains": "domains", "facilities": "domains", "permits": "domains", "dig-check": "domains",
    "roads": "domains", "admin": "admin", "audit": "admin", "": "landing",
}


def route_family(path: str) -> str:
    """A bounded label for a request path (``/collections/x/tiles/...`` counts as tiles)."""
    parts = path.split("/", 3)
    first = parts[1] if len(parts) > 1 else ""
    if first == "collections" and len(parts) > 3:
        rest = parts[3]
        if rest.startswith("tiles") or rest.startswith("map/tiles") or "/tiles/" in rest:
            return "tiles"
    return _FAMILIES.get(first, "other")


# (family, method, status class) -> its three labelled children: ``labels()`` (a lock and
# a dict lookup per call, three calls per request) showed up on small requests.  Bounded:
# past the cap (odd methods) the children are looked up as before.
_CHILDREN: dict[tuple[str, str, int], tuple] = {}
_CHILDREN_MAX = 512


def observe_request(path: str, method: str, status: int, seconds: float, nbytes: int) -> None:
    family = route_family(path)
    key = (family, method, status // 100)
    children = _CHILDREN.get(key)
    if children is None:
        children = (REQUESTS.labels(family, method, f"{status // 100}xx"), LATENCY.labels(family),
                    RESPONSE_BYTES.labels(family))
        if len(_CHILDREN) < _CHILDREN_MAX:
            _CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)
    if nbytes:
        children[2].inc(nbytes)


def sample(app) -> None:
    """Copy pool and tile-cache figures of this process into the gauges."""
    db = getattr(app.state, "db", None)
    if db is not None:
        for pool in (db.pool, db.read_pool):
            if pool is None:
                continue
            stats = pool.get_stats()
            POOL_SIZE.labels(pool.name).set(stats.get("pool_size", 0))
            POOL_IDLE.labels(pool.name).set(stats.get("pool_available", 0))
            POOL_WAITING.labels(pool.name).set(stats.get("requests_waiting", 0))
    router = getattr(db, "router", None)
    if router is not None:
        status = router.status()
        REPLICA_IN_USE.set(1 if status["in_use"] else 0)
        if status["lag_bytes"] is not None:
            REPLICA_LAG.set(status["lag_bytes"])
        for name, n in status["reads"].items():
            REPLICA_READS.labels(name).set(n)
    service = getattr(app.state, "tile_service", None)
    cache = getattr(service, "cache", None)
    stats = cache.stats() if cache is not None and hasattr(cache, "stats") else None
    if stats:
        for result in ("hits_memory", "hits_disk", "misses"):
            if result in stats:
                TILE_CACHE.labels(result).set(stats[result])
        if "memory_bytes" in stats:
            TILE_CACHE_BYTES.set(stats["memory_bytes"])


async def _sampler(app, every: float) -> None:
    while True:
        try:
            sample(app)
        except Exception:  # metrics must never take the app down
            log.debug("metrics sample failed", exc_info=True)
        await asyncio.sleep(every)


def start_sampler(app, every: float = 5.0) -> asyncio.Task:
    task = asyncio.create_task(_sampler(app, every), name="metrics-sampler")
    app.state.metrics_sampler = task
    return task


async def stop_sampler(app) -> None:
    task = getattr(app.state, "metrics_sampler", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def prepare_multiprocess_dir(path) -> None:
    """Called by ``serve --workers N`` before the workers start: a clean samples dir."""
    import shutil
    from pathlib import Path

    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def exposition() -> bytes:
    """The metrics in Prometheus' text format (every worker's, with several workers)."""
    if MULTIPROC:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = DEFAULT_REGISTRY
    return generate_latest(registry)
