"""The upload endpoint, the CLI, and raster ingest to Cloud-Optimized GeoTIFF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from gis_platform.apikeys import create_api_key
from layers.ingest import ingest_file

from ..conftest import ROOT, start_server

BIKE = "seoul-public-bicycle/public/data/seoul_public_bicycle.csv"


def test_upload_needs_the_planner_role(client, shared_data):
    with (shared_data / BIKE).open("rb") as fh:
        r = client.post("/layers/upload", files={"file": ("bike.csv", fh, "text/csv")})
    assert r.status_code == 401
    assert "planner" in r.json()["detail"]


def test_planner_upload_returns_the_report_and_the_layer_appears(client, db_url, shared_data):
    token = create_api_key(db_url, "planner", ["planner"])
    auth = {"Authorization": f"Bearer {token}"}
    with (shared_data / BIKE).open("rb") as fh:
        r = client.post("/layers/upload", headers=auth,
                        files={"file": ("seoul_public_bicycle.csv", fh, "text/csv")},
                        data={"layer_id": "bike_stations", "title": "Ddareungi stations"})
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["features_written"] == 1540 and report["dropped_no_coordinates"] == 1
    layer = client.get("/layers/bike_stations", headers=auth).json()
    assert layer["feature_count"] == 1540 and layer["title"] == "Ddareungi stations"
    assert "table_name" not in layer
    # Secure by default: a new layer is internal until someone publishes it.
    assert layer["access_level"] == "internal"
    assert client.get("/layers/bike_stations").status_code == 404


def test_upload_of_a_bad_file_is_422_and_changes_nothing(client, db_url, conn):
    token = create_api_key(db_url, "planner", ["planner"])
    r = client.post("/layers/upload", headers={"Authorization": f"Bearer {token}"},
                    files={"file": ("broken.geojson", b'{"type": "FeatureCollection", "feat', "application/json")})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "/tmp" not in r.json()["detail"]  # no server paths in messages
    assert conn.execute("SELECT count(*) FROM gis_meta.layers").fetchone()[0] == 0


def test_upload_over_the_size_limit_is_413(make_settings, db_url, conn):
    srv = start_server(make_settings(max_upload_mb=1))
    token = create_api_key(db_url, "planner", ["planner"])
    try:
        with srv.client() as c:
            big = b'{"type": "FeatureCollection", "features": [' + b" " * (2 << 20) + b"]}"
            r = c.post("/layers/upload", headers={"Authorization": f"Bearer {token}"},
                       files={"file": ("big.geojson", big, "application/json")})
            assert r.status_code == 413
            assert "1 MB" in r.json()["detail"]
    finally:
        srv.stop()
    assert conn.execute("SELECT count(*) FROM gis_meta.layers").fetchone()[0] == 0


def test_duplicate_upload_is_409(client, db_url, shared_data):
    token = create_api_key(db_url, "planner", ["planner"])
    auth = {"Authorization": f"Bearer {token}"}
    path = shared_data / "southkorea-seoul-maps/juso/2015/json/seoul_municipalities_geo_simple.json"
    for expected in (201, 409):
        with path.open("rb") as fh:
            r = client.post("/layers/upload", headers=auth, files={"file": ("gu.geojson", fh)},
                            data={"layer_id": "gu"})
        assert r.status_code == expected
    assert "already exists" in r.json()["detail"]


def test_metadata_patch_and_delete(client, db_url, shared_data):
    ingest_file(db_url, shared_data / "southkorea-seoul-maps/juso/2015/json/seoul_municipalities_geo_simple.json",
                layer_id="gu", metadata={"access_level": "public"})
    token = create_api_key(db_url, "planner", ["planner"])
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10
    while client.get("/layers/gu", headers=auth).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    before = client.get("/layers/gu", headers=auth).json()
    r = client.patch("/layers/gu", headers=auth, json={"title_ko": "자치구", "access_level": "restricted",
                                                        "units": {"shape_area": "m²"}})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["title_ko"] == "자치구" and after["data_version"] > before["data_version"]
    assert client.get("/layers/gu").status_code == 404  # restricted now: invisible to the public
    assert client.patch("/layers/gu", headers=auth, json={"minzoom": 15, "maxzoom": 3}).status_code == 400
    assert client.patch("/layers/gu", headers=auth, json={"table_name": "x"}).status_code == 400
    assert client.delete("/layers/gu", headers=auth).status_code == 204
    assert client.get("/layers/gu", headers=auth).status_code == 404


def _cli(args: list[str], db_url: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir)}
    exe = Path(sys.executable).parent / "gis-platform"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def test_cli_ingest_prints_a_report(data_dir, db_url, tmp_path, shared_data, conn):
    res = _cli(["ingest", str(shared_data / BIKE), "--layer", "bike", "--json"], db_url, data_dir)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["features_written"] == 1540 and report["features_per_second"] > 0
    res = _cli(["ingest", str(shared_data / BIKE), "--layer", "bike"], db_url, data_dir)
    assert res.returncode == 1 and "already exists" in res.stderr
    res = _cli(["layers", "list"], db_url, data_dir)
    assert res.returncode == 0 and "bike" in res.stdout


def make_geotiff(path: Path, value_offset: float = 0.0) -> Path:
    data = (np.arange(256 * 256, dtype="float32").reshape(256, 256) / 100.0) + value_offset
    data[:10, :10] = -9999
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=1, dtype="float32",
                       crs="EPSG:5186", transform=from_origin(190000, 560000, 50, 50), nodata=-9999) as ds:
        ds.write(data, 1)
    return path


def test_geotiff_becomes_a_registered_cog(db_url, conn, tmp_path):
    from rio_cogeo.cogeo import cog_validate

    data_dir = tmp_path / "data"
    report = ingest_file(db_url, make_geotiff(tmp_path / "dem.tif"), layer_id="dem", data_dir=data_dir, metadata={"access_level": "public"})
    assert report.kind == "raster"
    path, info, extent = conn.execute(
        "SELECT raster_path, raster_info, extent FROM gis_meta.layers WHERE id = 'dem'").fetchone()
    valid, errors, _ = cog_validate(path)
    assert valid, errors
    assert info["count"] == 1 and info["nodata"] == -9999
    stats = info["bands"][0]["statistics"]
    assert stats["min"] >= 0 and stats["max"] > stats["min"]  # nodata excluded
    assert 126.5 < extent[0] < extent[2] < 127.5 and 37 < extent[1] < extent[3] < 38.5
    report2 = ingest_file(db_url, make_geotiff(tmp_path / "dem2.tif", 5.0), layer_id="dem",
                          mode="replace", data_dir=data_dir, metadata={"access_level": "public"})
    assert report2.data_version > report.data_version
    new_path = conn.execute("SELECT raster_path FROM gis_meta.layers WHERE id = 'dem'").fetchone()[0]
    assert new_path != path and Path(new_path).exists() and not Path(path).exists()


def test_corrupt_geotiff_is_rejected(db_url, conn, tmp_path):
    real = make_geotiff(tmp_path / "x.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(real.read_bytes()[:300])
    with pytest.raises(Exception) as err:
        ingest_file(db_url, bad, data_dir=tmp_path / "data", metadata={"access_level": "public"})
    from gis_platform.errors import IngestError

    assert isinstance(err.value, IngestError)
    assert conn.execute("SELECT count(*) FROM gis_meta.layers").fetchone()[0] == 0
