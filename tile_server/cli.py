"""``gis-platform tiles ...``: pre-warming the tile cache, building overviews.

``gis-platform tiles seed --layer roads --zooms 10-14 --bbox 126.9,37.5,127.1,37.6`` renders
every tile of the range into the on-disk cache the server reads (``GIS_DATA_DIR``), with the
same keys the routes use.  Several ``--layer`` options seed their composite tile
(``/tiles/{tms}/{z}/{x}/{y}.mvt?layers=a,b``).  Tiles depend on the caller's access key, so
each tile is rendered once and stored under every access key that may read the layers.
Run it with the same ``GIS_TILE_*`` settings as the server, or the keys will not match.
"""

from __future__ import annotations

import asyncio
import time

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gis_platform.commands import conninfo, settings
from gis_platform.db import Database
from gis_platform.db.connections import connect, connect_async
from gis_platform.errors import PlatformError
from gis_platform.principal import Principal, can_read_level
from layers.catalog import get_layer, list_layers
from tile_server.overview_build import OverviewPlan, build_layer, drop_overviews, list_overviews
from tile_server.overviews import OverviewManager
from tile_server.raster import RasterSource, parse_raster_params
from tile_server.service import TileService
from tile_server.sources import TileTuning
from tile_server.tms import get_tms
from tile_server.vector import VectorSource

console = Console(stderr=True)
MAX_TILES = 2_000_000
_ROLES = ("public", "citizen", "staff", "planner", "operator", "admin")


def parse_zooms(text: str) -> list[int]:
    """``'10-14'`` -> [10..14], ``'12'`` -> [12]; BadParameter otherwise."""
    try:
        lo, _, hi = text.partition("-")
        zooms = list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise typer.BadParameter(f"--zooms must look like 10-14 or 12, got {text!r}") from None
    if not zooms or zooms[0] < 0 or zooms[-1] > 24:
        raise typer.BadParameter(f"--zooms {text!r}: use 0 to 24, low to high.")
    return zooms


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter("--bbox must be minlon,minlat,maxlon,maxlat") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise typer.BadParameter(f"--bbox {text!r} is not a lon/lat box (min before max).")
    return w, s, e, n


def access_keys_for(layers) -> list[str]:
    """Distinct access keys of the roles that may read every one of ``layers``."""

    keys = []
    for role in _ROLES:
        p = Principal(id=f"seed:{role}", roles=frozenset({role}))
        if all(can_read_level(p, l.access_level) for l in layers):
            keys.append(p.access_key)
    return list(dict.fromkeys(keys))


async def seed_tiles(settings, conninfo: str, layer_ids: list[str], zooms: list[int],
                     bbox: tuple[float, float, float, float] | None, tms_id: str,
                     concurrency: int, progress: Progress | None = None) -> dict:
    """Render the tiles into the cache; returns counts.  Shared by the command and tests."""


    grid = get_tms(tms_id)
    with connect(conninfo) as conn:
        layers = [get_layer(conn, i) for i in layer_ids]
    missing = [i for i, l in zip(layer_ids, layers) if l is None]
    if missing:
        raise PlatformError(f"No layer {missing}.")
    if len(layers) > 1 and any(l.kind != "vector" for l in layers):
        raise PlatformError("Only vector layers can be seeded together (as a composite).")
    if bbox is None:
        exts = [l.extent for l in layers if l.extent]
        if not exts:
            raise PlatformError("The layers have no extent; give --bbox.")
        bbox = (min(e[0] for e in exts), min(e[1] for e in exts),
                max(e[2] for e in exts), max(e[3] for e in exts))
    zooms = [z for z in zooms if any(l.minzoom <= z <= l.maxzoom for l in layers)
             and grid.minzoom <= z <= grid.maxzoom]
    tiles = []
    for z in zooms:
        tiles.extend(grid.tiles(*bbox, [z], truncate=True))
        if len(tiles) > MAX_TILES:
            raise PlatformError(f"More than {MAX_TILES:,} tiles: narrow --zooms or --bbox.")
    keys = access_keys_for(layers)
    db = Database(conninfo, settings)
    await db.open()
    service = TileService(settings, db)
    if layers[0].kind == "vector":
        # Overviews first (those missing for big layers), so the seeded tiles are the
        # generalised ones the server would render, under the same cache keys.

        plan = OverviewPlan.from_settings(settings.tiles)
        built = []
        for l in layers:
            built += await build_layer(conninfo, l.id, service.tuning, plan)
        service.overviews = OverviewManager(conninfo, service.tuning, plan)
        await service.overviews.load()
        overviews_built = len(built)
    else:
        overviews_built = 0
    if layers[0].kind == "raster":
        params = parse_raster_params(layers[0], "png", None, [], None)
        source = RasterSource(layers[0], params, settings.resolved_data_dir(), service.raster_limiter)
        params_key = params.key()
    else:
        source = VectorSource(layers, db, service.tuning, service.sql_cache,
                              overviews=service.overviews)
        params_key = ""
    counts = {"tiles": len(tiles), "rendered": 0, "empty": 0, "skipped": 0, "bytes": 0,
              "access_keys": keys, "overviews_built": overviews_built}
    task = progress.add_task(f"seeding {','.join(layer_ids)}", total=len(tiles)) if progress else None
    queue: asyncio.Queue = asyncio.Queue()
    for t in tiles:
        queue.put_nowait(t)

    async def worker() -> None:
        while True:
            try:
                t = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if all(service.cached(source, grid, t, params_key, k) for k in keys):
                counts["skipped"] += 1
            else:
                result = await service.tile(source, grid, t, params_key=params_key, access_key=keys[0])
                for k in keys[1:]:
                    await asyncio.to_thread(service.store_as, source, grid, t, params_key, k, result.body)
                counts["empty" if result.empty else "rendered"] += 1
                counts["bytes"] += len(result.body)
            if progress is not None:
                progress.advance(task)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        await service.drain()
    finally:
        await db.close()
    return counts


async def build_overviews(settings, conninfo: str, layer_ids: list[str], force: bool) -> list:
    """Build the missing overviews of ``layer_ids`` (all big vector layers if empty)."""


    with connect(conninfo) as conn:
        if layer_ids:
            layers = [get_layer(conn, i) for i in layer_ids]
            missing = [i for i, l in zip(layer_ids, layers) if l is None or l.kind != "vector"]
            if missing:
                raise PlatformError(f"No vector layer {missing}.")
        else:
            layers = list_layers(conn)
    plan = OverviewPlan.from_settings(settings.tiles)
    tuning = TileTuning.from_settings(settings.tiles)
    built = []
    for layer in layers:
        if layer_ids or plan.wants(layer):
            built += await build_layer(conninfo, layer.id, tuning, plan, force=force or bool(layer_ids))
    return built


async def list_overviews_info(conninfo: str) -> list:


    async with await connect_async(conninfo, autocommit=True) as conn:
        return await list_overviews(conn)


def register(app: typer.Typer) -> None:
    """Attach the ``tiles`` sub-commands to the platform CLI."""
    tiles_app = typer.Typer(help="Vector and raster tiles: pre-warm the cache.", no_args_is_help=True)
    app.add_typer(tiles_app, name="tiles")
    ov_app = typer.Typer(help="Pre-generalised overview tables of big vector layers.",
                         no_args_is_help=True)
    tiles_app.add_typer(ov_app, name="overviews")

    @ov_app.command("build")
    def ov_build(
        layer: list[str] = typer.Option([], "--layer", help="Layer id (repeat); default: every layer "  # noqa: B008
                                        "over tile_overview_min_features."),
        force: bool = typer.Option(False, help="Build even under the size threshold."),
    ) -> None:
        """Build the overviews missing for the layers' current data versions."""

        s = settings()
        t0 = time.perf_counter()
        try:
            built = asyncio.run(build_overviews(s, conninfo(s), layer, force))
        except PlatformError as exc:
            console.print(f"[bold red]error:[/] {exc.detail}")
            raise typer.Exit(1) from None
        for o in built:
            console.print(f"  {o.layer_id} v{o.data_version} z{o.zoom}: {o.features:,} features, "
                          f"{o.vertices:,} vertices ({o.build_ms / 1000:.1f} s) -> tiles.{o.table_name}")
        console.print(f"[green]built[/] {len(built)} overview tables in "
                      f"{time.perf_counter() - t0:.1f}s")

    @ov_app.command("list")
    def ov_list() -> None:
        """The overview tables and what they hold."""

        for o in asyncio.run(list_overviews_info(conninfo(settings()))):
            print(f"{o.layer_id}\tv{o.data_version}\tz{o.zoom}\t{o.features}\t{o.vertices}\t"
                  f"{o.source_features}\ttiles.{o.table_name}")

    @ov_app.command("drop")
    def ov_drop(layer: str = typer.Option(..., "--layer", help="Layer id.")) -> None:
        """Drop every overview of a layer (the base table serves until they are rebuilt)."""

        n = asyncio.run(drop_overviews(conninfo(settings()), layer))
        console.print(f"dropped {n} overview tables of {layer}")

    @tiles_app.command("seed")
    def seed(
        layer: list[str] = typer.Option(..., "--layer", help="Layer id; repeat for a composite."),  # noqa: B008
        zooms: str = typer.Option("10-14", help="Zoom range, e.g. 10-14."),
        bbox: str = typer.Option(None, help="minlon,minlat,maxlon,maxlat (default: the layers' extent)."),
        tms: str = typer.Option("WebMercatorQuad", help="Tile matrix set id."),
        concurrency: int = typer.Option(4, min=1, max=32, help="Tiles rendered at once."),
    ) -> None:
        """Render tiles into the on-disk cache so first visitors get them warm."""

        s = settings()
        z = parse_zooms(zooms)
        box = parse_bbox(bbox) if bbox else None
        url = conninfo(s)
        t0 = time.perf_counter()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        try:
            with Progress(*columns, console=console) as progress:
                counts = asyncio.run(seed_tiles(s, url, layer, z, box, tms, concurrency, progress))
        except PlatformError as exc:
            console.print(f"[bold red]error:[/] {exc.detail}")
            raise typer.Exit(1) from None
        secs = time.perf_counter() - t0
        console.print(
            f"[green]seeded[/] {counts['tiles']} tiles in {secs:.1f}s: {counts['rendered']} rendered, "
            f"{counts['empty']} empty, {counts['skipped']} already cached; "
            f"{counts['bytes'] / 1e6:.1f} MB stored for access keys {counts['access_keys']}"
            + (f"; built {counts['overviews_built']} overview tables first"
               if counts["overviews_built"] else ""))
