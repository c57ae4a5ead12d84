"""A download link opens in place in GDAL, QGIS's reader and geopandas (#20 items 6-8).

GDAL reads a URL through ``/vsicurl/``: ``HEAD`` for the length, then byte ranges, and it
picks a driver by the URL's extension.  These tests drive the real clients - GDAL 3.6's
``ogrinfo`` (Debian's, what QGIS 3.22 runs on), geopandas/pyogrio (a newer GDAL) and httpx
for the HTTP details - against a live server whose app has :class:`HeadMiddleware` where
the platform registers it (just outside the compression).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pyogrio
import pytest
import uvicorn
from pyproj import Transformer
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

from features.export import IDLE_SECONDS, REUSE_SECONDS, ExportFiles
from gis_platform import gdal_env
from gis_platform.app import create_app
from gis_platform.config import Settings
from gis_platform.errors import ConfigurationError
from gis_platform.head import HeadMiddleware
from tests.conftest import free_port

from .conftest import assert_problem

OGRINFO = shutil.which("ogrinfo") or "/usr/bin/ogrinfo"
EPSG_5186 = "http://www.opengis.net/def/crs/EPSG/0/5186"
EPSG_4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"


@pytest.fixture(scope="module")
def base(feature_world, tmp_path_factory) -> Iterator[str]:
    """The platform over the feature world, with HEAD support registered where it belongs:
    around the compression, inside CORS, audit and logs (see gis_platform.head)."""
    settings = Settings(database_url=feature_world.db_url, data_dir=tmp_path_factory.mktemp("clients"),
                        _env_file=None, pool_timeout=3.0)
    app = create_app(settings, configure_logs=False)
    stack = app.user_middleware                   # outermost first
    if not any(m.cls is HeadMiddleware for m in stack):
        stack.insert(next(i for i, m in enumerate(stack) if m.cls is GZipMiddleware), Middleware(HeadMiddleware))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def _ogrinfo(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {"GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF", "PATH": "/usr/bin:/bin"}
    if token:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {token}"
    return subprocess.run([OGRINFO, "-ro", "-so", "-al", *args], capture_output=True, text=True,
                          timeout=240, env=env, check=False)


_READ_URL = """
import json, sys, geopandas as gpd
df = gpd.read_file(sys.argv[1])
print(json.dumps({"n": len(df), "epsg": df.crs.to_epsg() if df.crs else None,
                  "types": sorted(set(df.geom_type)), "places": sorted(set(df.place)),
                  "xy": df.geometry.get_coordinates().to_numpy().tolist()}))
"""


def _geopandas(url: str) -> dict:
    """``geopandas.read_file(url)`` as a user runs it: in a Python of its own (this process
    runs the platform, whose GDAL hardening refuses every URL)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GDAL_SKIP", *gdal_env.OPTIONS)}
    out = subprocess.run([sys.executable, "-c", _READ_URL, url], capture_output=True, text=True,
                         timeout=240, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _same_points(xy, expected: gpd.GeoDataFrame) -> None:
    got = np.sort(np.asarray(xy), axis=0)
    want = np.sort(expected.geometry.get_coordinates().to_numpy(), axis=0)
    np.testing.assert_allclose(got, want, atol=2e-6)


# --- HEAD ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,status", [
    ("/", 200), ("/collections", 200), ("/collections/bike_stations", 200),
    ("/collections/bike_stations/items?limit=3", 200), ("/collections/bike_stations/items/3", 200),
    ("/collections/bike_stations/items?f=html&limit=2", 200),
    ("/collections/bike_stations/tiles/WebMercatorQuad/tilejson.json", 200),
    ("/collections/bike_stations/tiles/WebMercatorQuad/12/3493/1586.mvt", 200),
    ("/collections/bike_stations/export.gpkg", 200), ("/collections/nosuch/items", 404),
])
def test_head_answers_with_the_headers_of_get_and_no_body(base, path, status):
    with httpx.Client(base_url=base, timeout=60) as c:
        got = c.get(path)
        head = c.head(path)
    assert got.status_code == head.status_code == status, (head.status_code, got.text[:300])
    assert head.content == b""
    for name in ("content-type", "content-length", "content-encoding", "etag", "content-disposition",
                 "content-crs", "cache-control", "content-security-policy", "accept-ranges"):
        if name == "content-length" and "/items" in path and "timeStamp" in got.text:
            # a feature page says when it was made: two requests may differ by a digit
            assert abs(int(head.headers[name]) - int(got.headers[name])) <= 3
            continue
        assert head.headers.get(name) == got.headers.get(name), name


def test_head_of_an_event_stream_ends_with_its_headers(base):
    with httpx.Client(base_url=base, timeout=10) as c:
        head = c.head("/collections/bike_stations/changes", headers={"Accept": "text/event-stream"})
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")
        assert c.get("/collections").status_code == 200          # the connection is free again


# --- GDAL 3.6 (what QGIS 3.22 on Debian 12 reads with) --------------------------------------------
@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "csv", "geojson"])
def test_gdal_opens_an_export_url_in_place_with_geometry_type_and_crs(base, fmt):
    url = f"{base}/collections/bike_stations/export.{fmt}"
    for name in (f"/vsicurl/{url}", url):        # as QGIS opens a URL, and as a plain argument
        out = _ogrinfo(name)
        assert out.returncode == 0, out.stderr[-1500:]
        assert out.stderr.strip() == "", out.stderr[-1500:]       # no warning either
        assert "Feature Count: 1540" in out.stdout and "Geometry: Point" in out.stdout
        assert 'ID["EPSG",4326]]' in out.stdout
        assert "Extent: (126.79" in out.stdout and "- (127.18" in out.stdout     # lon, lat order


def test_gdal_reads_a_restricted_export_with_the_key_and_nothing_without(base, feature_world):
    url = f"/vsicurl/{base}/collections/gas_mains/export.gpkg"
    out = _ogrinfo(url, token=feature_world.planner_token)
    assert out.returncode == 0 and "Feature Count: 1500" in out.stdout, out.stderr[-1500:]
    assert _ogrinfo(url).returncode != 0


def test_gdal_opens_a_filtered_csv_url_with_the_csv_prefix(base, bikes):
    out = _ogrinfo(f"CSV:/vsicurl/{base}/collections/bike_stations/export.csv?filter=numofunits%20%3E%2010")
    assert out.returncode == 0, out.stderr[-1500:]
    assert f"Feature Count: {int((bikes.numOfUnits > 10).sum())}" in out.stdout
    assert 'ID["EPSG",4326]]' in out.stdout and "Geometry: Point" in out.stdout


# --- geopandas --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "csv", "geojson"])
def test_geopandas_reads_an_export_url_by_name(base, bikes, fmt):
    got = _geopandas(f"{base}/collections/bike_stations/export.{fmt}")
    assert got["n"] == len(bikes) == 1540
    assert got["epsg"] == 4326 and got["types"] == ["Point"]
    assert got["places"] == sorted(set(bikes.place))
    _same_points(got["xy"], bikes)


# --- CSV: geometry, type and CRS in the file itself -------------------------------------------------
def test_csv_names_its_crs_and_type_and_stays_spreadsheet_readable(base, bikes, tmp_path):
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.get("/collections/bike_stations/export.csv", params={"filter": "place = '마포구'"})
        projected = c.get("/collections/bike_stations/export.csv", params={"crs": EPSG_5186})
        lat_lon = c.get("/collections/bike_stations/export.csv", params={"crs": EPSG_4326})
    assert r.status_code == projected.status_code == lat_lon.status_code == 200
    assert r.content.startswith("\ufeff".encode()) and b"\r\n" in r.content     # Excel: UTF-8, lines
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert list(rows[0])[-1] == "_WKT_EPSG_4326_POINT" and rows[0]["place"] == "마포구"
    assert rows[0]["_WKT_EPSG_4326_POINT"].startswith("POINT(126.")               # lon first
    mapo = bikes[bikes.place == "마포구"]
    assert len(rows) == len(mapo)
    # A downloaded file keeps its CRS (no sidecar to lose), in either axis order asked for.
    for name, resp in (("crs84.csv", r), ("latlon.csv", lat_lon)):
        (tmp_path / name).write_bytes(resp.content)
        df = pyogrio.read_dataframe(tmp_path / name)
        assert df.crs.to_epsg() == 4326
        _same_points(df.geometry.get_coordinates().to_numpy(), mapo if name == "crs84.csv" else bikes)
    (tmp_path / "utmk.csv").write_bytes(projected.content)
    df = pyogrio.read_dataframe(tmp_path / "utmk.csv")
    assert df.crs.to_epsg() == 5186
    x, y = Transformer.from_crs(4326, 5186, always_xy=True).transform(bikes.geometry.x, bikes.geometry.y)
    got = np.sort(df.geometry.get_coordinates().to_numpy(), axis=0)
    np.testing.assert_allclose(got, np.sort(np.column_stack([x, y]), axis=0), atol=0.01)   # easting first


# --- GeoPackage -----------------------------------------------------------------------------------
def test_geopackage_is_version_1_2_with_the_standard_epsg_4326_entry(base, tmp_path):
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.get("/collections/bike_stations/export.gpkg")
    path = tmp_path / "bikes.gpkg"
    path.write_bytes(r.content)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47      # 'GPKG'
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10200             # 1.2.0
        srs = db.execute("SELECT g.srs_id, s.organization, s.organization_coordsys_id FROM "
                         "gpkg_geometry_columns g JOIN gpkg_spatial_ref_sys s USING (srs_id)").fetchall()
    assert srs == [(4326, "EPSG", 4326)]
    out = subprocess.run([OGRINFO, "-ro", "-al", "-q", str(path)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr[-1500:]


# --- HEAD, Content-Length, Range ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "csv", "geojson"])
def test_exports_state_their_length_and_serve_byte_ranges(base, fmt):
    path = f"/collections/bike_stations/export.{fmt}"
    with httpx.Client(base_url=base, timeout=60, headers={"Accept-Encoding": "identity"}) as c:
        head = c.head(path)
        assert head.status_code == 200 and head.headers["accept-ranges"] == "bytes"
        size = int(head.headers["content-length"])
        assert head.headers["content-disposition"].endswith(f'.{fmt}"')
        whole = c.get(path)
        assert len(whole.content) == size and whole.headers["etag"] == head.headers["etag"]
        part = c.get(path, headers={"Range": "bytes=100-1123"})
        assert part.status_code == 206 and part.content == whole.content[100:1124]
        assert part.headers["content-range"] == f"bytes 100-1123/{size}"
        tail = c.get(path, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == whole.content[-10:]
        past = c.get(path, headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
        for bad in ("bytes=abc", "bytes=9-2", "lines=0-1"):
            assert 400 <= c.get(path, headers={"Range": bad}).status_code < 500, bad


def test_the_query_route_serves_ranges_too(base):
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.get("/collections/bike_stations/export", params={"format": "csv", "limit": "5"},
                  headers={"Range": "bytes=0-2"})
    assert r.status_code == 206 and r.content == "\ufeff".encode()


def test_head_and_ranges_of_a_restricted_export_reveal_nothing(base, feature_world):
    token = {"Authorization": f"Bearer {feature_world.planner_token}"}
    with httpx.Client(base_url=base, timeout=60, headers={"Accept-Encoding": "identity"}) as c:
        allowed = c.head("/collections/gas_mains/export.gpkg", headers=token)
        assert allowed.status_code == 200 and int(allowed.headers["content-length"]) > 10_000
        assert allowed.headers["cache-control"] == "private, no-cache"
        for path, params in (("/collections/gas_mains/export.gpkg", {}),
                             ("/collections/gas_mains/export", {"format": "csv"}),
                             ("/collections/survey_points/export.csv", {})):
            got = c.get(path, params=params)
            assert_problem(got, 404)
            for headers in ({}, {"Range": "bytes=0-99"}):
                head = c.head(path, params=params, headers=headers)
                assert head.status_code == 404 and head.content == b""
                assert head.headers["content-length"] == str(len(got.content))    # the problem's
                assert "content-range" not in head.headers and "accept-ranges" not in head.headers
            assert_problem(c.get(path, params=params, headers={"Range": "bytes=0-99"}), 404)


@pytest.mark.parametrize("path,params,status", [
    ("/collections/bike_stations/export.shp", {}, 404),
    ("/collections/bike_stations/export.csv", {"format": "gpkg"}, 400),
    ("/collections/bike_stations/export.gpkg", {"geometry": "wkt"}, 400),
    ("/collections/bike_stations/export.fgb", {"filter": "nosuch = 1"}, 400),
    ("/collections/bike_stations/export.csv", {"filter": "numofunits / 0 = 1"}, 400),
])
def test_bad_export_file_requests_are_clear_4xx(base, path, params, status):
    with httpx.Client(base_url=base, timeout=60) as c:
        body = assert_problem(c.get(path, params=params), status)
        assert c.head(path, params=params).status_code == status
    if status == 404:       # says what there is
        assert ".gpkg, .fgb, .csv or .geojson" in body["detail"]


# --- the files behind them ------------------------------------------------------------------------
def test_unused_export_files_are_deleted(tmp_path):
    old, fresh, keep = (tmp_path / n for n in ("old.gpkg", "fresh.gpkg", "keep.gpkg"))
    for p in (old, fresh, keep):
        p.write_bytes(b"x" * 10)
    stale = time.time_ns() - (IDLE_SECONDS + 5) * 10**9
    for p in (old, keep):
        os.utime(p, ns=(stale, stale))
    ExportFiles.sweep(str(tmp_path), keep=str(keep))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.gpkg", "keep.gpkg"]
    # what a killed worker left is swept when the next process first uses the directory
    ExportFiles().cached(tmp_path, "k", "gpkg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.gpkg"]


def test_exports_refuse_a_directory_others_can_read(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigurationError):
        ExportFiles().cached(shared, "k", "csv")


def test_an_export_file_is_built_once_reused_a_while_then_built_again(tmp_path):
    files, root = ExportFiles(), tmp_path / "exports"
    built = []

    async def build(path):
        built.append(path)
        await asyncio.sleep(0.05)                  # the others arrive while it is built
        await asyncio.to_thread(Path(path).write_text, str(len(built)))

    async def three_at_once():
        return await asyncio.gather(*(files.get(root, "k", "csv", build) for _ in range(3)))

    paths = asyncio.run(three_at_once())
    assert len(set(paths)) == 1 and len(built) == 1
    assert asyncio.run(three_at_once()) == paths and len(built) == 1
    old = time.time_ns() - (REUSE_SECONDS + 1) * 10**9
    os.utime(paths[0], ns=(old, old))
    assert asyncio.run(three_at_once()) == paths and len(built) == 2
    assert Path(paths[0]).read_text() == "2"
    assert os.listdir(root) == ["k.csv"]                 # no parts left
    assert root.stat().st_mode & 0o777 == 0o700


def test_a_reading_is_served_from_one_file_built_once(base):
    """HEAD builds the file; every range of the reading after it comes from that file."""
    path = "/collections/bike_stations/export.geojson?limit=50"
    with httpx.Client(base_url=base, timeout=60) as c:
        head = c.head(path)
        stamps = {c.get(path, headers={"Range": f"bytes={i * 10}-{i * 10 + 9}"}).headers["etag"]
                  for i in range(5)}
    assert stamps == {head.headers["etag"]}
