"""Ingest of the real Seoul files in shared/data: legacy CRS, encodings, BOMs, invalid polygons."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from pyproj import Geod

from gis_platform.errors import IngestError
from layers.ingest import ingest_file

GEOD = Geod(ellps="WGS84")
SHP = "southkorea-seoul-maps/kostat/2013/shp/original/seoul_municipalities"
JUSO_GU = "southkorea-seoul-maps/juso/2015/json/seoul_municipalities_geo_simple.json"
KOSTAT13_GU = "southkorea-seoul-maps/kostat/2013/json/seoul_municipalities_geo_simple.json"


def metres(a, b) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def centroid(conn, table, where, params):
    return conn.execute(f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Union(geom)) c "
                        f"FROM gis_data.{table} WHERE {where}) s", params).fetchone()


@pytest.fixture
def zipped_bessel_shapefile(shared_data: Path, tmp_path: Path) -> Path:
    """The original KOSTAT 2013 shapefile, zipped as a user would upload it (no .cpg)."""
    out = tmp_path / "seoul_municipalities.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for ext in (".shp", ".shx", ".dbf", ".prj"):
            src = shared_data / (SHP + ext)
            zf.write(src, "seoul_municipalities" + ext)
    return out


def test_legacy_bessel_shapefile_lands_where_it_belongs(db_url, conn, shared_data,
                                                        zipped_bessel_shapefile):
    report = ingest_file(db_url, zipped_bessel_shapefile, layer_id="gu_2013")
    assert report.features_written == 25
    assert report.encoding == "CP949"
    assert report.source_crs == "EPSG:5174"
    assert any("datum shift" in n or "shift applied" in n for n in report.notes)
    ingest_file(db_url, shared_data / JUSO_GU, layer_id="gu_juso")
    ingest_file(db_url, shared_data / KOSTAT13_GU, layer_id="gu_2013_lonlat")
    # 강동구: KOSTAT code 11250, MOIS (JUSO) code 11740.
    ours = centroid(conn, "gu_2013", "code = %s", ("11250",))
    juso = centroid(conn, "gu_juso", "\"sig_cd\" = %s", ("11740",))
    unshifted = centroid(conn, "gu_2013_lonlat", "code = %s", ("11250",))
    assert metres(ours, juso) < 150, "datum shift missing or wrong"
    assert metres(unshifted, juso) > 250  # the known ~300 m error of the 2013 lon/lat files
    assert metres(ours, unshifted) > 250


def test_cp949_attributes_decode_to_hangul(db_url, conn, zipped_bessel_shapefile):
    ingest_file(db_url, zipped_bessel_shapefile, layer_id="gu_names")
    names = {r[0] for r in conn.execute("SELECT name FROM gis_data.gu_names")}
    assert {"강동구", "종로구", "중구"} <= names


def test_loose_shapefile_without_cpg_is_detected_as_cp949(db_url, conn, shared_data):
    report = ingest_file(db_url, shared_data / (SHP + ".shp"), layer_id="gu_loose")
    assert report.encoding == "CP949"
    assert conn.execute("SELECT count(*) FROM gis_data.gu_loose WHERE name = '강남구'").fetchone()[0] == 1


def test_explicit_crs_without_datum_shift_reproduces_the_known_offset(db_url, conn, shared_data):
    """Naming a CRS on the command line overrides the file's; the report says so."""
    report = ingest_file(db_url, shared_data / (SHP + ".shp"), layer_id="gu_2097", crs="EPSG:2097")
    assert report.source_crs == "EPSG:2097"
    assert any("overridden" in n for n in report.notes)


def test_bom_csv_with_total_row_drops_it_and_counts_it(db_url, conn, shared_data):
    path = shared_data / "seoul-public-bicycle/public/data/seoul_public_bicycle.csv"
    report = ingest_file(db_url, path, layer_id="bike")
    assert report.features_read == 1541
    assert report.features_written == 1540
    assert report.dropped_no_coordinates == 1
    cols = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'bike'")}
    assert "place" in cols and "\ufeffplace" not in cols  # the BOM did not leak into a name
    assert conn.execute("SELECT count(*) FROM gis_data.bike WHERE place = '합계'").fetchone()[0] == 0
    x, y = conn.execute("SELECT ST_X(ST_Centroid(ST_Collect(geom))), ST_Y(ST_Centroid(ST_Collect(geom))) "
                        "FROM gis_data.bike").fetchone()
    assert 126.8 < x < 127.2 and 37.4 < y < 37.7


def test_projected_utmk_points_need_and_honour_a_named_crs(db_url, conn, shared_data):
    path = shared_data / "vuski-admdongkor/mdis_centroids/coordinate_UTMK_names.tsv"
    with pytest.raises(IngestError, match="EPSG:5179"):
        ingest_file(db_url, path, layer_id="centroids")
    assert conn.execute("SELECT count(*) FROM gis_meta.layers").fetchone()[0] == 0
    report = ingest_file(db_url, path, layer_id="centroids", crs="5179")
    assert report.features_written == 5139
    x, y = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM gis_data.centroids "
                        "WHERE admnm = '서울특별시 종로구' LIMIT 1").fetchone()
    assert abs(x - 126.9676) < 0.0005 and abs(y - 37.5990) < 0.0005


def test_invalid_polygons_are_repaired_and_counted(db_url, conn, shared_data):
    path = shared_data / "southkorea-seoul-maps/juso/2015/json/seoul_neighborhoods_geo_simple.json"
    report = ingest_file(db_url, path, layer_id="dong")
    assert report.repaired == 2
    assert report.features_written == 467
    assert conn.execute("SELECT count(*) FROM gis_data.dong WHERE NOT ST_IsValid(geom)").fetchone()[0] == 0
    assert report.geometry_type == "MultiPolygon"


def test_topojson_is_read(db_url, conn, shared_data):
    path = shared_data / "southkorea-seoul-maps/kostat/2013/json/seoul_municipalities_topo_simple.json"
    report = ingest_file(db_url, path, layer_id="gu_topo")
    assert report.features_written == 25


def test_catalog_records_extent_count_schema_and_version(db_url, conn, shared_data):
    path = shared_data / JUSO_GU
    report = ingest_file(db_url, path, layer_id="districts", metadata={"title": "Districts",
                                                                       "title_ko": "자치구"})
    row = conn.execute("SELECT feature_count, extent, schema, data_version, title_ko, source_crs, "
                       "geometry_type, storage_srid FROM gis_meta.layers WHERE id = 'districts'").fetchone()
    count, extent, schema, version, title_ko, src_crs, gtype, srid = row
    assert count == 25 and version == report.data_version and title_ko == "자치구"
    assert 126.7 < extent[0] < extent[2] < 127.3 and 37.4 < extent[1] < extent[3] < 37.8
    names = {a["name"]: a["type"] for a in schema}
    assert names["sig_kor_nm"] == "text"
    assert names["shape_area"] == "double precision"
    assert src_crs == "EPSG:4326" and srid == 4326
    idx = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'gis_data' "
                       "AND tablename = 'districts'").fetchall()
    assert any("gist" in i[0] for i in idx)
