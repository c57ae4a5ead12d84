"""Every supported format and Korean CRS, from small fixture files made in the tests."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from layers.ingest import ingest_file, ingest_geodataframe
from layers.ingest.prepare import normalise_names

# A few real places in Seoul (lon, lat).
PLACES = {"시청": (126.9780, 37.5665), "강남역": (127.0276, 37.4979), "여의도": (126.9246, 37.5219),
          "잠실": (127.1002, 37.5133), "광화문": (126.9769, 37.5759)}


def sample_gdf(crs="EPSG:4326") -> gpd.GeoDataFrame:
    names = list(PLACES)
    gdf = gpd.GeoDataFrame({
        "Name 이름": names,
        "count": np.arange(1, 6, dtype="int64"),
        "small": np.arange(5, dtype="int32"),
        "ratio": [0.5, 1.25, np.nan, 3.0, 4.5],
        "open": [True, False, True, True, False],
        "opened_on": [dt.date(2015, 9, 6 + i) for i in range(5)],
        "updated": pd.to_datetime(["2024-01-01T10:00:00Z"] * 5, utc=True),
    }, geometry=[shapely.Point(*PLACES[n]) for n in names], crs="EPSG:4326")
    return gdf.to_crs(crs)


def coords(conn, table):
    return conn.execute(f"SELECT ST_X(geom), ST_Y(geom) FROM gis_data.{table} ORDER BY fid").fetchall()


def test_geodataframe_keeps_attribute_types(db_url, conn):
    ingest_geodataframe(db_url, sample_gdf(), "places")
    types = dict(conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'gis_data' AND table_name = 'places'").fetchall())
    assert types["name_이름"] == "text"
    assert types["count"] == "bigint"
    assert types["small"] == "integer"
    assert types["ratio"] == "double precision"
    assert types["open"] == "boolean"
    assert types["opened_on"] == "date"
    assert types["updated"] == "timestamp with time zone"
    assert conn.execute("SELECT count(*) FROM gis_data.places WHERE ratio IS NULL").fetchone()[0] == 1
    assert conn.execute("SELECT opened_on FROM gis_data.places WHERE fid = 1").fetchone()[0] == \
        dt.date(2015, 9, 6)


@pytest.mark.parametrize("epsg", [5186, 5179, 5174, 2097, 3857])
def test_korean_and_web_crs_round_trip_to_the_same_place(db_url, conn, tmp_path, epsg):
    path = tmp_path / f"places_{epsg}.gpkg"
    pyogrio.write_dataframe(sample_gdf(f"EPSG:{epsg}"), path, layer="places")
    report = ingest_file(db_url, path, layer_id="p")
    assert report.source_crs == f"EPSG:{epsg}"
    for (x, y), name in zip(coords(conn, "p"), PLACES):
        lon, lat = PLACES[name]
        assert abs(x - lon) < 1e-6 and abs(y - lat) < 1e-6


def test_geopackage_with_several_layers_needs_a_layer_name(db_url, conn, tmp_path):
    from gis_platform.errors import IngestError

    path = tmp_path / "two.gpkg"
    pyogrio.write_dataframe(sample_gdf(), path, layer="stations")
    lines = gpd.GeoDataFrame({"kind": ["water", "gas"]}, geometry=[
        shapely.LineString([PLACES["시청"], PLACES["광화문"]]),
        shapely.LineString([PLACES["여의도"], PLACES["시청"]])], crs="EPSG:4326")
    pyogrio.write_dataframe(lines, path, layer="mains")
    with pytest.raises(IngestError, match="2 layers"):
        ingest_file(db_url, path)
    r1 = ingest_file(db_url, path, source_layer="stations")
    r2 = ingest_file(db_url, path, source_layer="mains")
    assert (r1.layer_id, r1.geometry_type) == ("stations", "Point")
    assert (r2.layer_id, r2.geometry_type) == ("mains", "LineString")
    assert conn.execute("SELECT count(*) FROM gis_data.mains").fetchone()[0] == 2


def test_flatgeobuf_is_ingested(db_url, conn, tmp_path):
    path = tmp_path / "places.fgb"
    pyogrio.write_dataframe(sample_gdf(), path, driver="FlatGeobuf")
    report = ingest_file(db_url, path, layer_id="fgb")
    assert report.features_written == 5 and report.format == "FlatGeobuf"


def test_csv_with_wkt_column(db_url, conn, tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text("id,name,wkt\n1,a,\"LINESTRING (126.97 37.56, 126.98 37.57)\"\n"
                    "2,b,\"LINESTRING (127.00 37.50, 127.01 37.51)\"\n3,total,\n", encoding="utf-8")
    report = ingest_file(db_url, path, layer_id="wktlines")
    assert report.features_written == 2 and report.dropped_no_coordinates == 1
    assert report.geometry_type == "LineString"


def test_cp949_csv_is_decoded(db_url, conn, tmp_path):
    path = tmp_path / "cp949.csv"
    path.write_bytes("이름,경도,위도\n시청,126.978,37.5665\n".encode("cp949"))
    report = ingest_file(db_url, path, layer_id="cp")
    assert report.encoding == "CP949"
    assert conn.execute("SELECT \"이름\" FROM gis_data.cp").fetchone()[0] == "시청"


def test_polygons_and_multipolygons_become_one_multipolygon_layer(db_url, conn):
    a = shapely.box(126.97, 37.56, 126.98, 37.57)
    b = shapely.MultiPolygon([shapely.box(127.0, 37.5, 127.01, 37.51), shapely.box(127.02, 37.5, 127.03, 37.51)])
    ingest_geodataframe(db_url, gpd.GeoDataFrame({"v": [1, 2]}, geometry=[a, b], crs=4326), "polys")
    assert conn.execute("SELECT DISTINCT GeometryType(geom) FROM gis_data.polys").fetchall() == [("MULTIPOLYGON",)]


def test_empty_and_missing_geometries_are_dropped_with_a_count(db_url, conn):
    gdf = gpd.GeoDataFrame({"v": [1, 2, 3]}, geometry=[shapely.Point(127, 37.5), None,
                                                      shapely.Point()], crs=4326)
    report = ingest_geodataframe(db_url, gdf, "sparse")
    assert report.features_written == 1 and report.dropped_empty == 2


def test_bowtie_polygon_is_repaired(db_url, conn):
    bowtie = shapely.Polygon([(127.0, 37.5), (127.01, 37.51), (127.01, 37.5), (127.0, 37.51)])
    assert not bowtie.is_valid
    report = ingest_geodataframe(db_url, gpd.GeoDataFrame({"v": [1]}, geometry=[bowtie], crs=4326), "bow")
    assert report.repaired == 1
    assert conn.execute("SELECT ST_IsValid(geom) FROM gis_data.bow").fetchone()[0] is True


def test_column_names_are_normalised_safely():
    names = normalise_names(["Name", "name", "2020 인구", "fid", "a-b c", "", 'x"; DROP TABLE t;--',
                             "가" * 40])
    assert names[0] == "name" and names[1] == "name_2"
    assert names[2] == "c_2020_인구"
    assert names[3] == "fid_src"
    assert names[4] == "a_b_c"
    assert names[5] == "column"
    assert names[6] == "x_drop_table_t"
    assert len(names[7].encode()) <= 63
