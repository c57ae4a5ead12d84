"""CLI: ``gis-platform maps build|publish|export|list`` and ``gis-platform indicators ...``."""

from __future__ import annotations

from pathlib import Path

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from gis_platform.errors import PlatformError
from gis_platform.principal import SYSTEM
from policy_maps.build import MapAccess

console = Console(stderr=True)
maps_app = typer.Typer(help="Policy maps: build from a spec, publish, export.", no_args_is_help=True)
ind_app = typer.Typer(help="Policy indicators: load, hexagon grids, aggregation.", no_args_is_help=True)


def _conninfo() -> str:
    from gis_platform.cli import conninfo, settings

    return conninfo(settings())


def _fail(exc: PlatformError) -> None:
    console.print(f"[bold red]error:[/] {exc.detail}")
    for e in exc.extra.get("errors") or []:
        console.print(f"  - [bold]{e['field']}[/]: {e['message']}")
    raise typer.Exit(1)


@maps_app.command("build")
def build(spec: Path = typer.Argument(..., help="A map spec (.yaml/.yml/.json)"),
          publish_now: bool = typer.Option(False, "--publish", help="Publish the new version at once")) -> None:
    """Validate SPEC against the data and save it as a new version (a draft)."""
    from policy_maps.service import save_spec
    from policy_maps.spec import load_spec_file
    from policy_maps.store import publish

    try:
        parsed = load_spec_file(spec)
        with psycopg.connect(_conninfo(), autocommit=True) as conn:
            version, data = save_spec(conn, parsed, "cli", MapAccess.system(conn))
            if publish_now:
                publish(conn, parsed.id, version, SYSTEM)
    except PlatformError as exc:
        _fail(exc)
    state = "published" if publish_now else "draft"
    console.print(f"[green]{parsed.id}[/] version {version} saved ({state}): {len(data.fids)} areas, "
                  f"years {data.years}, {len(data.colors)} classes")


@maps_app.command("publish")
def publish_cmd(map_id: str, version: int = typer.Option(None, help="Version (default: latest)")) -> None:
    """Publish a map version (refused if it uses non-public layers or indicators)."""
    from policy_maps.store import publish

    try:
        with psycopg.connect(_conninfo(), autocommit=True) as conn:
            mv = publish(conn, map_id, version, SYSTEM)
    except PlatformError as exc:
        _fail(exc)
    console.print(f"[green]published[/] {mv.id} version {mv.version}: /maps/{mv.id}")


@maps_app.command("export")
def export(map_id: str, png: Path = typer.Option(None, "--png", help="Write a PNG here"),
           html: Path = typer.Option(None, "--html", help="Write standalone offline HTML here"),
           version: int = typer.Option(None), lang: str = typer.Option("ko", help="ko or en"),
           year: int = typer.Option(None, help="Year for the PNG (default: the map's)")) -> None:
    """Export a map as PNG and/or standalone HTML."""
    from policy_maps.render_folium import render_folium
    from policy_maps.render_png import render_png
    from policy_maps.service import load_map

    if not png and not html:
        console.print("[bold red]error:[/] name an output: --png OUT and/or --html OUT")
        raise typer.Exit(1)
    if lang not in ("ko", "en"):
        console.print("[bold red]error:[/] --lang must be ko or en")
        raise typer.Exit(1)
    try:
        with psycopg.connect(_conninfo(), autocommit=True) as conn:
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
    from policy_maps.store import list_maps

    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        found = list_maps(conn, SYSTEM, None, drafts)
    table = Table("id", "latest", "published", "indicator", "unit", "title")
    for m in found:
        table.add_row(m.id, str(m.latest_version), str(m.published_version or "-"), m.spec.indicator,
                      m.spec.area_unit, m.spec.title.get("ko"))
    Console().print(table)


@ind_app.command("list")
def ind_list() -> None:
    """List indicators with their years and area units."""
    from layers.indicators.store import list_indicators

    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        found = list_indicators(conn)
    table = Table("id", "name", "unit", "years", "area units", "access")
    for i in found:
        table.add_row(i.id, i.name_ko, i.unit, ",".join(map(str, i.years)), ",".join(i.units), i.access_level)
    Console().print(table)


@ind_app.command("load")
def ind_load(
    path: Path, indicator: str = typer.Option(..., help="Indicator id"),
    unit: str = typer.Option(..., help="Area unit: district, neighbourhood, hex500..."),
    code_column: str = typer.Option(..., help="Column with the area code (or name with --by-name)"),
    value_column: str = typer.Option(None), year: int = typer.Option(None),
    year_column: str = typer.Option(None),
    year_columns: str = typer.Option(None, help="Wide files: 2014=2014년,2015=2015년"),
    by_name: bool = typer.Option(False, help="The code column holds area names"),
    name_ko: str = typer.Option(None), name_en: str = typer.Option(None), unit_label: str = typer.Option(""),
    source: str = typer.Option(""), polarity: str = typer.Option("neutral"),
    encoding: str = typer.Option("utf-8-sig"),
) -> None:
    """Load indicator values from a CSV/TSV joined to the area unit's codes (or names)."""
    from layers.indicators.store import (
        Indicator,
        codes_by_name,
        get_indicator,
        load_values,
        read_csv_values,
        upsert_indicator,
    )

    try:
        ycols = None
        if year_columns:
            try:
                ycols = {int(k): v for k, v in (p.split("=", 1) for p in year_columns.split(","))}
            except ValueError:
                console.print("[bold red]error:[/] --year-columns looks like 2014=2014년,2015=2015년")
                raise typer.Exit(1) from None
        frame = read_csv_values(path, code_column=code_column, value_column=value_column, year=year,
                                year_column=year_column, year_columns=ycols, encoding=encoding)
        with psycopg.connect(_conninfo(), autocommit=True) as conn:
            if name_ko or name_en:
                upsert_indicator(conn, Indicator(id=indicator, name_ko=name_ko or name_en,
                                                 name_en=name_en or name_ko, unit=unit_label,
                                                 source=source, polarity=polarity))
            else:
                get_indicator(conn, indicator)
            if by_name:
                frame = codes_by_name(conn, unit, frame)
            report = load_values(conn, indicator, unit, frame)
    except PlatformError as exc:
        _fail(exc)
    except ValueError as exc:   # pydantic: bad indicator id / polarity
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]loaded[/] {report['rows']} values of {indicator} for {report['areas']} areas, "
                  f"years {report['years']}")


@ind_app.command("hexgrid")
def ind_hexgrid(layer: str = typer.Option("hex_500m"), clip: str = typer.Option("districts"),
                radius: float = typer.Option(500.0, help="Circumradius in metres"),
                unit: str = typer.Option(None, help="Area unit id (default: the layer id)")) -> None:
    """Build a hexagon grid over a boundary layer (PostGIS) and register it as an area unit."""
    from layers.indicators.hexgrid import create_hex_grid

    try:
        rep = create_hex_grid(_conninfo(), layer, clip_layer_id=clip, radius_m=radius, unit_id=unit)
    except PlatformError as exc:
        _fail(exc)
    console.print(f"[green]{rep['layer']}[/]: {rep['cells']} cells, {rep['area_km2']} km², unit {rep['unit']}")


@ind_app.command("aggregate")
def ind_aggregate(indicator: str = typer.Option(...), unit: str = typer.Option(...),
                  source: str = typer.Option(..., help="Point or line layer"),
                  measure: str = typer.Option("count", help="count | sum | density | length_density"),
                  year: int = typer.Option(...), value_column: str = typer.Option(None),
                  name_ko: str = typer.Option(None), name_en: str = typer.Option(None),
                  unit_label: str = typer.Option("")) -> None:
    """Compute an indicator by aggregating a layer into an area unit (PostGIS)."""
    from layers.indicators.hexgrid import aggregate_indicator
    from layers.indicators.store import Indicator

    if measure not in ("count", "sum", "density", "length_density"):
        console.print("[bold red]error:[/] --measure is count, sum, density or length_density")
        raise typer.Exit(1)
    try:
        ind = Indicator(id=indicator, name_ko=name_ko or indicator, name_en=name_en or indicator,
                        unit=unit_label, source=f"aggregated from {source}")
        with psycopg.connect(_conninfo(), autocommit=True) as conn:
            rep = aggregate_indicator(conn, ind, unit, source, measure, year, value_column=value_column)
    except PlatformError as exc:
        _fail(exc)
    console.print(f"[green]{indicator}[/]: {rep['rows']} values for {unit} ({year})")


def register(app: typer.Typer) -> None:
    """Attach ``maps`` and ``indicators`` to the platform CLI."""
    app.add_typer(maps_app, name="maps")
    app.add_typer(ind_app, name="indicators")
