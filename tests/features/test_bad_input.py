"""Hostile and malformed input in every parameter: always a clear 4xx, never a 500, no harm."""

from __future__ import annotations

import psycopg
import pytest

from .conftest import assert_problem

PAYLOADS = ["'; DROP TABLE bike_stations; --", "1 OR 1=1", "\" OR \"\"=\"", "%27%3B--",
            "$$;DROP$$", "\x00", "../../etc/passwd", "<script>alert(1)</script>", "9" * 400]
PARAMS = ["limit", "offset", "properties", "sortby", "datetime", "filter", "filter-lang", "filter-crs",
          "crs", "bbox", "bbox-crs", "f"]


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_in_any_items_parameter_is_a_4xx_problem(anon, param, payload):
    params = {param: payload}
    if param in ("filter-lang", "filter-crs"):
        params["filter"] = "numofunits > 1"
    if param == "bbox-crs":
        params["bbox"] = "126,37,127,38"
    r = anon.get("/collections/bike_stations/items", params=params)
    assert 400 <= r.status_code < 500, (param, payload, r.status_code, r.text[:300])
    assert_problem(r, r.status_code)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_in_a_property_value_is_just_a_value(anon, payload):
    r = anon.get("/collections/bike_stations/items", params={"place": payload})
    if "\x00" in payload:      # PostgreSQL text cannot hold NUL: refused cleanly
        assert_problem(r, 400)
        return
    assert r.status_code == 200 and r.json()["numberMatched"] == 0


@pytest.mark.parametrize("path", [
    "/collections/bike_stations%27%3B--/items", "/collections/BIKE_STATIONS/items",
    "/collections/public.bike_stations/items", "/collections/" + "x" * 300 + "/items",
    "/collections/bike_stations/items/1%20OR%201=1", "/collections/bike_stations/items/-1",
    "/collections/bike_stations/items/99999999999999999999999",
])
def test_hostile_paths_are_404_or_400(anon, path):
    r = anon.get(path)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert_problem(r, r.status_code)


@pytest.mark.parametrize("route,params", [
    ("nearest", {"point": "126.9,37.5", "geometry-crs": "EPSG:4326'; --"}),
    ("within-distance", {"point": "126.9,37.5", "distance": "500; DROP TABLE x"}),
    ("stats", {"group-by": "place; DROP TABLE x"}), ("stats", {"sum": "numofunits) FROM x; --"}),
    ("stats", {"area": "districts:1 OR 1=1"}), ("export", {"format": "geojson'; --"}),
    ("export", {"format": "csv", "geometry": "wkt'); --"}),
])
def test_injection_in_spatial_and_export_parameters_is_400(anon, route, params):
    assert_problem(anon.get(f"/collections/bike_stations/{route}", params=params), 400)


def test_nothing_was_harmed(anon, feature_world):
    with psycopg.connect(feature_world.db_url) as conn:
        n = conn.execute("SELECT count(*) FROM gis_data.bike_stations").fetchone()[0]
        layers = conn.execute("SELECT count(*) FROM gis_meta.layers").fetchone()[0]
    assert n == 1540 and layers == 4
    assert anon.get("/collections/bike_stations/items", params={"limit": 1}).json()["numberMatched"] == 1540
