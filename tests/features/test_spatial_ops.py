"""Spatial operators: nearest, within-distance, intersecting, stats (checked independently)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod

from tests.conftest import start_server

from .conftest import DISTRICTS, assert_problem

GEOD = Geod(ellps="WGS84")
CITY_HALL = (126.9780, 37.5665)


def _distances(gdf, lon, lat):
    _, _, d = GEOD.inv(np.full(len(gdf), lon), np.full(len(gdf), lat), gdf.geometry.x.values, gdf.geometry.y.values)
    return d


@pytest.fixture(scope="module")
def gu():
    return gpd.read_file(DISTRICTS)


def test_nearest_returns_the_k_geodesically_closest_in_order(anon, bikes):
    d = _distances(bikes, *CITY_HALL)
    expected = np.sort(d)[:8]
    r = anon.get("/collections/bike_stations/nearest", params={"point": "{},{}".format(*CITY_HALL), "limit": 8})
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    got = [f["properties"]["distance_m"] for f in r.json()["features"]]
    assert got == pytest.approx(list(expected), abs=0.05)
    assert got == sorted(got)


def test_nearest_respects_filters_and_point_crs(anon, bikes):
    big = bikes[bikes.numOfUnits >= 20]
    expected = float(np.min(_distances(big, *CITY_HALL)))
    r = anon.get("/collections/bike_stations/nearest", params={
        "point": f"{CITY_HALL[1]},{CITY_HALL[0]}", "geometry-crs": "EPSG:4326", "limit": 1,
        "filter": "numofunits >= 20"})
    feats = r.json()["features"]
    assert len(feats) == 1 and feats[0]["properties"]["distance_m"] == pytest.approx(expected, abs=0.05)
    assert feats[0]["properties"]["numofunits"] >= 20


def test_within_distance_get_and_post_match_geodesic_truth(anon, bikes):
    expected = int((_distances(bikes, *CITY_HALL) <= 1000).sum())
    r = anon.get("/collections/bike_stations/within-distance",
                 params={"point": "{},{}".format(*CITY_HALL), "distance": 1000, "limit": 5})
    doc = r.json()
    assert doc["numberMatched"] == expected and doc["numberReturned"] == 5
    assert all(f["properties"]["distance_m"] <= 1000 for f in doc["features"])
    assert any(link["rel"] == "next" for link in doc["links"])
    r = anon.post("/collections/bike_stations/within-distance", params={"distance": 1000, "limit": 1},
                  json={"type": "Point", "coordinates": list(CITY_HALL)})
    assert r.json()["numberMatched"] == expected


def test_within_distance_of_a_line(planner, feature_world):
    line = shapely.LineString([(126.95, 37.55), (127.02, 37.56)])
    mains = feature_world.gas_mains
    # Reference: distance in metres in UTM-K (EPSG:5179), within 1 m of the geodesic answer.
    utm = mains.to_crs(5179)
    line_m = gpd.GeoSeries([line], crs=4326).to_crs(5179).iloc[0]
    dist = utm.distance(line_m)
    sure_in, sure_out = int((dist <= 295).sum()), int((dist > 305).sum())
    r = planner.post("/collections/gas_mains/within-distance", params={"distance": 300, "limit": 1},
                     json={"type": "Feature", "geometry": line.__geo_interface__, "properties": {}})
    n = r.json()["numberMatched"]
    assert sure_in <= n <= len(mains) - sure_out and sure_in > 0


def test_intersecting_a_posted_district_polygon(anon, bikes, gu):
    mapo = gu.loc[gu.SIG_ENG_NM == "Mapo-gu"].geometry.iloc[0]
    r = anon.post("/collections/bike_stations/intersecting", params={"limit": 1000, "properties": "place"},
                  json={"geometry": mapo.__geo_interface__})
    doc = r.json()
    assert doc["numberMatched"] == int(bikes.intersects(mapo).sum()) > 50
    assert {f["properties"]["place"] for f in doc["features"]} <= {"마포구", "서대문구", "영등포구", "은평구"}
    assert not any(link["rel"] == "next" for link in doc["links"])


def test_stats_metres_of_gas_main_in_a_district_by_material(planner, feature_world, gu):
    """The planner's question: how many metres of gas main under this district, by material?"""
    district = gu.loc[gu.SIG_ENG_NM == "Jongno-gu"].geometry.iloc[0]
    mains = feature_world.gas_mains
    clipped = mains.geometry.intersection(district)
    lengths = np.array([GEOD.geometry_length(g) if not g.is_empty else 0.0 for g in clipped])
    hit = mains.geometry.intersects(district).values
    r = planner.post("/collections/gas_mains/stats", params={"group-by": "material", "sum": "diameter_mm"},
                     json=district.__geo_interface__)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["total"]["count"] == int(hit.sum()) > 10
    assert doc["total"]["length_m"] == pytest.approx(lengths.sum(), rel=1e-3)
    by = {g["value"]: g for g in doc["groups"]}
    for mat in set(mains.material[hit]):
        sel = hit & (mains.material.values == mat)
        assert by[mat]["count"] == int(sel.sum())
        assert by[mat]["length_m"] == pytest.approx(lengths[sel].sum(), rel=1e-3)
        assert by[mat]["sum"]["diameter_mm"] == pytest.approx(mains.diameter_mm.values[sel].sum())


def test_stats_area_can_be_a_feature_of_another_layer(planner, feature_world):
    by_geom = planner.get("/collections/districts/items/1").json()["geometry"]
    a = planner.get("/collections/gas_mains/stats", params={"area": "districts:1", "avg": "diameter_mm"}).json()
    b = planner.post("/collections/gas_mains/stats", params={"avg": "diameter_mm"}, json=by_geom).json()
    assert a["total"]["count"] == b["total"]["count"]
    # the posted copy went through 7-decimal GeoJSON (~1 cm): allow that much
    assert a["total"]["length_m"] == pytest.approx(b["total"]["length_m"], rel=1e-4)
    assert a["total"]["avg"]["diameter_mm"] == pytest.approx(b["total"]["avg"]["diameter_mm"])


def test_stats_of_polygons_gives_geodesic_area(anon):
    doc = anon.get("/collections/districts/stats").json()
    assert doc["total"]["count"] == 25
    assert doc["total"]["area_m2"] == pytest.approx(605.2e6, rel=0.01)     # Seoul: 605.2 km²


def test_stats_with_bbox_counts_points(anon, bikes):
    box = (126.95, 37.52, 127.03, 37.58)
    doc = anon.get("/collections/bike_stations/stats",
                   params={"bbox": ",".join(map(str, box)), "group-by": "place"}).json()
    sub = bikes.cx[box[0]:box[2], box[1]:box[3]]
    assert doc["total"]["count"] == len(sub)
    assert {g["value"]: g["count"] for g in doc["groups"]} == sub.place.value_counts().to_dict()


@pytest.mark.parametrize("path,params,body", [
    ("nearest", {}, None), ("nearest", {"point": "1"}, None), ("nearest", {"point": "a,b"}, None),
    ("nearest", {"point": "126,37", "limit": "0"}, None), ("nearest", {"point": "126,95"}, None),
    ("within-distance", {"point": "126,37"}, None), ("within-distance", {"point": "126,37", "distance": "-5"}, None),
    ("within-distance", {"point": "126,37", "distance": "1e12"}, None),
    ("within-distance", {"point": "126,37", "distance": "nan"}, None),
    ("stats", {"group-by": "nosuch"}, None), ("stats", {"sum": "name"}, None),
    ("stats", {"area": "districts"}, None), ("stats", {"area": "districts:x'--"}, None),
    ("stats", {"bbox": "1,2,3"}, None), ("stats", {"bbox": "126,37,127,38", "area": "districts:1"}, None),
])
def test_bad_spatial_parameters_are_400(anon, path, params, body):
    assert_problem(anon.get(f"/collections/bike_stations/{path}", params=params), 400)


@pytest.mark.parametrize("body", [
    b"", b"not json", b'{"type": "Point"}', b'{"type": "Point", "coordinates": [1]}',
    b'{"type": "FeatureCollection", "features": []}', b'{"type": "Polygon", "coordinates": [[[0,0],[1,1]]]}',
    b'[1, 2, 3]', b'{"type": "Point", "coordinates": [1e400, 1]}',
])
def test_bad_posted_geometries_are_400(anon, body):
    r = anon.post("/collections/bike_stations/intersecting", content=body,
                  headers={"Content-Type": "application/json"})
    assert_problem(r, 400)


def test_oversized_posted_geometry_is_413(make_settings, feature_world):
    srv = start_server(make_settings(database_url=feature_world.db_url, max_request_body_kb=4))
    try:
        with srv.client() as c:
            ring = [[126 + i * 1e-4, 37.0] for i in range(2000)] + [[126, 37.1], [126, 37.0]]
            r = c.post("/collections/bike_stations/intersecting", json={"type": "Polygon", "coordinates": [ring]})
            assert_problem(r, 413)
    finally:
        srv.stop()
