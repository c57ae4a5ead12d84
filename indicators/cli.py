"""CLI: ``gis-platform indicators list|load|hexgrid|aggregate``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from gis_platform.commands import conninfo, settings
from gis_platform.db.connections import connect
from gis_platform.errors import InvalidParameter, PlatformError
from indicators.hexgrid import aggregate_indicator, create_hex_grid
from indicators.points import aggregate_points, parse_hours, store_point_indicator, unit_cells
from indicators.store import (
    Indicator,
    codes_by_name,
    get_indicator,
    list_indicators,
    load_values,
    read_csv_values,
    upsert_indicator,
)

console = Console(stderr=True)
ind_app = typer.Typer(help="Policy indicators: load, hexagon grids, aggregation.", no_args_is_help=True)


def _conninfo() -> str:
    return conninfo(settings())


def _fail(exc: PlatformError) -> None:
    console.print(f"[bold red]error:[/] {exc.detail}")
    raise typer.Exit(1)


@ind_app.command("list")
def ind_list() -> None:
    """List indicators with their years and area units."""

    with connect(_conninfo(), autocommit=True) as conn:
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
        with connect(_conninfo(), autocommit=True) as conn:
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

    try:
        rep = create_hex_grid(_conninfo(), layer, clip_layer_id=clip, radius_m=radius, unit_id=unit)
    except PlatformError as exc:
        _fail(exc)
    console.print(f"[green]{rep['layer']}[/]: {rep['cells']} cells, {rep['area_km2']} km², unit {rep['unit']}")


@ind_app.command("aggregate")
def ind_aggregate(indicator: str = typer.Option(...), unit: str = typer.Option(...),
                  source: str = typer.Option(None, help="Point or line layer (aggregated in PostGIS)"),
                  points: list[str] = typer.Option(
                      None, help="Point files (Parquet or CSV; globs and folders), aggregated on "
                                 "Dask without loading them: any size"),
                  measure: str = typer.Option("count", help="count | sum | density | length_density"),
                  year: int = typer.Option(...), value_column: str = typer.Option(None),
                  name_ko: str = typer.Option(None), name_en: str = typer.Option(None),
                  unit_label: str = typer.Option(""),
                  lon: str = typer.Option("lon", help="--points: longitude column (WGS 84)"),
                  lat: str = typer.Option("lat", help="--points: latitude column"),
                  time_column: str = typer.Option(None, help="--points: timestamp column"),
                  hours: str = typer.Option(None, help="--points: hours of the day, e.g. 22-5"),
                  min_count: int = typer.Option(0, help="--points: suppress cells with fewer points"),
                  scheduler: str = typer.Option(None, help="--points: a Dask scheduler "
                                                "(tcp://host:8786); default: a local cluster"),
                  workers: int = typer.Option(None, help="--points: local workers (default: CPUs)"),
                  memory_limit: str = typer.Option("2GB", help="--points: per local worker")) -> None:
    """Compute an indicator by aggregating a layer (PostGIS) or point files (Dask) into an
    area unit."""

    if measure not in ("count", "sum", "density", "length_density"):
        console.print("[bold red]error:[/] --measure is count, sum, density or length_density")
        raise typer.Exit(1)
    if bool(source) == bool(points):
        console.print("[bold red]error:[/] give either --source LAYER or --points FILES")
        raise typer.Exit(1)
    try:
        ind = Indicator(id=indicator, name_ko=name_ko or indicator, name_en=name_en or indicator,
                        unit=unit_label, source=f"aggregated from {source or ', '.join(points)}")
        if points:
            rep = _aggregate_points(ind, unit, points, measure, year, value_column=value_column, lon=lon,
                                    lat=lat, time_column=time_column, hours=hours, min_count=min_count,
                                    scheduler=scheduler, workers=workers, memory_limit=memory_limit)
        else:
            with connect(_conninfo(), autocommit=True) as conn:
                rep = aggregate_indicator(conn, ind, unit, source, measure, year, value_column=value_column)
    except PlatformError as exc:
        _fail(exc)
    extra = (f"; {rep['rows_read']:,} rows read, {rep['rows_used']:,} in the hours asked, "
             f"{rep['suppressed']} cells suppressed") if points else ""
    console.print(f"[green]{indicator}[/]: {rep['rows']} values for {unit} ({year}){extra}")


def _aggregate_points(ind, unit: str, files: list[str], measure: str, year: int, **kw) -> dict:
    if measure not in ("count", "sum", "density"):
        raise InvalidParameter("Point files aggregate as count, sum or density.")
    if measure == "sum" and not kw["value_column"]:
        raise InvalidParameter("--measure sum needs --value-column.")
    with connect(_conninfo(), autocommit=True) as conn:
        cells = unit_cells(conn, unit)
    per_cell, read = aggregate_points(
        cells, files, lon=kw["lon"], lat=kw["lat"], value=kw["value_column"] if measure == "sum" else None,
        time_column=kw["time_column"], hours=parse_hours(kw["hours"]), scheduler=kw["scheduler"],
        workers=kw["workers"], memory_limit=kw["memory_limit"])
    with connect(_conninfo(), autocommit=True) as conn:
        rep = store_point_indicator(conn, ind, unit, per_cell, measure, year, min_count=kw["min_count"],
                                    method={"files": files, "hours": kw["hours"], **read})
    return {**rep, **read}


def register(app: typer.Typer) -> None:
    """Attach ``indicators`` to the platform CLI."""
    app.add_typer(ind_app, name="indicators")
