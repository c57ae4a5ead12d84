"""Open-data export of a (filtered) feature query: GeoJSON, CSV, GeoPackage, FlatGeobuf.

Contracts:

* Memory stays constant whatever the layer size: rows come from a server-side cursor in
  batches of ``features_export_batch`` (default 5,000), inside one read-only transaction
  (one snapshot; ``statement_timeout`` raised to ``features_export_timeout_ms`` for it).
* GeoJSON and CSV stream straight to the client as they are produced.  GeoPackage and
  FlatGeobuf need a seekable file: batches are appended with pyogrio (Arrow API) to a temp
  file, which is then streamed and deleted.
* Licence and attribution travel with the data: GeoJSON foreign members, GeoPackage/
  FlatGeobuf layer metadata and description, and for every format the ``Link`` (rel=license)
  and ``X-Licence``/``X-Attribution`` response headers (CSV has nowhere else to put them).
* Geometry is written in the requested output CRS; GPKG/FGB always store x = easting (the
  formats' own convention), CSV ``lonlat`` gives ``lon``/``lat`` columns (CRS84 only).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from features.cql import kind_of
from features.query import ItemsQuery
from features.sql import feature_sql
from gis_platform.errors import InvalidParameter
from gis_platform.responses import dumps
from layers.catalog import Layer

FORMATS = {
    "geojson": ("application/geo+json", "geojson"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
    "fgb": ("application/flatgeobuf", "fgb"),
}
ALIASES = {"json": "geojson", "geopackage": "gpkg", "flatgeobuf": "fgb"}
_OGR_DRIVER = {"gpkg": "GPKG", "fgb": "FlatGeobuf"}


def parse_format(value: str | None) -> str:
    fmt = (value or "geojson").strip().lower()
    fmt = ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise InvalidParameter(f"Unknown export format {fmt[:20]!r}: use geojson, csv, gpkg or fgb.",
                               parameter="format")
    return fmt


@dataclass
class ExportJob:
    """What to export: the query, the format and the CSV geometry style."""

    query: ItemsQuery
    fmt: str
    csv_geometry: str = "wkt"      # wkt | lonlat | none
    batch: int = 5_000
    timeout_ms: int = 600_000
    max_features: int | None = None
    fgb_index: bool = False

    @property
    def layer(self) -> Layer:
        return self.query.layer


def export_headers(job: ExportJob) -> dict[str, str]:
    """Content-Disposition, Content-Crs and licence headers of an export response."""
    layer = job.layer
    stamp = dt.date.today().isoformat()
    headers = {"Content-Disposition": f'attachment; filename="{layer.id}-{stamp}.{FORMATS[job.fmt][1]}"',
               "Content-Crs": job.query.crs.header}
    if layer.licence:
        headers["X-Licence"] = _header_safe(layer.licence)
        if layer.licence.startswith(("http://", "https://")):
            headers["Link"] = f'<{_header_safe(layer.licence)}>; rel="license"'
    if layer.attribution:
        headers["X-Attribution"] = _header_safe(layer.attribution)
    return headers


def _header_safe(text: str) -> str:
    # Header values are latin-1; percent-encode anything else (Hangul attributions...).
    from urllib.parse import quote

    return quote(text, safe=" !#$&'()*+,-./:;=?@[]_~")


def _limit_sql(job: ExportJob) -> tuple[sql.Composable, list]:
    if job.max_features is None:
        return sql.SQL(""), []
    return sql.SQL(" LIMIT %s"), [job.max_features]


async def _batches(conn: psycopg.AsyncConnection, job: ExportJob, select: sql.Composable,
                   select_params: list) -> AsyncIterator[list[tuple]]:
    """Rows of ``SELECT <select> FROM layer WHERE ... ORDER BY ...`` from a server-side cursor."""
    q = job.query
    where = q.where_frag()
    limit, limit_params = _limit_sql(job)
    src = q.source
    stmt = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        select, src.sql, where.sql, q.order_sql()) + limit
    async with conn.transaction():
        await conn.execute("SELECT set_config('statement_timeout', %s, true)", [str(int(job.timeout_ms))])
        async with conn.cursor(name="gis_export") as cur:
            cur.itersize = job.batch
            await cur.execute(stmt, [*select_params, *src.params, *where.params, *limit_params])
            while True:
                rows = await cur.fetchmany(job.batch)
                if not rows:
                    break
                yield rows


# --- GeoJSON -------------------------------------------------------------------------------
async def geojson_chunks(conn, job: ExportJob) -> AsyncIterator[bytes]:
    layer = job.layer
    head: dict[str, Any] = {"type": "FeatureCollection", "name": layer.id, "title": layer.title}
    if layer.licence:
        head["licence"] = layer.licence
    if layer.attribution:
        head["attribution"] = layer.attribution
    if job.query.crs.srid != 4326 or job.query.crs.north_first:
        head["crs"] = {"type": "name", "properties": {"name": job.query.crs.uri}}
    yield dumps(head)[:-1] + b',"features":['
    first = True
    async for rows in _batches(conn, job, feature_sql(job.query), []):
        text = ",".join(r[0] for r in rows)
        yield (text if first else "," + text).encode()
        first = False
    yield b"]}"


# --- CSV -----------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell a spreadsheet will not run: one starting like a formula (``= + - @``, tab,
    carriage return) gets a leading apostrophe (OWASP's CSV injection advice).  Numbers and
    everything else pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


async def csv_chunks(conn, job: ExportJob) -> AsyncIterator[bytes]:
    q = job.query
    names = q.selected_attributes()
    kinds = {a.name: kind_of(a.type) for a in q.layer.attributes}
    rows_ = q.rows
    with_id = rows_.id_kind != "none"
    cols: list[sql.Composable] = ([rows_.fid()] if with_id else []) + [sql.Identifier(n) for n in names]
    header = (["fid"] if with_id else []) + names
    text_cols = [i + with_id for i, n in enumerate(names) if kinds.get(n, "text") == "text"]
    geom = rows_.geom_in(q.crs.srid)
    if job.csv_geometry == "wkt":
        flip = sql.SQL("ST_FlipCoordinates({})").format(geom) if q.crs.north_first else geom
        cols.append(sql.SQL("ST_AsText({}, {})").format(flip, sql.Literal(int(q.precision))))
        header.append("wkt")
    elif job.csv_geometry == "lonlat":
        # A representative point inside the feature (its centroid if that lies inside).
        pos = sql.SQL("ST_PointOnSurface({})").format(rows_.geom_in(4326))
        cols.append(sql.SQL("round(ST_X({p})::numeric, 7), round(ST_Y({p})::numeric, 7)").format(p=pos))
        header += ["lon", "lat"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    yield ("\ufeff" + buf.getvalue()).encode()    # BOM: Excel then reads Hangul as UTF-8
    async for rows in _batches(conn, job, sql.SQL(", ").join(cols), []):
        buf.seek(0)
        buf.truncate()
        if text_cols:
            rows = [list(r) for r in rows]
            for r in rows:
                for i in text_cols:
                    r[i] = spreadsheet_safe(r[i])
        writer.writerows(rows)
        yield buf.getvalue().encode()


# --- GeoPackage / FlatGeobuf ---------------------------------------------------------------
def _arrow_type(pg_type: str):
    import pyarrow as pa

    kind = kind_of(pg_type)
    if kind == "number":
        return pa.int64() if pg_type in ("bigint", "integer", "smallint") else pa.float64()
    if kind == "timestamp":
        aware = pg_type in ("timestamptz", "timestamp with time zone")
        return pa.timestamp("us", tz="UTC" if aware else None)
    return {"bool": pa.bool_(), "date": pa.date32()}.get(kind, pa.string())


_GEOMETRY = "__geometry"     # the Arrow column of the geometry (never a property's name)


def _arrow_schema(job: ExportJob, names: list[str]):
    import pyarrow as pa

    kind = job.layer.rows.id_kind
    fields = [pa.field("fid_source", pa.int64() if kind == "int" else pa.string())] if kind != "none" else []
    fields += [pa.field(n, _arrow_type(job.layer.attribute(n).type)) for n in names]
    fields.append(pa.field(_GEOMETRY, pa.binary(), metadata={"ARROW:extension:name": "geoarrow.wkb"}))
    return pa.schema(fields)


def _record_batch(schema, rows: list[tuple]):
    import pyarrow as pa

    columns = list(zip(*rows))
    return pa.RecordBatch.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema)],
                                      schema=schema)


def _write_stream(path: str, job: ExportJob, reader) -> None:
    """One pyogrio call consuming the whole Arrow stream (FlatGeobuf cannot be appended to)."""
    import pyogrio

    layer = job.layer
    meta = {k: v for k, v in (("licence", layer.licence), ("attribution", layer.attribution),
                              ("title", layer.title), ("source", layer.source)) if v}
    if job.fmt == "gpkg":
        # The geometry column: "geom" (GDAL's default), unless a property already has a name.
        taken = {n.lower() for n in job.query.selected_attributes()}
        geom = next(n for n in ("geom", "geometry", "the_geom", "geom_") if n not in taken)
        options = {"IDENTIFIER": layer.title, "DESCRIPTION": _description(layer),
                   "GEOMETRY_NAME": geom}
    else:
        # GDAL's FlatGeobuf writer keeps every feature's extent in memory to build the packed
        # R-tree; without it memory stays constant (the default; setting features_export_fgb_index).
        index = "YES" if job.fgb_index else "NO"
        options = {"TITLE": layer.title, "DESCRIPTION": _description(layer), "SPATIAL_INDEX": index}
    crs = "OGC:CRS84" if job.query.crs.srid == 4326 else f"EPSG:{job.query.crs.srid}"
    pyogrio.write_arrow(reader, path, layer=layer.id, driver=_OGR_DRIVER[job.fmt], geometry_name=_GEOMETRY,
                        geometry_type=_ogr_geometry_type(layer), crs=crs, layer_metadata=meta,
                        layer_options=options)


def _description(layer: Layer) -> str:
    parts = [layer.description or layer.title]
    if layer.licence:
        parts.append(f"Licence: {layer.licence}")
    if layer.attribution:
        parts.append(f"Attribution: {layer.attribution}")
    return " | ".join(parts)


def _ogr_geometry_type(layer: Layer) -> str:
    base = layer.geometry_type or "Unknown"
    return base if base in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                            "MultiPolygon") else "Unknown"


async def file_export(conn, job: ExportJob, path: str) -> None:
    """Write the query to ``path`` (GPKG or FGB).

    pyogrio runs in a worker thread and pulls Arrow record batches from a generator; each
    batch is fetched from the server-side cursor on the event loop (``run_coroutine_threadsafe``),
    so only one batch is in memory at a time.
    """
    import asyncio

    import pyarrow as pa

    q = job.query
    names = q.selected_attributes()
    rows_ = q.rows
    geom = rows_.geom_in(q.crs.srid)
    ids = [rows_.fid()] if rows_.id_kind != "none" else []
    select = sql.SQL(", ").join([*ids, *[sql.Identifier(n) for n in names],
                                 sql.SQL("ST_AsBinary({})").format(geom)])
    schema = _arrow_schema(job, names)
    loop = asyncio.get_running_loop()
    rows_iter = _batches(conn, job, select, [])

    def batches():
        while True:
            try:
                rows = asyncio.run_coroutine_threadsafe(rows_iter.__anext__(), loop).result()
            except StopAsyncIteration:
                return
            yield _record_batch(schema, rows)

    try:
        reader = pa.RecordBatchReader.from_batches(schema, batches())
        await asyncio.to_thread(_write_stream, path, job, reader)
    finally:
        await rows_iter.aclose()


def temp_export_path(settings, fmt: str) -> tuple[str, str]:
    """A private temp directory (under ``features_export_tmp_dir`` if set) and a file in it."""
    base = settings.features.export_tmp_dir
    if base:
        os.makedirs(base, exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix="gis-export-", dir=base)
    return tmpdir, os.path.join(tmpdir, f"export.{FORMATS[fmt][1]}")


def stream_file(tmpdir: str, path: str, chunk: int = 1 << 20):
    """Yield a file's bytes, then delete its temp directory (also on client disconnect)."""
    try:
        with open(path, "rb") as fh:
            while True:
                data = fh.read(chunk)
                if not data:
                    break
                yield data
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
