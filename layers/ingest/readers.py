"""Reading source files into GeoDataFrames (pyogrio, Arrow path) with their CRS and encoding.

Supported: GeoJSON (and TopoJSON), GeoPackage (each layer), zipped or loose Shapefile
(.cpg / .prj aware, CP949 detected when no .cpg says otherwise), FlatGeobuf, and CSV/TSV
with lon/lat, x/y or WKT columns.  Rasters are recognised here and handed to the raster path.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from gis_platform.errors import IngestError

VECTOR_EXT = {".geojson": "GeoJSON", ".json": "GeoJSON", ".topojson": "TopoJSON", ".gpkg": "GPKG",
              ".shp": "ESRI Shapefile", ".zip": "ZIP", ".fgb": "FlatGeobuf", ".csv": "CSV",
              ".tsv": "CSV", ".txt": "CSV"}
#: Rasters: GeoTIFF (and COG, BigTIFF) only, recognised by the TIFF header and opened with
#: the GTiff driver alone.  Other formats convert with ``gdal_translate -of COG``.
RASTER_EXT = {".tif", ".tiff", ".geotiff"}
#: Dataset *descriptions* that name other files or URLs (GDAL VRT, OGR VRT, GML schema
#: files): never opened from an upload (``gis_platform.gdal_env`` has the drivers off too).
REFUSED_EXT = {".vrt", ".xml", ".gfs", ".gml", ".ovf", ".aux"}

_MAGIC = [
    (b"SQLite format 3\x00", "GPKG"),
    (b"fgb\x03", "FlatGeobuf"),
    (b"PK\x03\x04", "ZIP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
]
#: The first bytes a member of a zipped upload must start with, by its extension.
_SHAPEFILE_MAGIC = b"\x00\x00\x27\x0a"

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "경도", "point_x", "xcoord", "x_coord")
LAT_NAMES = ("lat", "latitude", "y", "위도", "point_y", "ycoord", "y_coord")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")


@dataclass
class SourceData:
    """A vector source read into memory, before cleaning."""

    gdf: gpd.GeoDataFrame
    format: str
    name: str                     # suggested layer id base (file or layer name)
    encoding: str | None = None
    dropped_no_coords: int = 0    # CSV rows without usable coordinates (e.g. a total row)
    notes: list[str] = field(default_factory=list)


def sniff_format(path: Path) -> str:
    """The format from the file's first bytes, checked against its extension."""
    if path.is_dir():
        raise IngestError(f"{path.name} is a directory; give a file (zip a shapefile's parts).")
    ext = path.suffix.lower()
    with path.open("rb") as fh:
        head = fh.read(64)
    if not head:
        raise IngestError(f"{path.name} is empty (0 bytes).")
    by_magic = next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)
    if ext in REFUSED_EXT:
        raise IngestError(
            f"{path.name}: '{ext}' files describe other datasets (files or URLs) and are not "
            "accepted. Upload the data itself: GeoTIFF for rasters (gdal_translate -of COG), or "
            "GeoJSON, GeoPackage, zipped Shapefile, FlatGeobuf or CSV for vectors.")
    if by_magic == "TIFF":
        return "RASTER"
    if ext in RASTER_EXT:
        what = f"{by_magic} data" if by_magic else "no TIFF header"
        raise IngestError(f"{path.name} is named like a GeoTIFF but is not one ({what}). Rasters "
                          "are accepted as GeoTIFF only; convert with gdal_translate -of COG.")
    expected = VECTOR_EXT.get(ext)
    if expected is None:
        raise IngestError(
            f"Unsupported file type '{ext or path.name}'. Supported: GeoJSON, GeoPackage, zipped "
            "Shapefile, FlatGeobuf, CSV/TSV with coordinates or WKT, and GeoTIFF rasters.")
    if by_magic and by_magic != expected:
        raise IngestError(f"{path.name} has the extension '{ext}' but its content is {by_magic} "
                          f"data. Rename it to match its content.")
    if by_magic is None and expected in ("GPKG", "FlatGeobuf", "ZIP"):
        raise IngestError(f"{path.name} is not a valid {expected} file (its header is wrong: "
                          "the file is corrupt, truncated or of another type).")
    if expected in ("GeoJSON", "TopoJSON"):
        _check_json_start(path.name, head)
    if expected == "ESRI Shapefile" and not head.startswith(_SHAPEFILE_MAGIC):
        raise IngestError(f"{path.name} is not a valid shapefile (its header is wrong).")
    return expected


def _check_json_start(name: str, head: bytes) -> None:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith((b"{", b"[")):
        raise IngestError(f"{name} is not JSON (it does not start with '{{').")


def list_layers(path: Path) -> list[str]:
    """Layer names inside a multi-layer source (GeoPackage); [] for single-layer files."""
    try:
        return [str(name) for name, _ in pyogrio.list_layers(path)]
    except (DataSourceError, DataLayerError) as exc:
        raise IngestError(f"Cannot open {path.name}: {_gdal_message(exc)}") from exc


def _gdal_message(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Do not echo absolute server paths back to a client.
    return re.sub(r"(/[^\s:'\"]+)+/", "", msg)[:300]


@dataclass(frozen=True)
class ZipLimits:
    """What a zipped upload may expand to, checked from its directory before any member is
    decompressed (a zip bomb of a few hundred KB can expand to gigabytes)."""

    max_uncompressed_bytes: int = 2 * 1024**3
    max_ratio: float = 250.0          # uncompressed / compressed, per member over 1 MB
    max_members: int = 10_000


def read_vector(path: Path, *, layer: str | None = None, encoding: str | None = None,
                fmt: str | None = None, zip_limits: ZipLimits | None = None) -> SourceData:
    """Read one vector layer of ``path`` into a GeoDataFrame."""
    fmt = fmt or sniff_format(path)
    if fmt == "CSV":
        return read_csv(path, encoding=encoding)
    target = str(path)
    name = path.stem
    notes: list[str] = []
    if fmt == "ZIP":
        target, name, enc_guess = _zip_target(path, zip_limits or ZipLimits())
        encoding = encoding or enc_guess
    elif fmt == "ESRI Shapefile":
        encoding = encoding or _shapefile_encoding(path)
    if fmt == "GPKG":
        layers = list_layers(path)
        if layer is None:
            if len(layers) > 1:
                raise IngestError(
                    f"{path.name} holds {len(layers)} layers ({', '.join(layers)}): name one, or "
                    "ingest each (the CLI's --all-layers does).")
            layer = layers[0] if layers else None
        elif layer not in layers:
            raise IngestError(f"{path.name} has no layer '{layer}'; it has: {', '.join(layers)}.")
        name = layer or name
    if encoding and encoding.lower() in ("cp949", "euc-kr", "euckr", "ms949", "uhc"):
        encoding = "CP949"
    try:
        gdf = pyogrio.read_dataframe(target, layer=layer, encoding=encoding, use_arrow=True,
                                     on_invalid="ignore")
    except (DataSourceError, DataLayerError, RuntimeError, ValueError) as exc:
        raise IngestError(f"Cannot read {path.name}: {_gdal_message(exc)}. The file may be "
                          "corrupt or truncated.") from exc
    except Exception as exc:  # GDAL raises many kinds; none may become a 500
        raise IngestError(f"Cannot read {path.name}: {_gdal_message(exc)}") from exc
    if encoding:
        notes.append(f"attributes decoded as {encoding}")
    if fmt in ("GeoJSON", "TopoJSON"):
        gdf.attrs["lonlat_default"] = True
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise IngestError(f"{path.name} has no geometry column.")
    return SourceData(gdf=gdf, format=fmt, name=name, encoding=encoding, notes=notes)


def _check_zip_directory(zf: zipfile.ZipFile, name: str, limits: ZipLimits) -> None:
    """Refuse a zip bomb from its directory alone: member count, total and per-member ratio."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise IngestError(f"{name} holds {len(infos):,} members; at most {limits.max_members:,} "
                          "are accepted.")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise IngestError(
                f"{name}: member {info.filename[:80]!r} would expand "
                f"{info.file_size / max(info.compress_size, 1):,.0f} times "
                f"(at most {limits.max_ratio:,.0f} is accepted); this looks like a zip bomb.")
        member = info.filename.replace("\\", "/")
        if member.startswith("/") or ".." in member.split("/"):
            raise IngestError(f"{name}: member {info.filename[:80]!r} has an unsafe path.")
    if total > limits.max_uncompressed_bytes:
        raise IngestError(f"{name} would expand to {total / 1024**2:,.0f} MB; at most "
                          f"{limits.max_uncompressed_bytes / 1024**2:,.0f} MB uncompressed is "
                          "accepted.")


def _check_member(zf: zipfile.ZipFile, member: str, zip_name: str) -> None:
    """The member's content must be what its extension says (no XML posing as GeoJSON)."""
    with zf.open(member) as fh:
        head = fh.read(64)
    ext = Path(member).suffix.lower()
    label = f"{zip_name}: {member[:80]}"
    if ext in (".geojson", ".json"):
        _check_json_start(label, head)
    elif ext == ".shp" and not head.startswith(_SHAPEFILE_MAGIC):
        raise IngestError(f"{label} is not a valid shapefile (its header is wrong).")
    elif ext == ".gpkg" and not head.startswith(b"SQLite format 3\x00"):
        raise IngestError(f"{label} is not a valid GeoPackage (its header is wrong).")
    elif ext == ".fgb" and not head.startswith(b"fgb\x03"):
        raise IngestError(f"{label} is not a valid FlatGeobuf file (its header is wrong).")


def _zip_target(path: Path, limits: ZipLimits) -> tuple[str, str, str | None]:
    """The GDAL /vsizip/ path of the shapefile (or other vector file) inside a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            _check_zip_directory(zf, path.name, limits)
            names = [n for n in zf.namelist() if not n.startswith("__MACOSX") and not n.endswith("/")]
            bad = zf.testzip()
            if bad:
                raise IngestError(f"{path.name} is corrupt: member {bad} fails its checksum.")
            shps = [n for n in names if n.lower().endswith(".shp")]
            others = [n for n in names if Path(n).suffix.lower() in
                      (".gpkg", ".geojson", ".json", ".fgb")]
            if len(shps) > 1:
                raise IngestError(f"{path.name} holds several shapefiles ({', '.join(shps)}); "
                                  "zip one per upload.")
            if shps:
                shp = shps[0]
                stem = shp[:-4]
                parts = {Path(n).suffix.lower(): n for n in names if n[:-4] == stem or
                         n.lower().startswith(stem.lower() + ".")}
                missing = [e for e in (".shx", ".dbf") if e not in parts]
                if missing:
                    raise IngestError(f"The shapefile in {path.name} lacks its {' and '.join(missing)} "
                                      "part(s); zip all of .shp, .shx, .dbf (and .prj, .cpg).")
                _check_member(zf, shp, path.name)
                enc = None
                if ".cpg" in parts:
                    with zf.open(parts[".cpg"]) as fh:
                        enc = fh.read(64).decode("ascii", "ignore").strip() or None
                elif ".dbf" in parts:
                    with zf.open(parts[".dbf"]) as fh:   # the head only, never the whole member
                        enc = _guess_dbf_encoding(fh.read(1 << 20))
                return f"/vsizip/{path}/{shp}", Path(shp).stem, _norm_cpg(enc)
            if others:
                _check_member(zf, others[0], path.name)
                return f"/vsizip/{path}/{others[0]}", Path(others[0]).stem, None
    except zipfile.BadZipFile as exc:
        raise IngestError(f"{path.name} is not a readable ZIP archive (corrupt or truncated).") from exc
    raise IngestError(f"{path.name} contains no shapefile (.shp) or other vector file.")


def _norm_cpg(enc: str | None) -> str | None:
    if not enc:
        return None
    e = enc.strip().upper().replace("_", "-")
    return {"949": "CP949", "EUC-KR": "CP949", "EUCKR": "CP949", "UTF8": "UTF-8",
            "65001": "UTF-8", "ANSI 1252": "CP1252", "1252": "CP1252"}.get(e, e)


def _shapefile_encoding(path: Path) -> str | None:
    cpg = path.with_suffix(".cpg")
    if not cpg.exists():
        cpg = path.with_suffix(".CPG")
    if cpg.exists():
        return _norm_cpg(cpg.read_text("ascii", "ignore"))
    dbf = path.with_suffix(".dbf")
    if not dbf.exists():
        dbf = path.with_suffix(".DBF")
    if dbf.exists():
        with dbf.open("rb") as fh:
            return _guess_dbf_encoding(fh.read(1 << 20))
    return None


def _guess_dbf_encoding(data: bytes) -> str | None:
    """Korean DBFs without a .cpg are almost always CP949: detect by decoding the records.

    UTF-8 text decodes as UTF-8; CP949 text does not, but decodes as CP949.  Pure ASCII
    needs no decision.  (GDAL would otherwise assume ISO-8859-1 and garble Hangul.)
    """
    if len(data) < 32:
        return None
    header_len = int.from_bytes(data[8:10], "little")
    body = data[header_len:]
    if not any(b >= 0x80 for b in body):
        return None
    try:
        body.decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        # A record cut at the 1 MiB boundary may end mid-character: trim a little.
        body[: max(0, len(body) - 4)].decode("cp949")
        return "CP949"
    except UnicodeDecodeError:
        return None


# --- CSV / TSV ---------------------------------------------------------------------------
def _read_text(path: Path, encoding: str | None) -> tuple[str, str]:
    raw = path.read_bytes()
    if encoding:
        try:
            return raw.decode(_norm_cpg(encoding) or encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise IngestError(f"{path.name} is not valid {encoding} text: {exc}") from exc
    for enc in ("utf-8-sig", "cp949"):
        try:
            return raw.decode(enc), ("UTF-8" if enc == "utf-8-sig" else "CP949")
        except UnicodeDecodeError:
            continue
    raise IngestError(f"{path.name} is neither UTF-8 nor CP949 text; give its encoding.")


def _find_col(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def read_csv(path: Path, *, encoding: str | None = None, x: str | None = None,
             y: str | None = None, wkt: str | None = None) -> SourceData:
    """A CSV/TSV with lon/lat (or x/y) columns or a WKT column.

    Rows whose coordinates are missing or not numbers are dropped and counted (Korean open
    data often ends with a 합계 'total' row).  The CRS is not known here: lon/lat-looking
    columns default to WGS84 later, projected x/y need the user to name the CRS.
    """
    text, enc = _read_text(path, encoding)
    sample = text[:20000]
    if path.suffix.lower() == ".tsv":
        delim = "\t"
    else:
        try:
            delim = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",\t;|").delimiter
        except csv.Error:
            delim = ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=delim, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise IngestError(f"{path.name} is not a readable CSV: {str(exc).splitlines()[0]}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    cols = list(df.columns)
    wkt_col = wkt or _find_col(cols, WKT_NAMES)
    x_col = x or _find_col(cols, LON_NAMES)
    y_col = y or _find_col(cols, LAT_NAMES)
    notes = [f"text decoded as {enc}"]
    if x_col and y_col:
        xs = pd.to_numeric(df[x_col], errors="coerce")
        ys = pd.to_numeric(df[y_col], errors="coerce")
        ok = xs.notna() & ys.notna() & np.isfinite(xs) & np.isfinite(ys)
        dropped = int((~ok).sum())
        df = df.loc[ok].drop(columns=[x_col, y_col])
        geom = shapely.points(xs[ok].to_numpy(), ys[ok].to_numpy())
        notes.append(f"points from columns {x_col}/{y_col}")
        gdf = gpd.GeoDataFrame(df.reset_index(drop=True), geometry=list(geom), crs=None)
        gdf.attrs["xy_columns"] = (x_col, y_col)
    elif wkt_col:
        vals = df[wkt_col].astype("string")
        geoms = shapely.from_wkt(vals.fillna("").to_numpy(dtype=object), on_invalid="ignore")
        ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        dropped = int((~ok).sum())
        df = df.loc[ok].drop(columns=[wkt_col])
        gdf = gpd.GeoDataFrame(df.reset_index(drop=True), geometry=list(geoms[ok]), crs=None)
        gdf.attrs["lonlat_default"] = True  # only taken when the coordinates look like lon/lat
        notes.append(f"geometry from WKT column {wkt_col}")
    else:
        raise IngestError(
            f"{path.name} has no coordinate columns: expected lon/lat (longitude/latitude, x/y) "
            f"or a WKT column; it has {', '.join(cols[:20])}.")
    return SourceData(gdf=gdf, format="CSV", name=path.stem, encoding=enc,
                      dropped_no_coords=dropped, notes=notes)
