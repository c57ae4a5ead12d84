"""Modes (create/replace/append), all-or-nothing failures, and every kind of bad input."""

from __future__ import annotations

import zipfile

import geopandas as gpd
import psycopg
import pyogrio
import pytest
import shapely

from gis_platform.errors import Conflict, IngestError, InvalidParameter, LayerNotFound
from layers.ingest import ingest_file, ingest_geodataframe, writer


def pts(n: int, start: int = 0, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"v": list(range(start, start + n)), **cols},
                            geometry=[shapely.Point(126.9 + i * 1e-4, 37.5) for i in range(n)], crs=4326)


def snapshot(conn: psycopg.Connection) -> tuple:
    """Everything an ingest could change: catalog rows and the data tables with their counts."""
    layers = conn.execute("SELECT id, data_version, feature_count, schema::text FROM gis_meta.layers "
                          "ORDER BY id").fetchall()
    tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'gis_data' "
                          "ORDER BY 1").fetchall()
    counts = [conn.execute(f'SELECT count(*), sum(v) FROM gis_data."{t[0]}"').fetchone()
              for t in tables if t[0] == "lyr"]
    return layers, tables, counts


def test_replace_swaps_data_and_bumps_the_version(db_url, conn):
    r1 = ingest_geodataframe(db_url, pts(10), "lyr")
    r2 = ingest_geodataframe(db_url, pts(3, start=100), "lyr", mode="replace")
    assert r2.data_version > r1.data_version
    assert conn.execute("SELECT count(*), min(v) FROM gis_data.lyr").fetchone() == (3, 100)
    assert conn.execute("SELECT feature_count FROM gis_meta.layers WHERE id='lyr'").fetchone()[0] == 3
    leftovers = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname='gis_data' "
                             "AND tablename LIKE '\\_stage%'").fetchone()[0]
    assert leftovers == 0


def test_replace_keeps_documented_units(db_url, conn):
    ingest_geodataframe(db_url, pts(2), "lyr", metadata={"units": {"v": "m"}})
    ingest_geodataframe(db_url, pts(2), "lyr", mode="replace")
    schema = conn.execute("SELECT schema FROM gis_meta.layers WHERE id='lyr'").fetchone()[0]
    assert schema[0]["unit"] == "m"


def test_append_adds_rows_with_new_fids(db_url, conn):
    ingest_geodataframe(db_url, pts(5), "lyr")
    r = ingest_geodataframe(db_url, pts(2, start=50), "lyr", mode="append")
    assert r.feature_count == 7
    assert conn.execute("SELECT max(fid), count(DISTINCT fid) FROM gis_data.lyr").fetchone() == (7, 7)


def test_append_with_other_columns_is_refused_and_changes_nothing(db_url, conn):
    ingest_geodataframe(db_url, pts(5), "lyr")
    before = snapshot(conn)
    with pytest.raises(IngestError, match="not in layer"):
        ingest_geodataframe(db_url, pts(2, extra=["a", "b"]), "lyr", mode="append")
    assert snapshot(conn) == before


def test_create_with_an_existing_id_is_a_conflict(db_url, conn):
    ingest_geodataframe(db_url, pts(5), "lyr")
    before = snapshot(conn)
    with pytest.raises(Conflict, match="already exists"):
        ingest_geodataframe(db_url, pts(1), "lyr")
    assert snapshot(conn) == before


def test_replace_of_a_missing_layer_is_refused(db_url):
    with pytest.raises(IngestError):
        ingest_geodataframe(db_url, pts(1), "nope", mode="replace")


def test_failure_after_copy_leaves_the_previous_layer_exactly_as_it_was(db_url, conn, monkeypatch):
    ingest_geodataframe(db_url, pts(10), "lyr")
    before = snapshot(conn)

    def boom(conn, table):
        raise RuntimeError("disk full while indexing")

    monkeypatch.setattr(writer, "_index_and_analyze", boom)
    with pytest.raises(RuntimeError):
        ingest_geodataframe(db_url, pts(3, start=100), "lyr", mode="replace")
    assert snapshot(conn) == before


def test_invalid_layer_id_is_rejected(db_url):
    with pytest.raises(InvalidParameter, match="lower-case"):
        ingest_geodataframe(db_url, pts(1), "Robert'); DROP TABLE students;--")


def test_mixed_geometry_types_are_rejected_with_counts(db_url, conn):
    gdf = gpd.GeoDataFrame({"v": [1, 2, 3]}, geometry=[
        shapely.Point(127, 37.5), shapely.Point(127.1, 37.5),
        shapely.LineString([(127, 37.5), (127.1, 37.6)])], crs=4326)
    with pytest.raises(IngestError, match="2 points, 1 linestrings"):
        ingest_geodataframe(db_url, gdf, "mixed")
    assert snapshot(conn) == ([], [], [])


def test_file_without_crs_needs_one(db_url, conn, tmp_path):
    gdf = gpd.GeoDataFrame({"v": [1]}, geometry=[shapely.Point(200000, 550000)], crs=None)
    path = tmp_path / "nocrs.fgb"
    pyogrio.write_dataframe(gdf, path, driver="FlatGeobuf")
    with pytest.raises(IngestError, match="does not say which coordinate reference system"):
        ingest_file(db_url, path)
    assert ingest_file(db_url, path, crs="EPSG:5186").features_written == 1


def test_unknown_crs_is_a_clear_error(db_url, tmp_path):
    path = tmp_path / "p.fgb"
    pyogrio.write_dataframe(pts(1), path, driver="FlatGeobuf")
    with pytest.raises(IngestError, match="Unknown CRS"):
        ingest_file(db_url, path, crs="EPSG:999999")


def test_wrong_crs_that_puts_data_off_the_globe_is_refused(db_url, conn, tmp_path):
    gdf = gpd.GeoDataFrame({"v": [1]}, geometry=[shapely.Point(955000, 1950000)], crs=None)
    path = tmp_path / "utmk.fgb"
    pyogrio.write_dataframe(gdf, path, driver="FlatGeobuf")
    with pytest.raises(IngestError):
        ingest_file(db_url, path, crs="EPSG:4326")
    assert snapshot(conn) == ([], [], [])


@pytest.mark.parametrize("name,content,match", [
    ("empty.geojson", b"", "empty"),
    ("trunc.geojson", b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geom', "Cannot read"),
    ("notjson.geojson", b"hello world", "not JSON"),
    ("fake.gpkg", b"this is not a geopackage at all........", "not a valid GPKG"),
    ("fake.zip", b"PK\x03\x04garbage", "ZIP"),
    ("data.docx", b"PK\x03\x04...", "Unsupported file type"),
    ("zero.geojson", b'{"type": "FeatureCollection", "features": []}', "no features"),
])
def test_bad_files_are_rejected_with_a_clear_message(db_url, conn, tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError, match=match):
        ingest_file(db_url, path)
    assert snapshot(conn) == ([], [], [])


def test_wrong_extension_is_named(db_url, conn, tmp_path):
    real = tmp_path / "real.gpkg"
    pyogrio.write_dataframe(pts(2), real, layer="p")
    liar = tmp_path / "liar.geojson"
    liar.write_bytes(real.read_bytes())
    with pytest.raises(IngestError, match="content is GPKG"):
        ingest_file(db_url, liar)


def test_truncated_geopackage_is_rejected(db_url, conn, tmp_path):
    real = tmp_path / "real.gpkg"
    pyogrio.write_dataframe(pts(2000), real, layer="p")
    cut = tmp_path / "cut.gpkg"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 3])
    with pytest.raises(IngestError):
        ingest_file(db_url, cut)
    assert snapshot(conn) == ([], [], [])


def test_zip_missing_shapefile_parts_is_explained(db_url, tmp_path, shared_data):
    z = tmp_path / "partial.zip"
    shp = shared_data / "southkorea-seoul-maps/kostat/2013/shp/original/seoul_municipalities.shp"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(shp, "gu.shp")
    with pytest.raises(IngestError, match=r"\.shx and \.dbf"):
        ingest_file(db_url, z)


def test_gpkg_layer_that_does_not_exist(db_url, tmp_path):
    path = tmp_path / "one.gpkg"
    pyogrio.write_dataframe(pts(2), path, layer="p")
    with pytest.raises(IngestError, match="no layer 'q'"):
        ingest_file(db_url, path, source_layer="q")


def test_replace_of_unknown_layer_via_file(db_url, tmp_path):
    path = tmp_path / "p.fgb"
    pyogrio.write_dataframe(pts(1), path, driver="FlatGeobuf")
    with pytest.raises((IngestError, LayerNotFound)):
        ingest_file(db_url, path, layer_id="ghost", mode="replace")
