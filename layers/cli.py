"""CLI commands of the layers package: ``ingest`` and ``layers ...``."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis_platform.commands import admin_conninfo, conninfo, settings
from gis_platform.db.connections import connect
from gis_platform.errors import PlatformError
from gis_platform.service_user import stage_input
from layers.catalog import LayerUpdate, delete_layer, get_layer, list_layers, update_layer
from layers.ingest import ingest_file, readers
from layers.public_views import publish_aggregate
from layers.publish import publish, publish_schema, unpublish

console = Console(stderr=True)


def _ctx():
    s = settings()
    return s, conninfo(s)


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(1)


def print_report(report, out: Console | None = None) -> None:
    out = out or Console()
    table = Table(title=f"ingest {report.layer_id} ({report.mode})", show_header=False)
    rows = [("format", report.format), ("kind", report.kind), ("features read", report.features_read),
            ("features written", report.features_written), ("repaired", report.repaired),
            ("dropped: empty geometry", report.dropped_empty),
            ("dropped: no coordinates", report.dropped_no_coordinates),
            ("dropped: other type", report.dropped_other), ("geometry type", report.geometry_type),
            ("source CRS", report.source_crs), ("encoding", report.encoding),
            ("data version", report.data_version), ("layer feature count", report.feature_count),
            ("seconds", report.seconds), ("features/s", report.features_per_second)]
    for k, v in rows:
        if v not in (None, ""):
            table.add_row(k, str(v))
    for n in report.notes:
        table.add_row("note", n)
    out.print(table)


def ingest_cmd(
    path: Path = typer.Argument(..., exists=True, readable=True, help="File to ingest."),
    layer: str = typer.Option(None, "--layer", "-l", help="Layer id (default: from the file name)."),
    crs: str = typer.Option(None, help="Source CRS when the file has none, e.g. EPSG:5186."),
    mode: str = typer.Option("create", help="create | replace | append"),
    encoding: str = typer.Option(None, help="Attribute encoding, e.g. CP949."),
    source_layer: str = typer.Option(None, help="Layer inside a GeoPackage."),
    all_layers: bool = typer.Option(False, "--all-layers", help="Every layer of a GeoPackage."),
    title: str = typer.Option(None), access: str = typer.Option(None, help="public | internal | restricted"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    reason: str = typer.Option(None, help="Why (kept in an editable layer's history)."),
) -> None:
    """Ingest a GIS file (GeoJSON, GeoPackage, zipped Shapefile, FlatGeobuf, CSV, GeoTIFF)."""

    path = stage_input(settings(), path)
    s, url = _ctx()
    meta = {k: v for k, v in {"title": title, "access_level": access}.items() if v}
    try:
        targets: list[tuple[str | None, str | None]] = [(source_layer, layer)]
        if all_layers:
            if readers.sniff_format(path) != "GPKG":
                _fail("--all-layers applies to GeoPackages only.")
            targets = [(name, None) for name in readers.list_layers(path)]
        reports = []
        for src_layer, layer_id in targets:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                task = bar.add_task(f"reading {path.name}", total=None)

                def progress(stage: str, n: int, total: int | None) -> None:
                    if total is not None:
                        bar.update(task, description=f"writing {layer_id or src_layer or path.stem}",
                                   total=total)
                    bar.advance(task, n)

                reports.append(ingest_file(url, path, layer_id=layer_id, mode=mode, crs=crs,
                                           encoding=encoding, source_layer=src_layer, metadata=meta,
                                           data_dir=s.resolved_data_dir(), progress=progress,
                                           actor=f"cli:{getpass.getuser()}", reason=reason))
    except PlatformError as exc:
        _fail(exc.detail)
    for r in reports:
        if as_json:
            print(json.dumps(r.to_dict(), ensure_ascii=False))
        else:
            print_report(r)


layers_app = typer.Typer(help="The layer catalog.", no_args_is_help=True)


@layers_app.command("list")
def layers_list() -> None:
    """List every layer in the catalog."""


    _, url = _ctx()
    with connect(url) as conn:
        items = list_layers(conn)
    table = Table("id", "kind", "geometry", "features", "access", "version", "title")
    for l in items:
        table.add_row(l.id, l.kind, l.geometry_type or "-", str(l.feature_count), l.access_level,
                      str(l.data_version), l.title)
    Console().print(table)


@layers_app.command("show")
def layers_show(layer_id: str) -> None:
    """Show one catalog record as JSON."""


    _, url = _ctx()
    with connect(url) as conn:
        layer = get_layer(conn, layer_id)
    if layer is None:
        _fail(f"No layer '{layer_id}'.")
    print(json.dumps(layer.model_dump(mode="json", by_alias=True), ensure_ascii=False, indent=2))


@layers_app.command("set")
def layers_set(
    layer_id: str,
    title: str = typer.Option(None), title_ko: str = typer.Option(None),
    description: str = typer.Option(None), licence: str = typer.Option(None),
    attribution: str = typer.Option(None),
    access: str = typer.Option(None, help="public | internal | restricted"),
    minzoom: int = typer.Option(None), maxzoom: int = typer.Option(None),
    keyword: list[str] = typer.Option(None, help="Keywords (replaces the list)."),
    style: str = typer.Option(None, help="The layer's default style as JSON (replaces it), e.g. "
                              '\'{"color": "#d62728", "feature_minzoom": {"field": "road_class", '
                              '"values": {"arterial": 0}, "default": 14}}\''),
) -> None:
    """Change a layer's metadata."""
    from pydantic import ValidationError


    _, url = _ctx()
    values = {"title": title, "title_ko": title_ko, "description": description, "licence": licence,
              "attribution": attribution, "access_level": access, "minzoom": minzoom,
              "maxzoom": maxzoom, "keywords": keyword or None}
    if style is not None:
        try:
            values["default_style"] = json.loads(style)
        except json.JSONDecodeError as exc:
            _fail(f"--style is not JSON: {exc}")
        if not isinstance(values["default_style"], dict):
            _fail("--style must be a JSON object, e.g. '{\"color\": \"#d62728\"}'")
    try:
        patch = LayerUpdate(**{k: v for k, v in values.items() if v is not None})
        with connect(url, autocommit=True) as conn:
            layer = update_layer(conn, layer_id, patch)
    except ValidationError as exc:
        _fail(str(exc.errors()[0]["msg"]))
    except PlatformError as exc:
        _fail(exc.detail)
    console.print(f"updated {layer.id} (data version {layer.data_version})")


@layers_app.command("delete")
def layers_delete(layer_id: str, yes: bool = typer.Option(False, "--yes", "-y")) -> None:
    """Delete a layer and its data."""


    if not yes:
        typer.confirm(f"Delete layer '{layer_id}' and all its data?", abort=True)
    _, url = _ctx()
    try:
        with connect(url, autocommit=True) as conn:
            layer = delete_layer(conn, layer_id)
    except PlatformError as exc:
        _fail(exc.detail)
    if layer.raster_path:
        Path(layer.raster_path).unlink(missing_ok=True)
    console.print(f"deleted {layer_id}")


@layers_app.command("publish-aggregate")
def layers_publish_aggregate(
    source: str = typer.Argument(..., help="The (restricted) layer to summarise."),
    by: str = typer.Option("hex500", help="district | hex<metres> (e.g. hex500)."),
    min_count: int = typer.Option(3, help="Suppress cells with fewer assets than this (k >= 2)."),
    target: str = typer.Option(None, help="Id of the public layer (default: SOURCE_by_BY)."),
    districts_layer: str = typer.Option("districts", help="Polygon layer used by --by district."),
    title: str = typer.Option(None),
) -> None:
    """Publish a PUBLIC aggregate (count, length per district or hexagon) of a restricted layer."""

    _, url = _ctx()
    try:
        rep = publish_aggregate(url, source, by=by, min_count=min_count, target=target,
                                districts_layer=districts_layer, title=title)
    except PlatformError as exc:
        _fail(exc.detail)
    console.print(f"published [bold]{rep.layer_id}[/] (public, {rep.mode}) from {rep.source}: "
                  f"{rep.cells} cells, {rep.suppressed} suppressed (< {rep.min_count} assets)")


@layers_app.command("publish")
def layers_publish(
    relation: str = typer.Argument(None, help="SCHEMA.NAME of a table, view, materialized view "
                                   "or set-returning function (quote parts with capitals: "
                                   "'\"City\".\"Pipes\"')."),
    layer: str = typer.Option(None, "--id", help="Layer id (default: from the name)."),
    geometry_column: str = typer.Option(None, help="The geometry column (default: one layer "
                                        "per geometry column)."),
    id_column: str = typer.Option(None, help="Key column(s), comma-separated (default: the "
                                  "primary key; a view or function names its own)."),
    access: str = typer.Option("internal", help="public | internal | restricted"),
    title: str = typer.Option(None),
    depends_on: list[str] = typer.Option(None, help="A table a function or view reads "
                                         "(repeatable): its changes change the layer."),
    srid: int = typer.Option(None, help="SRID of a function's geometry when it declares none."),
    schema: str = typer.Option(None, help="With --all: publish every spatial relation of "
                               "this schema."),
    all_: bool = typer.Option(False, "--all", help="Every spatial relation of --schema."),
) -> None:
    """Publish a PostGIS relation IN PLACE (no copy): features, tiles, exports and stats
    read it directly; the platform notices changes made by other systems."""
    s = settings()
    admin = admin_conninfo(s)
    url = conninfo(s)
    if bool(all_) == bool(relation):
        _fail("Give SCHEMA.NAME, or --schema S --all.")
    try:
        with connect(url, autocommit=True) as conn, connect(admin, autocommit=True) as owner:
            if all_:
                if not schema:
                    _fail("--all needs --schema.")
                done, skipped = publish_schema(conn, schema, access_level=access,
                                               trigger_conn=owner)
            else:
                done = publish(conn, relation, layer_id=layer, geometry_column=geometry_column,
                               id_column=id_column, access_level=access, title=title,
                               depends_on=depends_on or None, trigger_conn=owner, srid=srid)
                skipped = []
    except PlatformError as exc:
        _fail(exc.detail)
    for p in done:
        d = p.as_dict()
        info = (f"({d['kind']}, {d['geometry_type'] or 'Geometry'}, EPSG:{d['srid']}, "
                f"{d['features']:,} features, key {','.join(d['key']) or 'none'}; "
                f"changes: {d['tracking']})" + (f" - {d['note']}" if d['note'] else ""))
        console.print(f"published [bold]{d['id']}[/] ({d['access_level']}) from "
                      f"{escape(d['relation'])} {escape(info)}")
    for name, why in skipped:
        console.print(f"[yellow]skipped[/] {escape(name)}: {escape(why)}")
    if not done and not skipped:
        console.print("nothing new to publish")


@layers_app.command("unpublish")
def layers_unpublish(layer_id: str) -> None:
    """Remove a published layer from the catalog; the relation itself is left untouched."""
    s = settings()
    admin = admin_conninfo(s)
    url = conninfo(s)
    try:
        with connect(url, autocommit=True) as conn, connect(admin, autocommit=True) as owner:
            layer = unpublish(conn, layer_id, actor="cli", trigger_conn=owner)
    except PlatformError as exc:
        _fail(exc.detail)
    console.print(f"unpublished {layer_id} ({escape(layer.relation.qualified)} is unchanged)")


def register(app: typer.Typer) -> None:
    """Attach this package's commands to the ``gis-platform`` CLI."""
    app.command("ingest")(ingest_cmd)
    app.add_typer(layers_app, name="layers")
