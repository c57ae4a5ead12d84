"""CLI: ``gis-platform maps build|publish|export|list``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from gis_platform.commands import conninfo, settings
from gis_platform.db.connections import connect
from gis_platform.errors import PlatformError
from gis_platform.principal import SYSTEM
from policy_maps.build import MapAccess
from policy_maps.render_folium import render_folium
from policy_maps.render_png import render_png
from policy_maps.service import load_map, publish_with_thumbnail, save_spec
from policy_maps.spec import load_spec_file
from policy_maps.store import list_maps
from policy_maps.thumbnails import folder as thumbnail_folder

console = Console(stderr=True)
maps_app = typer.Typer(help="Policy maps: build from a spec, publish, export.", no_args_is_help=True)


def _conninfo() -> str:
    return conninfo(settings())


def _thumbnails() -> Path:
    return thumbnail_folder(settings().resolved_data_dir())


def _fail(exc: PlatformError) -> None:
    console.print(f"[bold red]error:[/] {exc.detail}")
    for e in exc.extra.get("errors") or []:
        console.print(f"  - [bold]{e['field']}[/]: {e['message']}")
    raise typer.Exit(1)


@maps_app.command("build")
def build(spec: Path = typer.Argument(..., help="A map spec (.yaml/.yml/.json)"),
          publish_now: bool = typer.Option(False, "--publish", help="Publish the new version at once")) -> None:
    """Validate SPEC against the data and save it as a new version (a draft)."""

    try:
        parsed = load_spec_file(spec)
        with connect(_conninfo(), autocommit=True) as conn:
            version, data = save_spec(conn, parsed, "cli", MapAccess.system(conn))
            if publish_now:
                publish_with_thumbnail(conn, data, SYSTEM, _thumbnails())
    except PlatformError as exc:
        _fail(exc)
    state = "published" if publish_now else "draft"
    console.print(f"[green]{parsed.id}[/] version {version} saved ({state}): {len(data.fids)} areas, "
                  f"years {data.years}, {len(data.colors)} classes")


@maps_app.command("publish")
def publish_cmd(map_id: str, version: int = typer.Option(None, help="Version (default: latest)")) -> None:
    """Publish a map version (refused if it uses non-public layers or indicators)."""

    try:
        with connect(_conninfo(), autocommit=True) as conn:
            data, _ = load_map(conn, map_id, version, SYSTEM, MapAccess.system(conn))
            mv = publish_with_thumbnail(conn, data, SYSTEM, _thumbnails())
    except PlatformError as exc:
        _fail(exc)
    console.print(f"[green]published[/] {mv.id} version {mv.version}: /maps/{mv.id}")


@maps_app.command("export")
def export(map_id: str, png: Path = typer.Option(None, "--png", help="Write a PNG here"),
           html: Path = typer.Option(None, "--html", help="Write standalone offline HTML here"),
           version: int = typer.Option(None), lang: str = typer.Option("ko", help="ko or en"),
           year: int = typer.Option(None, help="Year for the PNG (default: the map's)")) -> None:
    """Export a map as PNG and/or standalone HTML."""

    if not png and not html:
        console.print("[bold red]error:[/] name an output: --png OUT and/or --html OUT")
        raise typer.Exit(1)
    if lang not in ("ko", "en"):
        console.print("[bold red]error:[/] --lang must be ko or en")
        raise typer.Exit(1)
    try:
        with connect(_conninfo(), autocommit=True) as conn:
            data, _ = load_map(conn, map_id, version, SYSTEM, MapAccess.system(conn))
            if year is not None and year not in data.years:
                console.print(f"[bold red]error:[/] year {year} is not in the map; it has {data.years}")
                raise typer.Exit(1)
            if html:
                html.write_text(render_folium(data, conn, lang), encoding="utf-8")
                console.print(f"wrote {html} ({html.stat().st_size:,} bytes)")
        if png:
            png.write_bytes(render_png(data, lang, year))
            console.print(f"wrote {png} ({png.stat().st_size:,} bytes)")
    except PlatformError as exc:
        _fail(exc)


@maps_app.command("list")
def list_cmd(drafts: bool = typer.Option(True, help="Include drafts")) -> None:
    """List maps with their versions."""

    with connect(_conninfo(), autocommit=True) as conn:
        found = list_maps(conn, SYSTEM, None, drafts)
    table = Table("id", "latest", "published", "indicator", "unit", "title")
    for m in found:
        table.add_row(m.id, str(m.latest_version), str(m.published_version or "-"), m.spec.indicator,
                      m.spec.area_unit, m.spec.title.get("ko"))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Attach ``maps`` to the platform CLI."""
    app.add_typer(maps_app, name="maps")
