"""CLI of the domain layers: ``gis-platform domains ...``.

* ``domains ingest facilities|roads PATH [--map SRC=DST ...] [--skip-invalid]`` — load a file
  onto the facility / road schema with per-row validation (all or nothing by default);
* ``domains permits [--status S]`` — the permits and their current status;
* ``domains permit-status NO STATUS [--note] [--office]`` — move a permit on (recorded with
  actor ``cli:<user>``, as the CLI runs with the database credentials).

Wire it with ``register(app)`` from ``gis_platform.cli._attach_feature_commands``.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from domains.ingest import DomainIngestError, ingest_domain_file
from domains.permits import transition
from gis_platform.commands import settings
from gis_platform.db.connections import connect
from gis_platform.errors import PlatformError
from gis_platform.service_user import stage_input
from layers.cli import _ctx, _fail

console = Console(stderr=True)
domains_app = typer.Typer(help="Underground facilities, roads and road-works permits.", no_args_is_help=True)


def _mapping(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        src, sep, dst = p.partition("=")
        if not sep or not src.strip() or not dst.strip():
            _fail(f"--map takes SOURCE=TARGET (e.g. '관경=diameter_mm'), not {p!r}.")
        out[src.strip()] = dst.strip()
    return out


@domains_app.command("ingest")
def ingest(
    kind: str = typer.Argument(..., help="facilities | roads"),
    path: Path = typer.Argument(..., exists=True, readable=True, help="File to load."),  # noqa: B008
    layer: str = typer.Option(None, "--layer", "-l", help="Layer id (default: underground_facilities / roads)."),
    mode: str = typer.Option("create", help="create | replace | append"),
    crs: str = typer.Option(None, help="Source CRS when the file has none, e.g. EPSG:5186."),
    encoding: str = typer.Option(None, help="Attribute encoding, e.g. CP949."),
    source_layer: str = typer.Option(None, help="Layer inside a GeoPackage."),
    map_: list[str] = typer.Option(None, "--map", help="Column mapping SOURCE=TARGET (repeatable)."),  # noqa: B008
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Load the valid rows, report the rest."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Load facilities or roads from a file, validating every row."""

    path = stage_input(settings(), path)
    _, url = _ctx()
    try:
        rep = ingest_domain_file(url, path, kind, layer_id=layer, mode=mode, crs=crs, encoding=encoding,
                                 source_layer=source_layer, mapping=_mapping(map_),
                                 on_error="skip" if skip_invalid else "reject")
    except DomainIngestError as exc:
        if as_json:
            typer.echo(json.dumps({"error": exc.detail, "rejected": exc.extra.get("rejected")},
                                  ensure_ascii=False, indent=2))
        _print_rejected(exc.extra.get("rejected") or [])
        _fail(exc.detail)
        return
    except PlatformError as exc:
        _fail(exc.detail)
        return
    if as_json:
        typer.echo(json.dumps(rep.to_dict(), ensure_ascii=False, indent=2, default=str))
        return
    console.print(f"[green]{rep.rows_loaded}[/] of {rep.rows_read} rows loaded into '{rep.layer_id}'; "
                  f"{len(rep.rejected)} rejected. Columns: {rep.column_mapping}")
    _print_rejected(rep.rejected)


def _print_rejected(rejected: list[dict]) -> None:
    if not rejected:
        return
    table = Table(title="rejected rows")
    for col in ("row", "column", "value", "error"):
        table.add_column(col)
    for r in rejected[:50]:
        for p in r["problems"]:
            table.add_row(str(r["row"]), p["column"], str(p["value"]), p["error"])
    console.print(table)


@domains_app.command("permits")
def list_permits(status: str = typer.Option(None, help="Only this status.")) -> None:
    """The permits and their current status (no applicant data)."""

    _, url = _ctx()
    with connect(url) as conn:
        rows = conn.execute("SELECT permit_no, status, starts_on, ends_on, office, purpose FROM "
                            "gis_domain.permits WHERE %(s)s::text IS NULL OR status = %(s)s "
                            "ORDER BY status_at DESC LIMIT 200", {"s": status}).fetchall()
    table = Table(title="permits (newest change first, at most 200)")
    for col in ("permit", "status", "starts", "ends", "office", "purpose"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(v) for v in r])
    Console().print(table)


@domains_app.command("permit-status")
def permit_status(permit_no: str, status: str, note: str = typer.Option(None),
                  office: str = typer.Option(None)) -> None:
    """Move a permit to its next status (illegal transitions are refused)."""


    _, url = _ctx()
    try:
        with connect(url, autocommit=True) as conn:
            out = transition(conn, permit_no, status, actor=f"cli:{getpass.getuser()}", roles=["admin"],
                             note=note, office=office)
    except PlatformError as exc:
        _fail(exc.detail)
        return
    console.print(f"[green]{out['permit_no']}[/]: {out['from']} -> {out['status']}")


def register(app: typer.Typer) -> None:
    """Attach ``gis-platform domains ...``."""
    app.add_typer(domains_app, name="domains")
