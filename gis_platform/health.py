"""Operations routes: liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from gis_platform import metrics
from gis_platform.access import require_admin
from gis_platform.db import migrations
from gis_platform.deps import Db
from gis_platform.errors import DatabaseUnavailable, problem
from gis_platform.responses import ProblemResponse
from gis_platform.security import PrincipalDep

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: database reachable and migrations current",
            responses={503: {"description": "Not ready"}})
async def ready(db: Db, request: Request):
    try:
        async with db.connection() as conn:
            cur = await conn.execute("SELECT postgis_lib_version()")
            postgis = (await cur.fetchone())[0]
            cur = await conn.execute(
                "SELECT coalesce(array_agg(version), '{}') FROM gis_meta.schema_migrations")
            applied = set((await cur.fetchone())[0])
    except DatabaseUnavailable as exc:
        return ProblemResponse(problem(503, "Not ready", exc.detail, "not-ready"), status_code=503)
    except Exception:  # noqa: BLE001 - e.g. migrations table missing
        return ProblemResponse(problem(503, "Not ready", "The database schema is not initialized.",
                                      "not-ready"), status_code=503)
    wanted = {m.version for m in await asyncio.to_thread(migrations.available_migrations)}
    missing = sorted(wanted - applied)
    if missing:
        return ProblemResponse(problem(503, "Not ready", f"Pending migrations: {missing}; run "
                                      "`gis-platform db migrate`.", "not-ready"), status_code=503)
    return {"status": "ready", "postgis": postgis, "migrations": sorted(applied),
            "least_privilege": getattr(request.app.state, "least_privilege", None),
            # Which database reads use, and how far behind the replica is (None: no replica).
            "read_replica": db.router.status() if db.router is not None else None}


@metrics_router.get("/metrics", summary="Prometheus metrics (text exposition format); admin key "
                    "unless GIS_METRICS_PUBLIC", response_class=Response,
                    responses={401: {}, 403: {}})
async def metrics_route(request: Request, principal: PrincipalDep) -> Response:
    # Request counts, pool sizes and timings tell an attacker how busy and how big the
    # deployment is: only admin keys (a Prometheus bearer token) unless made public.
    if not request.app.state.settings.http.metrics_public:
        require_admin(principal)
    metrics.sample(request.app)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
