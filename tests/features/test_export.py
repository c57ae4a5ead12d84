"""Open-data export: GeoJSON, CSV, GeoPackage and FlatGeobuf, read back with pyogrio."""

from __future__ import annotations

import csv
import io
from urllib.parse import unquote

import pyogrio
import pytest

from .conftest import assert_problem

FILTER = {"filter": "place = '마포구'"}


def _download(client, tmp_path, fmt, **params):
    r = client.get("/collections/bike_stations/export", params={"format": fmt, **FILTER, **params})
    assert r.status_code == 200, r.text[:300]
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(r.content)
    return r, path


@pytest.mark.parametrize("fmt,media", [("geojson", "application/geo+json"), ("gpkg", "application/geopackage+sqlite3"),
                                       ("fgb", "application/flatgeobuf")])
def test_filtered_export_reads_back_with_pyogrio(anon, bikes, tmp_path, fmt, media):
    r, path = _download(anon, tmp_path, fmt)
    assert r.headers["content-type"].startswith(media)
    assert f'.{fmt}"' in r.headers["content-disposition"]
    df = pyogrio.read_dataframe(path)
    expected = bikes[bikes.place == "마포구"]
    assert len(df) == len(expected) > 50
    assert set(df.place) == {"마포구"}
    assert sorted(df.numofunits.tolist()) == sorted(expected.numOfUnits.tolist())
    assert df.geometry.geom_type.unique().tolist() == ["Point"]
    assert df.total_bounds == pytest.approx(expected.total_bounds, abs=1e-6)


def test_geopackage_and_flatgeobuf_carry_licence_and_attribution(anon, tmp_path):
    for fmt in ("gpkg", "fgb"):
        _, path = _download(anon, tmp_path, fmt)
        info = pyogrio.read_info(path)
        meta = info["layer_metadata"]
        assert meta["licence"] == "Seoul Open Data test licence", fmt
        assert meta["attribution"] == "서울특별시 공공자전거 (data.seoul.go.kr)", fmt
        assert "Licence: Seoul Open Data test licence" in meta["DESCRIPTION"]


def test_geojson_export_has_licence_members_and_headers(anon, tmp_path):
    r, _ = _download(anon, tmp_path, "geojson")
    doc = r.json()
    assert doc["licence"] == "Seoul Open Data test licence"
    assert doc["attribution"].startswith("서울특별시")
    assert r.headers["x-licence"] == "Seoul Open Data test licence"
    assert unquote(r.headers["x-attribution"]) == "서울특별시 공공자전거 (data.seoul.go.kr)"


def test_csv_export_with_wkt_and_with_lon_lat(anon, bikes, tmp_path):
    r, _ = _download(anon, tmp_path, "csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == int((bikes.place == "마포구").sum())
    assert rows[0]["_WKT_EPSG_4326_POINT"].startswith("POINT(") and rows[0]["place"] == "마포구"
    r, path = _download(anon, tmp_path, "csv", geometry="lonlat", properties="name")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert list(rows[0]) == ["fid", "name", "lon", "lat"]
    assert 126.8 < float(rows[0]["lon"]) < 127.0 and 37.4 < float(rows[0]["lat"]) < 37.7
    df = pyogrio.read_dataframe(path, x_possible_names="lon", y_possible_names="lat")   # GDAL reads it too
    assert len(df) == len(rows)


def test_export_in_a_projected_crs(anon, tmp_path):
    _, path = _download(anon, tmp_path, "gpkg", crs="EPSG:5186")
    info = pyogrio.read_info(path)
    assert "5186" in info["crs"]
    xmin, ymin, xmax, ymax = info["total_bounds"]
    assert 180_000 < xmin < xmax < 220_000 and 540_000 < ymin < ymax < 560_000   # easting, northing


def test_whole_layer_export_and_limit(anon, tmp_path):
    r = anon.get("/collections/bike_stations/export", params={"format": "fgb"})
    (tmp_path / "all.fgb").write_bytes(r.content)
    assert pyogrio.read_info(tmp_path / "all.fgb")["features"] == 1540
    r = anon.get("/collections/bike_stations/export", params={"format": "geojson", "limit": 7})
    assert len(r.json()["features"]) == 7


def test_empty_export_is_a_valid_empty_file(anon, tmp_path):
    for fmt in ("gpkg", "fgb", "geojson"):
        r = anon.get("/collections/bike_stations/export", params={"format": fmt, "filter": "numofunits < 0"})
        path = tmp_path / f"empty.{fmt}"
        path.write_bytes(r.content)
        assert len(pyogrio.read_dataframe(path)) == 0, fmt   # opens, has the layer, no features


@pytest.mark.parametrize("params", [{"format": "shp"}, {"format": "csv", "geometry": "svg"},
                                    {"format": "gpkg", "geometry": "wkt"}, {"format": "csv", "limit": "0"},
                                    {"format": "gpkg", "filter": "nosuch = 1"},
                                    {"format": "csv", "filter": "numofunits / 0 = 1"}])
def test_bad_export_requests_are_400(anon, params):
    assert_problem(anon.get("/collections/bike_stations/export", params=params), 400)


def test_exports_written_in_many_batches_are_complete(make_settings, feature_world, tmp_path):
    from tests.conftest import start_server

    srv = start_server(make_settings(database_url=feature_world.db_url, features_export_batch=100))
    try:
        with srv.client(headers={"Authorization": f"Bearer {feature_world.planner_token}"}) as c:
            for fmt in ("fgb", "gpkg", "geojson", "csv"):
                r = c.get("/collections/gas_mains/export", params={"format": fmt})
                assert r.status_code == 200, (fmt, r.text[:300])
                path = tmp_path / f"mains.{fmt}"
                path.write_bytes(r.content)
                if fmt == "csv":
                    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
                    assert [int(x["fid"]) for x in rows] == list(range(1, 1501))
                    continue
                df = pyogrio.read_dataframe(path)
                assert len(df) == 1500, fmt
                assert sorted(df.material.unique()) == ["PE", "cast_iron", "steel"]
    finally:
        srv.stop()
