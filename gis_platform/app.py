"""The composition root: ``create_app(settings)``.

With :mod:`gis_platform.cli` and :mod:`gis_platform.demo`, the only modules of
``gis_platform`` that reach the feature packages - through the one list
:data:`gis_platform.composition.FEATURES`; everything else depends inward on the core.  The
lifespan owns the resources: it resolves the database (embedded or configured), applies
migrations, checks PostGIS and the login, opens the pools and the catalog-event listener,
enters each feature's lifespan in order, installs the fast routes, and closes it all in
reverse.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles
from psycopg import errors as pg_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

from gis_platform import __version__, apikeys, metrics
from gis_platform.admin_api import audit_router, keys_router
from gis_platform.assets import STATIC_DIR, require_vendor_assets, vendor_dir
from gis_platform.audit import AuditMiddleware
from gis_platform.composition import FEATURES
from gis_platform.config import Settings
from gis_platform.cors import PublicCorsMiddleware
from gis_platform.db import (
    CatalogEvents,
    Database,
    migrations,
    resolve_admin_conninfo,
    resolve_conninfo,
)
from gis_platform.db.connections import connect
from gis_platform.docs import router as docs_router
from gis_platform.errors import ConfigurationError, PlatformError, problem
from gis_platform.head import HeadMiddleware
from gis_platform.headers import SecurityHeadersMiddleware
from gis_platform.health import metrics_router
from gis_platform.health import router as health_router
from gis_platform.limits import BodyLimitMiddleware
from gis_platform.logs import RequestLogMiddleware, configure_logging
from gis_platform.ratelimit import RateLimitMiddleware
from gis_platform.responses import FastJSONResponse, ProblemResponse

log = logging.getLogger("gis_platform.app")

MIN_POSTGIS = (3, 0)


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    """Build the platform's ASGI app for ``settings`` (from the environment if omitted)."""
    settings = settings or Settings()
    # Fail at start-up, with the command that fixes it, rather than serve pages whose
    # scripts 404 (or an offline-map download that fails with a 500).
    require_vendor_assets(vendor_dir(settings))
    if configure_logs:
        configure_logging(settings.http.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        conninfo = await asyncio.to_thread(resolve_conninfo, settings)
        if settings.database.auto_migrate:
            await asyncio.to_thread(_migrate, settings, conninfo)
        await asyncio.to_thread(_check_postgis, conninfo)
        app.state.least_privilege = await asyncio.to_thread(_check_login, conninfo)
        async with AsyncExitStack() as stack:
            db = Database(conninfo, settings, read_conninfo=settings.database.read_url)
            await db.open()
            stack.push_async_callback(db.close)
            # LISTEN and the background leaders need a session of their own (not a
            # transaction pooler's): database.session_url, else the same URL.
            session = settings.database.session_url or conninfo
            events = CatalogEvents(session)
            events.subscribe("api keys", apikeys.on_events)
            if db.router is not None:          # other workers' writes: reads must see them
                events.subscribe("read replica", db.router.on_events)
            app.state.db, app.state.conninfo, app.state.events = db, conninfo, events
            app.state.session_conninfo = session
            for feature in FEATURES:
                if feature.lifespan is not None:
                    await stack.enter_async_context(feature.lifespan(app))
            await events.start()
            stack.push_async_callback(events.stop)
            for feature in FEATURES:
                if feature.fast_routes is not None:
                    feature.fast_routes(app)
            metrics.start_sampler(app)
            stack.push_async_callback(metrics.stop_sampler, app)
            log.info("platform started", extra={"embedded": settings.embedded})
            yield

    app = FastAPI(
        title="City GIS spatial services platform",
        version=__version__,
        description=(
            "Layers (underground facilities, roads, policy indicators) as OGC API Features and "
            "Tiles, vector and raster tiles, and public policy maps."
        ),
        default_response_class=FastJSONResponse,
        lifespan=lifespan,
        docs_url=None,  # gis_platform.docs serves /docs from the vendored Swagger UI
        openapi_url="/openapi.json",
        # FastAPI's native OpenTelemetry is opt-in: left on, it asks the OTel API for its
        # providers on every request (~7 % of the server's Python time on cold tiles).
        telemetry=None if settings.http.opentelemetry else {"tracing": False, "metrics": False,
                                                       "logs": False},
    )
    app.state.settings = settings
    _install_error_handlers(app)

    app.include_router(health_router)
    app.include_router(docs_router)
    app.include_router(keys_router)
    app.include_router(audit_router)
    if settings.http.metrics_enabled:
        app.include_router(metrics_router)
    _mount_static(app, vendor_dir(settings))
    for feature in FEATURES:
        for router in feature.routers:
            app.include_router(router)

    # Middleware order: the last added runs first.
    # Security headers innermost: they hash the inline scripts of the uncompressed HTML.
    app.add_middleware(SecurityHeadersMiddleware, embed_paths=settings.http.embed_paths,
                       frame_ancestors=settings.http.frame_ancestors)
    # Level 5: most of level 9's ratio at a fraction of its CPU (measured on feature pages).
    # Vector tiles are encoded by the tile routes themselves (stored gzipped, sent plain to
    # clients that refuse gzip): compressing or Vary-ing them again would say it twice.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5,
                       exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES,
                                              "application/vnd.mapbox-vector-tile"))
    # HEAD is the GET without its body: compression, security headers and routes inside see
    # the GET (so HEAD's headers are the GET's); CORS, limits, audit and logs outside see HEAD.
    app.add_middleware(HeadMiddleware)
    if settings.http.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.http.cors_origins,
                           allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["*"], expose_headers=["ETag", "X-Request-Id"])
    # Any other origin: public, anonymous reads (GET/HEAD without credentials) only.
    app.add_middleware(PublicCorsMiddleware, trusted=settings.http.cors_origins)
    app.add_middleware(BodyLimitMiddleware, max_body=settings.http.max_request_body_kb * 1024,
                       max_upload=settings.ingest.max_upload_mb * 1024 * 1024)
    if settings.security.rate_limit_per_ip > 0 or settings.security.rate_limit_per_key > 0:
        app.add_middleware(RateLimitMiddleware, per_ip=settings.security.rate_limit_per_ip,
                           per_key=settings.security.rate_limit_per_key,
                           burst_seconds=settings.security.rate_limit_burst_seconds)
    app.add_middleware(AuditMiddleware, levels=settings.security.audit_levels,
                       flush_seconds=settings.security.audit_flush_seconds,
                       batch_rows=settings.security.audit_batch_rows, max_buffer=settings.security.audit_max_buffer)
    app.add_middleware(RequestLogMiddleware, timeout=settings.http.request_timeout_s)
    return app


def _mount_static(app: FastAPI, vendor: Path) -> None:
    """Serve /static: our own JS/CSS and the vendored npm assets (MapLibre, Leaflet...)."""
    # MapLibre 6 is ESM-only: .mjs must go out as JavaScript or browsers refuse the module.
    mimetypes.add_type("text/javascript", ".mjs")
    app.mount("/static/vendor", StaticFiles(directory=vendor), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _migrate(settings: Settings, conninfo: str) -> None:
    """Apply pending migrations with the owner's login; a server that cannot read it (it
    runs as an unprivileged OS user) only checks that none is pending."""
    try:
        admin = resolve_admin_conninfo(settings)
    except (PermissionError, ConfigurationError):
        admin = None
    if admin is None:
        with connect(conninfo, connect_timeout=10) as conn:
            waiting = migrations.pending(conn)
        if waiting:
            raise ConfigurationError(
                f"{len(waiting)} database migration(s) are pending and this server may not apply "
                "them: run `gis-platform db migrate` as the operator first.")
        return
    applied = migrations.migrate(admin)
    if applied:
        log.info("migrations applied", extra={"versions": [m.version for m in applied]})


def _check_login(conninfo: str) -> bool:
    """Whether the server's login is least-privilege (not a superuser, not the owner of the
    audit log); logged loudly when it is not."""
    with connect(conninfo, connect_timeout=10) as conn:
        superuser, owns_audit = conn.execute(
            "SELECT r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_roles r, "
            "pg_class c WHERE r.rolname = current_user AND c.oid = 'gis_meta.audit_log'::regclass"
        ).fetchone()
    if superuser or owns_audit:
        log.warning("the server's database login is not least-privilege: it could rewrite the "
                    "audit log. Connect as gis_platform_app (see README, Security).",
                    extra={"superuser": superuser, "owns_audit_log": owns_audit})
        return False
    return True


def _check_postgis(conninfo: str) -> None:
    with connect(conninfo, connect_timeout=10) as conn:
        version = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
    parts = tuple(int(p) for p in version.split(".")[:2])
    if parts < MIN_POSTGIS:
        raise RuntimeError(f"PostGIS {version} is too old; the platform needs >= "
                           f"{'.'.join(map(str, MIN_POSTGIS))}")


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem+json; nothing internal reaches the client."""

    @app.exception_handler(PlatformError)
    async def _platform(request: Request, exc: PlatformError):
        if exc.status >= 500:
            log.warning("service error", extra={"path": request.url.path, "error": exc.detail})
        extra = {k: v for k, v in exc.extra.items() if not k.startswith("_")}
        headers = exc.extra.get("_headers")
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="gis-platform"'}
        return ProblemResponse(problem(exc.status, exc.title, exc.detail, exc.type_slug,
                                       instance=request.url.path, **extra),
                               status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            errors.append({"parameter": loc, "message": err.get("msg", "invalid")})
        detail = "; ".join(f"{e['parameter']}: {e['message']}" for e in errors) or "Invalid request"
        return ProblemResponse(problem(400, "Invalid parameter", detail, "invalid-parameter",
                                       instance=request.url.path, errors=errors), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}."
        return ProblemResponse(problem(exc.status_code, titles.get(exc.status_code, "Error"),
                                       detail, f"http-{exc.status_code}",
                                       instance=request.url.path),
                               status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: psycopg.OperationalError):
        return ProblemResponse(problem(503, "Database unavailable",
                                       "The database is not reachable right now; retry shortly.",
                                       "database-unavailable", instance=request.url.path),
                               status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(pg_errors.UndefinedTable)
    @app.exception_handler(pg_errors.UndefinedColumn)
    @app.exception_handler(pg_errors.UndefinedFunction)
    @app.exception_handler(pg_errors.InsufficientPrivilege)
    async def _source_changed(request: Request, exc: psycopg.Error):
        # A relation published in place changed under us (a column dropped, the table
        # renamed, a grant revoked): the watcher re-reads it within a poll interval.
        log.warning("source relation error", extra={"path": request.url.path,
                                                     "error": type(exc).__name__})
        return ProblemResponse(problem(
            503, "Source relation unavailable",
            "The data source of this layer changed or cannot be read by the platform right now "
            "(a column or table renamed or dropped, or a permission revoked). The catalog "
            "re-reads it within seconds; if it persists, ask the layer's publisher.",
            "source-unavailable", instance=request.url.path),
            status_code=503, headers={"Retry-After": "10"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error", extra={"path": request.url.path})
        return ProblemResponse(problem(500, "Internal error",
                                       "The server hit an unexpected error; it has been logged.",
                                       "internal-error", instance=request.url.path),
                               status_code=500)
