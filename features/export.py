"""Open-data export of a (filtered) feature query: GeoJSON, CSV, GeoPackage, FlatGeobuf.

Contracts:

* Memory stays constant whatever the layer size: rows come from a server-side cursor in
  batches of ``features_export_batch`` (default 5,000), inside one read-only transaction
  (one snapshot; ``statement_timeout`` raised to ``features_export_timeout_ms`` for it).
* A download link opens in place in GDAL, QGIS and geopandas.  They read a URL through
  GDAL's ``/vsicurl/``: ``HEAD`` for the length, then byte ``Range`` requests.  So an export
  is served from a file (:class:`ExportFiles`) - always for GeoPackage and FlatGeobuf, which
  need a seekable file to be written, and for GeoJSON and CSV when a request asks for the
  length (``HEAD``) or a range, or when the file is already there; a plain ``GET`` of GeoJSON
  or CSV otherwise streams as the rows are produced (a browser download starts at once).  A
  file is keyed by everything that changes its bytes - the database, the layer's data version
  and metadata, the format and the whole statement, which holds the caller's row filter - so
  every range of one reading comes from one file, callers who see different rows never share
  one, and a change to the data makes a new one.  A file is reused for :data:`REUSE_SECONDS`
  after it was built (a reading takes seconds; a source that changes with time alone, such as
  a view of today's road works, is never older than that), deleted after :data:`IDLE_SECONDS`
  unused, and the least recently used first beyond :data:`MAX_BYTES`.
* Licence and attribution travel with the data: GeoJSON foreign members, GeoPackage/
  FlatGeobuf layer metadata and description, and for every format the ``Link`` (rel=license)
  and ``X-Licence``/``X-Attribution`` response headers (CSV has nowhere else to put them).
* Geometry is written in the requested output CRS.  GPKG, FGB and CSV always store x =
  easting/longitude, the convention of GIS files (GDAL reads them in "traditional GIS order");
  GeoJSON follows the requested CRS's axis order.  CSV ``lonlat`` gives ``lon``/``lat``
  columns (CRS84 only).

CSV that GDAL (so QGIS and geopandas) opens with its geometry and CRS, without options.  GDAL's
CSV driver takes a column named ``WKT`` as geometry, but with no type and no CRS; the CRS of
GeoCSV lives in a ``.prj`` beside the file, which a downloaded file loses and a URL with a
query string cannot name.  The driver also reads a column whose name starts with ``_WKT`` as
geometry, the CRS from ``_EPSG_<code>`` in that name (axis order: x = easting) and the type
from ``_POINT``, ``_MULTIPOLYGON``...: GDAL's own convention for CSV with several typed
geometry columns (RFC 41; GDAL 3.6 and 3.12 read it alike).  So the geometry column is named
``_WKT_EPSG_<srid>_<TYPE>`` (``_WKT_EPSG_4326_POINT`` for CRS84): the file says what it holds
wherever it goes, and a spreadsheet shows an ordinary text column.  Attribute types are not
carried (GDAL reads them as text without a ``.csvt``); GeoPackage carries them.

GeoPackage is written as version 1.2 (``VERSION`` creation option): GDAL 3.6 and QGIS 3.22
(Debian 12) warn on the 1.4 that newer GDAL writes by default.  Longitude/latitude is stored
as the standard EPSG:4326 entry of ``gpkg_spatial_ref_sys`` (x = longitude, as GeoPackage
stores every CRS), not as a custom CRS84 one.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import psycopg
from psycopg import sql

from features.cql import kind_of
from features.query import ItemsQuery
from features.sql import feature_sql
from gis_platform.errors import ConfigurationError, InvalidParameter
from gis_platform.responses import dumps
from gis_platform.singleflight import SingleFlight
from layers.catalog import Layer

FORMATS = {
    "geojson": ("application/geo+json", "geojson"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
    "fgb": ("application/flatgeobuf", "fgb"),
}
ALIASES = {"json": "geojson", "geopackage": "gpkg", "flatgeobuf": "fgb"}
#: Formats written by GDAL into a file (they cannot be streamed as they are produced).
FILE_FORMATS = ("gpkg", "fgb")
_OGR_DRIVER = {"gpkg": "GPKG", "fgb": "FlatGeobuf"}

log = logging.getLogger("features.export")


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
    """Content-Disposition, Content-Crs, caching and licence headers of an export response."""
    layer = job.layer
    stamp = dt.date.today().isoformat()
    headers = {"Content-Disposition": f'attachment; filename="{layer.id}-{stamp}.{FORMATS[job.fmt][1]}"',
               "Content-Crs": job.query.crs.header,
               # A file response carries Last-Modified and ETag, with which a shared cache
               # could keep one caller's rows for another: revalidate, and non-public layers
               # only in the caller's own cache.
               "Cache-Control": "no-cache" if layer.access_level == "public" else "private, no-cache",
               "Vary": "Authorization, X-API-Key"}
    if layer.licence:
        headers["X-Licence"] = _header_safe(layer.licence)
        if layer.licence.startswith(("http://", "https://")):
            headers["Link"] = f'<{_header_safe(layer.licence)}>; rel="license"'
    if layer.attribution:
        headers["X-Attribution"] = _header_safe(layer.attribution)
    return headers


def _header_safe(text: str) -> str:
    # Header values are latin-1; percent-encode anything else (Hangul attributions...).
    return quote(text, safe=" !#$&'()*+,-./:;=?@[]_~")


def _statement(job: ExportJob, select: sql.Composable) -> tuple[sql.Composable, list]:
    """``SELECT <select> FROM layer WHERE ... ORDER BY ... [LIMIT n]`` and its parameters."""
    q = job.query
    where = q.where_frag()
    src = q.source
    stmt = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        select, src.sql, where.sql, q.order_sql())
    params = [*src.params, *where.params]
    if job.max_features is not None:
        stmt += sql.SQL(" LIMIT %s")
        params.append(job.max_features)
    return stmt, params


async def _batches(conn: psycopg.AsyncConnection, job: ExportJob,
                   select: sql.Composable) -> AsyncIterator[list[tuple]]:
    """Rows of :func:`_statement` from a server-side cursor, ``job.batch`` at a time."""
    stmt, params = _statement(job, select)
    async with conn.transaction():
        await conn.execute("SELECT set_config('statement_timeout', %s, true)", [str(int(job.timeout_ms))])
        async with conn.cursor(name="gis_export") as cur:
            cur.itersize = job.batch
            await cur.execute(stmt, params)
            while True:
                rows = await cur.fetchmany(job.batch)
                if not rows:
                    break
                yield rows


def _select(job: ExportJob) -> sql.Composable:
    """The select list of the job's format."""
    if job.fmt == "geojson":
        return feature_sql(job.query)
    if job.fmt == "csv":
        return sql.SQL(", ").join(_csv_columns(job)[0])
    return _file_select(job)


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
    async for rows in _batches(conn, job, _select(job)):
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


def wkt_column(job: ExportJob) -> str:
    """The name of the CSV geometry column that tells GDAL its CRS and type (see the module
    docstring): ``_WKT_EPSG_<srid>[_<TYPE>]``."""
    kind = _ogr_geometry_type(job.layer)
    return f"_WKT_EPSG_{int(job.query.crs.srid)}" + ("" if kind == "Unknown" else f"_{kind.upper()}")


def _csv_columns(job: ExportJob) -> tuple[list[sql.Composable], list[str]]:
    """The CSV's select expressions and header."""
    q = job.query
    names = q.selected_attributes()
    rows_ = q.rows
    with_id = rows_.id_kind != "none"
    cols: list[sql.Composable] = ([rows_.fid()] if with_id else []) + [sql.Identifier(n) for n in names]
    header = (["fid"] if with_id else []) + names
    if job.csv_geometry == "wkt":
        # x = easting whatever the CRS's axis order: what GDAL reads (traditional GIS order).
        cols.append(sql.SQL("ST_AsText({}, {})").format(rows_.geom_in(q.crs.srid),
                                                        sql.Literal(int(q.precision))))
        header.append(wkt_column(job))
    elif job.csv_geometry == "lonlat":
        # A representative point inside the feature (its centroid if that lies inside).
        pos = sql.SQL("ST_PointOnSurface({})").format(rows_.geom_in(4326))
        cols.append(sql.SQL("round(ST_X({p})::numeric, 7), round(ST_Y({p})::numeric, 7)").format(p=pos))
        header += ["lon", "lat"]
    return cols, header


async def csv_chunks(conn, job: ExportJob) -> AsyncIterator[bytes]:
    q = job.query
    names = q.selected_attributes()
    kinds = {a.name: kind_of(a.type) for a in q.layer.attributes}
    cols, header = _csv_columns(job)
    with_id = q.rows.id_kind != "none"
    text_cols = [i + with_id for i, n in enumerate(names) if kinds.get(n, "text") == "text"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    yield ("\ufeff" + buf.getvalue()).encode()    # BOM: Excel then reads Hangul as UTF-8
    async for rows in _batches(conn, job, sql.SQL(", ").join(cols)):
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
    # Longitude/latitude as the standard EPSG:4326 entry: both formats store x = longitude.
    crs = f"EPSG:{int(job.query.crs.srid)}"
    dataset_options = {"VERSION": "1.2"} if job.fmt == "gpkg" else {}
    pyogrio.write_arrow(reader, path, layer=layer.id, driver=_OGR_DRIVER[job.fmt], geometry_name=_GEOMETRY,
                        geometry_type=_ogr_geometry_type(layer), crs=crs, layer_metadata=meta,
                        dataset_options=dataset_options, layer_options=options)


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


def _file_select(job: ExportJob) -> sql.Composable:
    q = job.query
    rows_ = q.rows
    ids = [rows_.fid()] if rows_.id_kind != "none" else []
    return sql.SQL(", ").join([*ids, *[sql.Identifier(n) for n in q.selected_attributes()],
                               sql.SQL("ST_AsBinary({})").format(rows_.geom_in(q.crs.srid))])


async def file_export(conn, job: ExportJob, path: str) -> None:
    """Write the query to ``path`` (GPKG or FGB).

    pyogrio runs in a worker thread and pulls Arrow record batches from a generator; each
    batch is fetched from the server-side cursor on the event loop (``run_coroutine_threadsafe``),
    so only one batch is in memory at a time.
    """
    import pyarrow as pa

    schema = _arrow_schema(job, job.query.selected_attributes())
    loop = asyncio.get_running_loop()
    rows_iter = _batches(conn, job, _file_select(job))

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


async def write_export(conn, job: ExportJob, path: str) -> None:
    """Write the whole export to ``path``, in any format."""
    if job.fmt in FILE_FORMATS:
        await file_export(conn, job, path)
        return
    chunks = geojson_chunks if job.fmt == "geojson" else csv_chunks
    async with await anyio.open_file(path, "wb") as fh:
        async for chunk in chunks(conn, job):
            await fh.write(chunk)


# --- export files --------------------------------------------------------------------------
#: An export file is reused for this long after it was built ...
REUSE_SECONDS = 300
#: ... and deleted once unused for this long.
IDLE_SECONDS = 600
#: Beyond this many bytes of export files, the least recently used go first ...
MAX_BYTES = 4 << 30
#: ... except those used in the last minute (a client may be reading them).
_BUSY_SECONDS = 60


def export_key(job: ExportJob, database: str) -> str:
    """What names an export file: a digest of everything its bytes depend on.

    ``database`` tells apart servers of several databases in one process (their layers may
    share ids and data versions).  The statement holds the selection, the CRS, the order and
    the caller's row filter; its parameters hold the values.
    """
    layer = job.layer
    stmt, params = _statement(job, _select(job))
    parts = (database, layer.id, layer.version_tag, layer.title, layer.description, layer.licence,
             layer.attribution, layer.source, layer.geometry_type, job.fmt, job.csv_geometry,
             job.fgb_index, job.query.crs.uri, stmt.as_string(None), params)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def export_dir(settings) -> Path:
    """Where export files are kept: ``features_export_tmp_dir`` (default: the data directory)
    / ``gis-exports``, shared by the server's workers like the tile cache."""
    base = settings.features.export_tmp_dir
    return (Path(base).expanduser().resolve() if base else settings.resolved_data_dir()) / "gis-exports"


class ExportFiles:
    """Finished exports on disk, kept a while: every request of one reading (``HEAD``, then
    byte ranges) is served by one file, built once (concurrent requests for it wait for the
    one build).  The directory is private to the server's OS user and swept of old files (a
    stopped or killed worker's too) on first use and after every build."""

    def __init__(self) -> None:
        self._ready: set[str] = set()
        self._lock = threading.Lock()        # test servers run event loops in threads
        self._flight = SingleFlight()

    def _dir(self, root: Path) -> str:
        path = str(root)
        with self._lock:
            if path not in self._ready or not os.path.isdir(path):
                os.makedirs(path, mode=0o700, exist_ok=True)
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                    # Restricted rows must not land where another account can read or swap them.
                    log.error("export directory is not private to the server", extra={"path": path})
                    raise ConfigurationError("The server's export directory is not private to it; "
                                             "exports are unavailable until the operator fixes it.")
                self.sweep(path, keep="")
                self._ready.add(path)
        return path

    @staticmethod
    def touch(path: str) -> bool:
        """Whether ``path`` is there and young enough to reuse; if so, mark it used now (its
        access time: the modification time, which ``ETag`` and ``Last-Modified`` come from,
        stays the time it was built)."""
        try:
            built = os.stat(path).st_mtime_ns
            if time.time_ns() - built > REUSE_SECONDS * 10**9:
                return False
            os.utime(path, ns=(time.time_ns(), built))
            return True
        except FileNotFoundError:
            return False

    def cached(self, root: Path, key: str, fmt: str) -> str | None:
        """The file of ``key`` if it is there (marked used), else None."""
        path = os.path.join(self._dir(root), f"{key}.{FORMATS[fmt][1]}")
        return path if self.touch(path) else None

    async def get(self, root: Path, key: str, fmt: str,
                  build: Callable[[str], Awaitable[None]]) -> str:
        """The file of ``key``, made by ``build(path)`` if it is not there yet."""
        hit = self.cached(root, key, fmt)
        if hit is not None:
            return hit
        directory, ext = self._dir(root), FORMATS[fmt][1]
        path = os.path.join(directory, f"{key}.{ext}")

        async def make() -> str:
            if self.touch(path):        # made by the caller we waited for
                return path
            part = os.path.join(directory, f"{key}.{secrets.token_hex(4)}.part.{ext}")
            try:
                await build(part)
                os.replace(part, path)
            finally:
                _unlink(part)
            self.sweep(directory, keep=path)
            return path

        return await self._flight.run((directory, key), make)

    @staticmethod
    def sweep(directory: str, keep: str) -> None:
        """Delete files unused for :data:`IDLE_SECONDS`, then the least recently used beyond
        :data:`MAX_BYTES` (not ``keep``, nor any used in the last minute).  Used: read
        (access time, see :meth:`touch`) or written (a file being built)."""
        now = time.time()
        files = []
        for entry in os.scandir(directory):
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            used = max(st.st_atime, st.st_mtime)
            if now - used > IDLE_SECONDS and entry.path != keep:
                _unlink(entry.path)
            else:
                files.append((used, st.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        for used, size, path in sorted(files):
            if total <= MAX_BYTES:
                break
            if path != keep and now - used > _BUSY_SECONDS:
                _unlink(path)
                total -= size


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


FILES = ExportFiles()
