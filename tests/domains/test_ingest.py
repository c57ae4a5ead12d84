"""Facility and road files onto the domain schema: mapping, per-row validation, the CLI."""

from __future__ import annotations

import geopandas as gpd
import psycopg
import pytest
from shapely.geometry import LineString

from domains.ingest import DomainIngestError, ingest_domain_file


def korean_facilities(path, rows):
    """A GeoPackage with Korean column names, as a supplier would deliver it (UTM-K)."""
    geoms = [LineString([(953_000 + 10 * i, 1_952_000), (953_000 + 10 * i, 1_952_050)]) for i in range(len(rows))]
    gdf = gpd.GeoDataFrame({"시설종류": [r[0] for r in rows], "관리기관": ["서울시"] * len(rows),
                            "관경": [r[1] for r in rows], "최저심도": [r[2] for r in rows],
                            "최고심도": [r[3] for r in rows]}, geometry=geoms, crs="EPSG:5179")
    gdf.to_file(path, driver="GPKG")
    return path


GOOD = [("상수도", 150, 1.2, 1.4), ("가스관", 100, 1.0, 1.1), ("TEL", 50, 0.7, 0.8), ("Sewer", 600, 2.5, 2.9)]


def test_korean_columns_and_codes_map_onto_the_schema(db_url, tmp_path):
    path = korean_facilities(tmp_path / "fac.gpkg", GOOD)
    rep = ingest_domain_file(db_url, path, "facilities")
    assert rep.rows_loaded == 4 and rep.rejected == []
    assert rep.column_mapping["시설종류"] == "kind" and rep.column_mapping["최저심도"] == "depth_min_m"
    with psycopg.connect(db_url) as conn:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM gis_data.underground_facilities ORDER BY fid")]
        level = conn.execute("SELECT access_level FROM gis_meta.layers WHERE id = 'underground_facilities'").fetchone()
    assert kinds == ["water", "gas", "telecom", "sewer"] and level[0] == "restricted"


def test_invalid_rows_are_reported_per_row_and_nothing_is_loaded(db_url, tmp_path):
    rows = GOOD + [("unicorn", 100, 1.0, 1.2), ("상수도", 100, -0.5, 1.0), ("가스", 100, 1.5, 1.0),
                   ("전력", -10, 1.0, 1.2)]
    path = korean_facilities(tmp_path / "bad.gpkg", rows)
    with pytest.raises(DomainIngestError) as err:
        ingest_domain_file(db_url, path, "facilities")
    rejected = {r["row"]: r["problems"] for r in err.value.extra["rejected"]}
    assert set(rejected) == {5, 6, 7, 8}
    assert "unknown facility kind" in rejected[5][0]["error"]
    assert "negative depth" in rejected[6][0]["error"]
    assert "less than depth_min_m" in rejected[7][0]["error"]
    assert "positive" in rejected[8][0]["error"]
    assert err.value.status == 422 and "nothing was loaded" in err.value.detail
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('gis_data.underground_facilities')").fetchone()[0] is None


def test_skip_invalid_loads_the_valid_rows_and_reports_the_rest(db_url, tmp_path):
    path = korean_facilities(tmp_path / "bad.gpkg", GOOD + [("unicorn", 100, 1.0, 1.2)])
    rep = ingest_domain_file(db_url, path, "facilities", on_error="skip")
    assert rep.rows_loaded == 4 and [r["row"] for r in rep.rejected] == [5]


def test_roads_validate_class_width_and_lanes(db_url, tmp_path):
    lines = [LineString([(953_000, 1_952_000 + 20 * i), (953_100, 1_952_000 + 20 * i)]) for i in range(4)]
    gdf = gpd.GeoDataFrame({"도로등급": ["대로", "소로", "골목", "고속도로"], "도로폭": [30.0, 8.0, 50.0, 20.0],
                            "차로수": [6, 2, 1, 4]}, geometry=lines, crs="EPSG:5179")
    gdf.to_file(tmp_path / "roads.gpkg", driver="GPKG")
    rep = ingest_domain_file(db_url, tmp_path / "roads.gpkg", "roads", layer_id="my_roads", on_error="skip")
    assert rep.rows_loaded == 2
    problems = {r["row"]: r["problems"][0]["error"] for r in rep.rejected}
    assert "1-12 m wide" in problems[3] and "unknown road class" in problems[4]
    with psycopg.connect(db_url) as conn:
        assert [r[0] for r in conn.execute("SELECT road_class FROM gis_data.my_roads ORDER BY fid")] == \
            ["arterial", "local"]


def test_explicit_mapping_and_unknown_targets(db_url, tmp_path):
    geoms = [LineString([(953_000, 1_952_000), (953_000, 1_952_050)])]
    gdf = gpd.GeoDataFrame({"SORT": ["water"], "COVER": [1.1]}, geometry=geoms, crs="EPSG:5179")
    gdf.to_file(tmp_path / "m.gpkg", driver="GPKG")
    rep = ingest_domain_file(db_url, tmp_path / "m.gpkg", "facilities",
                             mapping={"SORT": "kind", "COVER": "depth_min_m"})
    assert rep.rows_loaded == 1
    with pytest.raises(Exception, match="Unknown target column"):
        ingest_domain_file(db_url, tmp_path / "m.gpkg", "facilities", mapping={"SORT": "colour"})


def test_cli_ingest_reports_rejected_rows(db_url, tmp_path, data_dir):
    import os
    import subprocess
    import sys

    env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    path = korean_facilities(tmp_path / "bad.gpkg", GOOD + [("unicorn", 100, 1.0, 1.2)])

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "gis_platform.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr

    code, out = cli("domains", "ingest", "facilities", str(path))
    assert code == 1 and "nothing was loaded" in out.replace("\n", " ")
    code, out = cli("domains", "ingest", "facilities", str(path), "--skip-invalid", "--json")
    assert code == 0, out
    assert '"rows_loaded": 4' in out
