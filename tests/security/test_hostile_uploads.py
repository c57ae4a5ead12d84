"""Hostile uploads: every file of the corpus gets a clear 4xx and leaves the database, the
catalog and the raster folder exactly as they were; GDAL never reads another file or URL.

The corpus (:func:`corpus`) holds the classes an attacker (or a careless planner) sends:
GDAL VRT / OGR VRT descriptions pointing at server files or URLs (under their own name and
disguised as .tif / .geojson / inside a zip), zip bombs and unsafe member paths, content
that is not what its name says, a feature with millions of vertices, truncated and empty
files.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import zipfile

import psycopg
import pytest

from .conftest import SecurityWorld, assert_no_internals

SECRET_FILE = "/etc/passwd"


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server API
        _CountingHandler.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"II*\x00" + b"\x00" * 64)

    do_HEAD = do_GET

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def url_trap():
    """A local HTTP server that records every request: SSRF through GDAL would hit it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _CountingHandler.hits
    server.shutdown()


def raster_vrt_raw(source: str) -> bytes:
    return (f'<VRTDataset rasterXSize="64" rasterYSize="16"><SRS>EPSG:4326</SRS>'
            f'<GeoTransform>126.9,0.001,0,37.6,0,-0.001</GeoTransform>'
            f'<VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">'
            f'<SourceFilename relativetoVRT="0">{source}</SourceFilename><ImageOffset>0</ImageOffset>'
            f'<PixelOffset>1</PixelOffset><LineOffset>64</LineOffset></VRTRasterBand></VRTDataset>').encode()


def raster_vrt_simple(source: str) -> bytes:
    return (f'<VRTDataset rasterXSize="16" rasterYSize="16"><SRS>EPSG:4326</SRS>'
            f'<GeoTransform>126.9,0.001,0,37.6,0,-0.001</GeoTransform>'
            f'<VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
            f'</SimpleSource></VRTRasterBand></VRTDataset>').encode()


def ogr_vrt(source: str) -> bytes:
    return (f'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>{source}</SrcDataSource>'
            '<GeometryType>wkbPoint</GeometryType><GeometryField encoding="PointFromColumns" '
            'x="field_1" y="field_2"/></OGRVRTLayer></OGRVRTDataSource>').encode()


def zipped(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def big_line_geojson(vertices: int) -> bytes:
    coords = [[126.9 + i * 1e-7, 37.5 + (i % 2) * 1e-6] for i in range(vertices)]
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"a": 1},
         "geometry": {"type": "LineString", "coordinates": coords}}]}).encode()


def corpus(trap: str) -> dict[str, tuple[str, bytes]]:
    """name -> (file name, bytes)."""
    shp_header = b"\x00\x00\x27\x0a" + b"\x00" * 96
    return {
        "raster VRT reading a server file": ("dem.vrt", raster_vrt_raw(SECRET_FILE)),
        "raster VRT saved as .tif": ("dem.tif", raster_vrt_raw(SECRET_FILE)),
        "raster VRT with a /vsicurl/ source, as .tiff": (
            "remote.tiff", raster_vrt_simple(f"/vsicurl/{trap}/a.tif")),
        "raster VRT with a plain URL source, as .tif": ("remote2.tif", raster_vrt_simple(f"{trap}/b.tif")),
        "OGR VRT reading a server file, as .geojson": ("points.geojson", ogr_vrt(f"CSV:{SECRET_FILE}")),
        "OGR VRT as .vrt": ("points.vrt", ogr_vrt(f"CSV:{SECRET_FILE}")),
        "OGR VRT inside a zip as .json": ("data.zip", zipped({"data.json": ogr_vrt(f"CSV:{SECRET_FILE}")})),
        "GML with a .gfs schema in a zip": ("gml.zip", zipped({"a.gml": b"<gml/>", "a.gfs": b"<GMLFeatureClassList/>"})),
        "XML posing as a shapefile in a zip": ("shp.zip", zipped({
            "a.shp": ogr_vrt(SECRET_FILE), "a.shx": shp_header, "a.dbf": b"\x03" + b"\x00" * 40})),
        "zip bomb (one member expanding 1000x)": ("bomb.zip", zipped({
            "a.shp": shp_header + b"\x00" * (64 << 20), "a.shx": shp_header, "a.dbf": b"\x03" * 40})),
        "zip member with an unsafe path": ("slip.zip", zipped({
            "../../evil.shp": shp_header, "../../evil.shx": shp_header, "../../evil.dbf": b"\x03" * 40})),
        "GeoTIFF header then garbage": ("garbage.tif", b"II*\x00" + b"\xff" * 200),
        "a GeoTIFF named .geojson": ("tiff.geojson", b"II*\x00" + b"\x00" * 200),
        "truncated GeoPackage": ("cut.gpkg", b"SQLite format 3\x00" + b"\x00" * 50),
        "garbage FlatGeobuf": ("bad.fgb", b"fgb\x03garbage" * 10),
        "empty file": ("empty.geojson", b""),
        "an XML file": ("layer.xml", b"<root/>"),
        "HTML with script as CSV": ("page.csv", b"<html><script>alert(1)</script></html>\n"),
        "deeply nested JSON": ("deep.geojson", b"[" * 200_000 + b"]" * 200_000),
        "a feature with 260,000 vertices": ("huge.geojson", big_line_geojson(260_000)),
    }


def snapshot(world: SecurityWorld) -> tuple:
    with psycopg.connect(world.db_url) as conn:
        layers = conn.execute("SELECT id, data_version, feature_count FROM gis_meta.layers "
                              "ORDER BY id").fetchall()
        tables = conn.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN "
                              "('gis_data', 'tiles') ORDER BY 1, 2").fetchall()
    rasters = sorted(p.name for p in (world.server.settings.resolved_data_dir() / "rasters").glob("*"))
    return layers, tables, rasters


def test_the_process_runs_gdal_without_vector_vrt_and_network_file_systems(tmp_path, url_trap):
    import pyogrio
    import rasterio

    from gis_platform.gdal_env import ensure_hardened

    trap, hits = url_trap
    ensure_hardened()
    vrt = tmp_path / "x.vrt"
    vrt.write_bytes(ogr_vrt(f"CSV:{SECRET_FILE}"))
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.read_dataframe(vrt)
    hits.clear()
    with pytest.raises(rasterio.errors.RasterioIOError):
        rasterio.open(f"/vsicurl/{trap}/a.tif")
    assert hits == []
    # Rasters are opened as GeoTIFF only: a raster VRT is not recognised at all.
    vrt.write_bytes(raster_vrt_raw(SECRET_FILE))
    with pytest.raises(rasterio.errors.RasterioIOError):
        rasterio.open(vrt, driver="GTiff")


@pytest.mark.parametrize("case", list(corpus("http://x")))
def test_hostile_upload_is_a_clear_4xx_and_changes_nothing(world: SecurityWorld, url_trap, case):
    trap, hits = url_trap
    name, data = corpus(trap)[case]
    before = snapshot(world)
    hits.clear()
    layer_id = "hostile_" + str(abs(hash(case)) % 10**8)
    with world.client("planner") as c:
        r = c.post("/layers/upload", data={"layer_id": layer_id},
                   files={"file": (name, data, "application/octet-stream")}, timeout=120)
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    detail = r.json()["detail"]
    assert len(detail) > 20, detail          # a message a person can act on
    assert "root:" not in r.text
    assert_no_internals(r)
    assert snapshot(world) == before, case
    assert hits == [], f"{case}: GDAL fetched {hits}"


def test_refusals_name_the_reason(world: SecurityWorld, url_trap):
    trap, _ = url_trap
    files = corpus(trap)
    expect = {
        "raster VRT saved as .tif": "not one",
        "raster VRT reading a server file": "describe other datasets",
        "zip bomb (one member expanding 1000x)": "zip bomb",
        "zip member with an unsafe path": "unsafe path",
        "a feature with 260,000 vertices": "260,000 vertices",
    }
    with world.client("planner") as c:
        for case, words in expect.items():
            name, data = files[case]
            r = c.post("/layers/upload", data={"layer_id": "hostile_reason"},
                       files={"file": (name, data)}, timeout=120)
            assert words in r.json()["detail"], (case, r.json()["detail"])


def test_zip_expanding_past_the_total_limit_is_refused_before_extraction(tmp_path):
    from gis_platform.errors import IngestError
    from layers.ingest.readers import ZipLimits, read_vector

    path = tmp_path / "many.zip"
    path.write_bytes(zipped({f"f{i}.txt": b"x" * 400_000 for i in range(5)}, zipfile.ZIP_STORED))
    with pytest.raises(IngestError, match="would expand to"):
        read_vector(path, zip_limits=ZipLimits(max_uncompressed_bytes=1 << 20))


def test_a_real_geotiff_is_still_accepted(world: SecurityWorld, tmp_path):
    from .conftest import make_dem

    dem = make_dem(tmp_path / "ok.tif")
    with world.client("admin") as c:
        r = c.post("/layers/upload", data={"layer_id": "dem_ok"},
                   files={"file": ("ok.tif", dem.read_bytes())})
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "raster"
        assert c.delete("/layers/dem_ok").status_code == 204


def test_an_anonymous_upload_is_refused_before_the_body_is_read(world: SecurityWorld):
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(world.server.url)
    head = (b"POST /layers/upload HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 67108864\r\n\r\n"
            b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.geojson\"\r\n\r\n")
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head + b"{" * 1000)
        # 64 MB are announced and 1 KB sent: a server that reads the body before deciding
        # would wait for the rest; this one answers at once.
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
