"""The demo city: real boundaries, deterministic synthetic networks, idempotent loading."""

from __future__ import annotations

from gis_platform.config import Settings
from layers import demo


def test_synthetic_networks_are_deterministic_and_inside_the_city():
    gu = demo.districts(demo.data_root())
    a, b = demo.roads(gu, "small"), demo.roads(gu, "small")
    assert len(a) == len(b) > 3000
    assert (a.geometry.to_wkb() == b.geometry.to_wkb()).all()
    fac = demo.facilities(a)
    assert set(fac["kind"]) == {k.code for k in demo.KINDS}
    assert (fac["depth_max_m"] >= fac["depth_min_m"]).all() and (fac["depth_min_m"] > 0).all()
    city = gu.to_crs(demo.METRIC).union_all().buffer(50)
    assert a.geometry.within(city).mean() > 0.98


def test_demo_loads_once_through_the_ingest_path(db_url, conn, tmp_path):
    settings = Settings(database_url=db_url, data_dir=tmp_path, _env_file=None)
    counts = demo.load_demo(settings, db_url, scale="small")
    assert counts["districts"] == 25 and counts["neighbourhoods"] == 424
    assert counts["bike_stations"] == 1540 and counts["roads"] > 3000
    assert counts["underground_facilities"] > counts["roads"]
    rows = dict(conn.execute("SELECT id, access_level FROM gis_meta.layers").fetchall())
    assert rows["underground_facilities"] == "restricted" and rows["districts"] == "public"
    turnout = conn.execute("SELECT turnout_pct FROM gis_data.districts WHERE name = '종로구'").fetchone()[0]
    assert 70 < turnout < 85
    assert demo.load_demo(settings, db_url, scale="small") == {}  # idempotent: nothing redone
