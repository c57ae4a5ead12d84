"""`gis-platform backup` / `restore`: a real round trip through pg_dump and pg_restore."""

from __future__ import annotations

import tarfile
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
import shapely

from gis_platform.backup import backup, read_manifest, restore
from gis_platform.config import Settings
from gis_platform.errors import PlatformError
from layers.ingest import ingest_file, ingest_geodataframe
from tests.conftest import owner_url, scratch_database
from tests.ingest.test_ingest_http_cli_raster import make_geotiff


@pytest.fixture
def other_db(admin_url, template_db):
    """A second fresh database (same cluster) to restore into."""
    with scratch_database(admin_url, template_db, "r_") as url:
        yield url


def _points(n: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": [f"p{i}" for i in range(n)], "value": list(range(n))},
                            geometry=shapely.points([(127.0 + i * 1e-3, 37.5) for i in range(n)]),
                            crs="EPSG:4326")


def _state(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as c:
        layers = c.execute("SELECT id, data_version, feature_count, table_name FROM gis_meta.layers "
                           "ORDER BY id").fetchall()
        rows = {}
        for lid, _, _, table in layers:
            if table:
                rows[lid] = c.execute(f'SELECT count(*) FROM gis_data."{table}"').fetchone()[0]
        seq = c.execute("SELECT last_value FROM gis_meta.data_version_seq").fetchone()[0]
    return {"layers": layers, "rows": rows, "seq": seq}


def test_round_trip_keeps_layers_versions_rows_and_raster_files(db_url, other_db, tmp_path):
    src = Settings(database_url=db_url, data_dir=tmp_path / "src", _env_file=None)
    ingest_geodataframe(db_url, _points(50), "points", mode="create", metadata={"access_level": "public"})
    ingest_geodataframe(db_url, _points(70), "points", mode="replace", metadata={"access_level": "public"})   # data version moves on
    ingest_geodataframe(db_url, _points(5), "few", mode="create", metadata={"access_level": "public"})
    ingest_file(db_url, make_geotiff(tmp_path / "dem.tif"), layer_id="dem",
                data_dir=src.resolved_data_dir(), metadata={"access_level": "public"})
    before = _state(db_url)
    assert before["rows"] == {"points": 70, "few": 5}

    manifest = backup(src, db_url, tmp_path / "out" / "city")
    archive = Path(manifest["archive"])
    assert archive.name == "city.tar" and archive.is_file()
    assert {l["id"] for l in read_manifest(archive)["layers"]} == {"points", "few", "dem"}
    assert any(f["path"].startswith("rasters/") for f in manifest["files"])

    dst = Settings(database_url=other_db, data_dir=tmp_path / "dst", _env_file=None)
    result = restore(dst, owner_url(other_db), archive)
    after = _state(other_db)
    assert after["layers"] == before["layers"] and after["rows"] == before["rows"]
    assert after["seq"] == before["seq"]  # new ingests keep getting fresh data versions
    assert result["safety_backup"] is None
    with psycopg.connect(other_db) as c:
        raster = c.execute("SELECT raster_path FROM gis_meta.layers WHERE id='dem'").fetchone()[0]
        audit = c.execute("SELECT count(*) FROM gis_meta.audit_log").fetchone()[0]
    with psycopg.connect(db_url) as c:
        assert audit == c.execute("SELECT count(*) FROM gis_meta.audit_log").fetchone()[0]
    assert raster.startswith(str(dst.resolved_data_dir())) and Path(raster).is_file()
    # The restore gave the server's least-privilege login its grants and tables back: it can
    # replace a restored layer (drop its table) and append to the audit log.
    ingest_geodataframe(other_db, _points(4), "points", mode="replace", metadata={"access_level": "public"})
    with psycopg.connect(other_db) as c:
        c.execute("INSERT INTO gis_meta.audit_log (action) VALUES ('read')")


def test_restore_refuses_a_non_empty_database_without_force(db_url, other_db, tmp_path):
    src = Settings(database_url=db_url, data_dir=tmp_path / "src", _env_file=None)
    ingest_geodataframe(db_url, _points(10), "points", mode="create", metadata={"access_level": "public"})
    archive = Path(backup(src, db_url, tmp_path / "a.tar")["archive"])

    dst = Settings(database_url=other_db, data_dir=tmp_path / "dst", _env_file=None)
    ingest_geodataframe(other_db, _points(3), "mine", mode="create", metadata={"access_level": "public"})
    with pytest.raises(PlatformError, match="--force"):
        restore(dst, owner_url(other_db), archive)
    assert [l[0] for l in _state(other_db)["layers"]] == ["mine"]

    result = restore(dst, owner_url(other_db), archive, force=True)
    assert [l[0] for l in _state(other_db)["layers"]] == ["points"]  # replaced, not merged
    safety = Path(result["safety_backup"])
    assert safety.is_file() and [l["id"] for l in read_manifest(safety)["layers"]] == ["mine"]


def test_corrupt_archive_changes_nothing(db_url, other_db, tmp_path):
    src = Settings(database_url=db_url, data_dir=tmp_path / "src", _env_file=None)
    ingest_geodataframe(db_url, _points(10), "points", mode="create", metadata={"access_level": "public"})
    archive = Path(backup(src, db_url, tmp_path / "a.tar")["archive"])
    # flip bytes inside the dump member
    with tarfile.open(archive) as tar:
        offset = tar.getmember("db.dump").offset_data
    raw = bytearray(archive.read_bytes())
    raw[offset + 200:offset + 210] = b"\x00" * 10
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(raw))
    dst = Settings(database_url=other_db, data_dir=tmp_path / "dst", _env_file=None)
    with pytest.raises(PlatformError, match="corrupt"):
        restore(dst, owner_url(other_db), bad)
    assert _state(other_db)["layers"] == []
    not_a_backup = tmp_path / "x.tar"
    not_a_backup.write_bytes(b"hello")
    with pytest.raises(PlatformError, match="not a gis-platform backup"):
        restore(dst, owner_url(other_db), not_a_backup)


def test_cli_backup_and_restore(db_url, other_db, tmp_path):
    import os
    import subprocess
    import sys

    ingest_geodataframe(db_url, _points(12), "points", mode="create", metadata={"access_level": "public"})

    def cli(args, url):
        env = {**os.environ, "GIS_DATABASE_URL": url, "GIS_ADMIN_DATABASE_URL": owner_url(url),
               "GIS_DATA_DIR": str(tmp_path / "d")}
        return subprocess.run([sys.executable, "-m", "gis_platform.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    r = cli(["backup", str(tmp_path / "b.tar")], db_url)
    assert r.returncode == 0, r.stderr
    assert "1 layers" in r.stdout + r.stderr
    ingest_geodataframe(other_db, _points(3), "mine", mode="create", metadata={"access_level": "public"})
    r = cli(["restore", str(tmp_path / "b.tar")], other_db)
    assert r.returncode == 1 and "--force" in r.stdout + r.stderr
    r = cli(["restore", str(tmp_path / "b.tar"), "--force"], other_db)
    assert r.returncode == 0, r.stderr
    assert [l[0] for l in _state(other_db)["layers"]] == ["points"]
