"""Access: restricted and internal layers are invisible to anonymous callers on every path."""

from __future__ import annotations

import pytest

from .conftest import assert_problem

HIDDEN = ("gas_mains", "survey_points")


def _paths(layer: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/collections/{layer}", {}),
        ("GET", f"/collections/{layer}/items", {}),
        ("GET", f"/collections/{layer}/items", {"f": "html"}),
        ("GET", f"/collections/{layer}/items/1", {}),
        ("GET", f"/collections/{layer}/queryables", {}),
        ("GET", f"/collections/{layer}/export", {"format": "geojson"}),
        ("GET", f"/collections/{layer}/export", {"format": "gpkg"}),
        ("GET", f"/collections/{layer}/stats", {}),
        ("GET", f"/collections/{layer}/nearest", {"point": "126.97,37.56"}),
        ("GET", f"/collections/{layer}/within-distance", {"point": "126.97,37.56", "distance": "500"}),
        ("POST", f"/collections/{layer}/intersecting", {}),
        ("POST", f"/collections/{layer}/stats", {}),
    ]


BODY = {"type": "Point", "coordinates": [126.97, 37.56]}


def test_anonymous_collections_list_omits_restricted_and_internal_layers(anon):
    ids = {c["id"] for c in anon.get("/collections").json()["collections"]}
    assert ids == {"bike_stations", "districts"}
    api = anon.get("/api").text
    assert all(h not in api for h in HIDDEN)


@pytest.mark.parametrize("layer", HIDDEN)
def test_anonymous_gets_the_same_404_as_for_a_missing_layer_everywhere(anon, layer):
    for method, path, params in _paths(layer):
        r = anon.request(method, path, params=params, json=BODY if method == "POST" else None)
        body = assert_problem(r, 404)
        missing = anon.request(method, path.replace(layer, "no_such_layer"), params=params,
                               json=BODY if method == "POST" else None).json()
        assert body["title"] == missing["title"] and body["type"] == missing["type"], path
        assert body["detail"] == missing["detail"].replace("no_such_layer", layer), path


def test_anonymous_cannot_use_a_restricted_layer_as_stats_area(anon):
    assert_problem(anon.get("/collections/bike_stations/stats", params={"area": "gas_mains:1"}), 404)


def test_restricted_layer_names_do_not_leak_through_filter_errors(anon):
    r = anon.get("/collections/bike_stations/items", params={"filter": "material = 'PE'"})
    body = assert_problem(r, 400)
    assert "gas_mains" not in body["detail"]


def test_planner_sees_and_reads_restricted_layers_everywhere(planner):
    ids = {c["id"] for c in planner.get("/collections").json()["collections"]}
    assert set(HIDDEN) <= ids
    for method, path, params in _paths("gas_mains"):
        r = planner.request(method, path, params=params, json=BODY if method == "POST" else None)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert planner.get("/collections/bike_stations/stats", params={"area": "survey_points:1"}).status_code == 200


def test_bad_api_key_is_401_not_anonymous(feature_world):
    with feature_world.client("gis_bogus.token") as c:
        assert_problem(c.get("/collections"), 401)
