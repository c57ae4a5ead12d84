"""The ``gis-platform`` command line (typer + rich).

Feature packages contribute their own sub-commands (``ingest``, ``layers``, ``demo``,
``tiles``, ``maps``); they are attached here, in the composition root of the CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from gis_platform.apikeys import create_api_key, list_api_keys, revoke_api_key
from gis_platform.audit import digest, now_minus, search
from gis_platform.backup import backup, restore
from gis_platform.commands import (
    admin_conninfo,
    conninfo,
    console,
    fail,
    migrate,
    require_assets,
    settings,
)
from gis_platform.composition import FEATURES
from gis_platform.config import Settings
from gis_platform.db import migrations
from gis_platform.db.connections import connect
from gis_platform.db.embedded import EmbeddedPostgres
from gis_platform.demo import load_demo
from gis_platform.errors import PlatformError
from gis_platform.metrics import prepare_multiprocess_dir
from gis_platform.service_user import restrict_umask

app = typer.Typer(help="City GIS spatial services platform.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database: embedded cluster and migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _embedded(s: Settings):

    if not s.embedded:
        fail("GIS_DATABASE_URL is set: the platform uses that database, not an embedded one.")
    return EmbeddedPostgres(s)


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostGIS cluster (initialising it on first use)."""
    s = settings()
    emb = _embedded(s)
    try:
        emb.start()
    except PlatformError as exc:
        fail(exc.detail)
    st = emb.status()
    console.print(f"[green]embedded PostGIS running[/] on 127.0.0.1:{st['port']} ({st['data_dir']})")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    emb = _embedded(settings())
    console.print("stopped" if emb.stop() else "was not running")


@db_app.command("status")
def db_status() -> None:
    """Show whether the database is reachable and which migrations are applied."""
    s = settings()
    table = Table(show_header=False)
    st: dict = {}
    if s.embedded:
        try:
            st = _embedded(s).status()
        except PlatformError as exc:
            fail(exc.detail)
        for k, v in st.items():
            table.add_row(k, str(v))
    else:
        table.add_row("database_url", _redact(s.database.url or ""))
    try:


        url = s.database.url or (_embedded(s).url() if st.get("running") else None)
        if url:
            with connect(url, connect_timeout=5) as conn:
                applied = sorted(migrations.applied_versions(conn))
                pend = [m.version for m in migrations.pending(conn)]
                table.add_row("postgis", conn.execute("SELECT postgis_full_version()").fetchone()[0][:60])
            table.add_row("migrations applied", str(applied))
            table.add_row("migrations pending", str(pend))
    except Exception as exc:  # noqa: BLE001 - status must always print something
        table.add_row("connection", f"[red]{exc}[/]")
    Console().print(table)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations."""

    s = settings()
    try:
        applied = migrations.migrate(admin_conninfo(s))
    except PlatformError as exc:
        fail(exc.detail)
    if applied:
        for m in applied:
            console.print(f"applied [bold]{m.version:04d}_{m.name}[/]")
    else:
        console.print("migrations are current")


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_psql(ctx: typer.Context) -> None:
    """Open psql on the platform database as its owner (extra arguments go to psql)."""
    url = admin_conninfo(settings())
    psql = shutil.which("psql")
    if not psql:
        fail("psql is not installed: sudo apt-get install -y postgresql-client")
    os.execv(psql, [psql, url, *ctx.args])


@db_app.command("url")
def db_url(admin: bool = typer.Option(False, "--admin", help="The schema owner's URL (creates "
                                      "databases, runs migrations) instead of the server's "
                                      "least-privilege login.")) -> None:
    """Print the database URL (for scripts and peers such as TiPg or ogr2ogr)."""
    s = settings()
    print(admin_conninfo(s) if admin else conninfo(s))


def _redact(url: str) -> str:
    import re

    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url)


keys_app = typer.Typer(help="API keys (roles: citizen, staff, planner, operator, admin).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="Who or what the key is for."),
    role: list[str] = typer.Option(..., help="Role(s); repeat for several."),
    expires_days: int = typer.Option(None, help="Days until the key expires (default: never)."),
    layers: list[str] = typer.Option(None, help="Scope: only these non-public layers."),
    owner: list[str] = typer.Option(None, help="Scope: rows of these owners only (operators)."),
    kind: list[str] = typer.Option(None, help="Scope: rows of these facility kinds only."),
    district: list[str] = typer.Option(None, help="Scope: rows of these district codes only."),
) -> None:
    """Create an API key and print its token (shown once)."""
    from datetime import datetime, timedelta


    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    scopes = {k: list(v) for k, v in {"layers": layers, "owners": owner, "kinds": kind,
                                       "districts": district}.items() if v} or None
    try:
        token = create_api_key(conninfo(settings()), name, list(role), scopes=scopes, expires_at=expires)
    except PlatformError as exc:
        fail(exc.detail)
    print(token)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""

    table = Table("id", "name", "roles", "scopes", "expires", "revoked", "last used")
    for k in list_api_keys(conninfo(settings())):
        scopes = "; ".join(f"{n}={','.join(map(str, v))}" for n, v in (k["scopes"] or {}).items())
        table.add_row(k["id"], k["name"], ",".join(k["roles"]), scopes or "-", str(k["expires_at"] or "-"),
                      str(k["revoked_at"] or "-"), str(k["last_used_at"] or "-"))
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after gis_)."""

    if not revoke_api_key(conninfo(settings()), key_id):
        fail(f"No active key '{key_id}'.")
    console.print(f"revoked {key_id}")


@app.command("backup")
def backup_cmd(out: Path = typer.Argument(..., help="Archive to write (.tar).")) -> None:
    """Back up the platform: database (pg_dump) plus rasters and map files, one archive."""

    s = settings()
    try:
        manifest = backup(s, admin_conninfo(s), out)
    except PlatformError as exc:
        fail(exc.detail)
    console.print(f"[green]backup written[/] {manifest['archive']}: {len(manifest['layers'])} "
                  f"layers, {len(manifest['files'])} files, dump "
                  f"{manifest['db_dump']['bytes'] / 1e6:.1f} MB")


@app.command("restore")
def restore_cmd(
    archive: Path = typer.Argument(..., help="Archive written by `gis-platform backup`."),
    force: bool = typer.Option(False, help="Replace a non-empty database (a safety backup is "
                                           "taken first)."),
) -> None:
    """Restore a backup in one transaction (all or nothing); stop the servers first."""

    s = settings()
    try:
        result = restore(s, admin_conninfo(s), archive, force=force)
    except PlatformError as exc:
        fail(exc.detail)
    if result.get("safety_backup"):
        console.print(f"previous state saved to {result['safety_backup']}")
    console.print(f"[green]restored[/] {len(result['layers'])} layers "
                  f"(migrations {', '.join(map(str, result['migrations']))})")


audit_app = typer.Typer(help="The audit log: who read restricted data, who changed what.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("search")
def audit_search(
    principal: str = typer.Option(None, help="Actor id or key id prefix, e.g. key:ab12cd34ef56."),
    layer: str = typer.Option(None), action: str = typer.Option(None, help="read | write"),
    since: str = typer.Option("24h", help="30m, 2h, 7d or an ISO 8601 time."),
    until: str = typer.Option(None, help="Same forms as --since."),
    limit: int = typer.Option(100, min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Search the audit log, newest first."""
    import json


    try:
        lo = now_minus(since) if since else None
        hi = now_minus(until, "until") if until else None
        with connect(conninfo(settings())) as conn:
            rows = search(conn, principal=principal, layer=layer, action=action, since=lo, until=hi,
                          limit=limit)
    except PlatformError as exc:
        fail(exc.detail)
    if as_json:
        for r in rows:
            print(json.dumps(r, default=str, ensure_ascii=False))
        return
    table = Table("at", "actor", "action", "layer", "feature", "status", "bytes", "endpoint")
    for r in rows:
        table.add_row(str(r["at"])[:19], r["actor"], r["action"], r["layer_id"] or "-",
                      r["feature_id"] or "-", str(r["status"]), str(r["result_size"]),
                      (r["endpoint"] or "")[:80])
    Console().print(table)


@audit_app.command("digest")
def audit_digest(
    factor: float = typer.Option(5.0, help="Flag when the last hour exceeds FACTOR x the baseline."),
    min_reads: int = typer.Option(100, help="...and has at least this many restricted reads."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Principals with unusual restricted-read volume in the last hour (exit 3 if any).

    Run it hourly (cron: ``5 * * * * gis-platform audit digest``; a non-zero exit mails the
    report); the exit code lets monitoring alert on it.
    """
    import json


    with connect(conninfo(settings())) as conn:
        flagged = digest(conn, factor=factor, min_reads=min_reads)
    if as_json:
        print(json.dumps({"factor": factor, "min_reads": min_reads, "flagged": flagged}))
    elif not flagged:
        console.print("no unusual restricted-read volume in the last hour")
    else:
        table = Table("principal", "last hour", "baseline/h", "ratio", "layers", "bytes")
        for f in flagged:
            table.add_row(f["principal"], str(f["last_hour"]), str(f["baseline_per_hour"]),
                          str(f["ratio"] or "new"), str(f["layers"]), str(f["bytes"]))
        Console().print(table)
    if flagged:
        raise typer.Exit(3)


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Bind address (GIS_HOST)."),
    port: int = typer.Option(None, help="Port (GIS_PORT)."),
    workers: int = typer.Option(None, help="Worker processes (GIS_WORKERS)."),
) -> None:
    """Serve the HTTP API (the database must be reachable or embedded)."""
    import uvicorn

    s = settings()
    require_assets(s)
    host = host or s.http.host
    port = port or s.http.port
    workers = workers or s.http.workers
    # Start the cluster once and migrate with the owner's login, before the workers race for
    # it; then stop being root (the server holds only the least-privilege login).
    if s.database.auto_migrate:
        migrate(s)
    conninfo(s)
    if workers > 1:
        # Every worker writes its metric samples here; /metrics aggregates them.

        prepare_multiprocess_dir(s.resolved_data_dir() / "run" / f"metrics-{port}")
    console.print(f"[green]serving[/] on http://{host}:{port} with {workers} worker(s)  "
                  "(docs: /docs, ready: /ready, metrics: /metrics)")
    # Workers share nothing but the database and the on-disk tile cache (atomic renames).
    # A worker that dies is replaced by uvicorn's supervisor; SIGTERM lets in-flight
    # requests finish for up to graceful_shutdown_s.
    uvicorn.run("gis_platform.main:app", host=host, port=port, workers=workers,
                factory=False, log_config=None, proxy_headers=True,
                timeout_graceful_shutdown=s.http.graceful_shutdown_s, timeout_keep_alive=15)


@app.command("up")
def up(
    demo: bool = typer.Option(True, help="Load the demo city if the catalog is empty."),
    scale: str = typer.Option("small", help="Demo size: small | city | large."),
    host: str = typer.Option(None), port: int = typer.Option(None),
) -> None:
    """Start the embedded database if needed, migrate, load the demo city, and serve."""
    s = settings()
    require_assets(s)
    migrate(s)
    url = conninfo(s)
    if demo:
        load_demo(s, url, scale=scale, only_if_empty=True, console=console)
    base = f"http://{host or s.http.host}:{port or s.http.port}"
    console.print(f"[bold]open[/] {base}/maps  (policy map gallery) · {base}/permits  (road works) "
                  f"· {base}/collections  (OGC API) · {base}/viewer?layers=districts,roads")
    serve(host=host, port=port, workers=None)


demo_app = typer.Typer(help="The demo city (real Seoul boundaries, synthetic networks).",
                       no_args_is_help=True)
app.add_typer(demo_app, name="demo")


@demo_app.command("load")
def demo_load(
    scale: str = typer.Option("small", help="small | city | large (large: ~1M features)."),
    force: bool = typer.Option(False, help="Rebuild even if the demo layers exist."),
) -> None:
    """Build the demo city into the catalog (deterministic)."""
    s = settings()
    url = conninfo(s)
    try:
        load_demo(s, url, scale=scale, only_if_empty=not force, console=console)
    except PlatformError as exc:
        fail(exc.detail)


# The features' own sub-commands (ingest, layers, tiles, maps, indicators, domains...).
for _feature in FEATURES:
    if _feature.cli is not None:
        _feature.cli(app)


def main() -> None:  # pragma: no cover - entry point

    restrict_umask()
    try:
        app()
    except PlatformError as exc:
        console.print(f"[bold red]error:[/] {exc.detail}")
        sys.exit(1)
    except subprocess.CalledProcessError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
