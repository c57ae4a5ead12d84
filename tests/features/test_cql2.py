"""CQL2 filtering (Part 3), text and JSON, checked against an independent evaluation."""

from __future__ import annotations

import geopandas as gpd
import orjson
import pytest
from pyproj import Geod

from .conftest import DISTRICTS, assert_problem

CITY_HALL = (126.9780, 37.5665)


def matched(client, params, layer="bike_stations"):
    r = client.get(f"/collections/{layer}/items", params={"limit": 1, **params})
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def text(client, expr, layer="bike_stations", **extra):
    return matched(client, {"filter": expr, **extra}, layer)


def as_json(client, expr: dict, layer="bike_stations", **extra):
    return matched(client, {"filter": orjson.dumps(expr).decode(), "filter-lang": "cql2-json", **extra}, layer)


@pytest.fixture(scope="module")
def junggu():
    gu = gpd.read_file(DISTRICTS)
    return gu.loc[gu.SIG_ENG_NM == "Jung-gu"].geometry.iloc[0]


def test_comparison_text_and_json_agree_with_pandas(anon, bikes):
    expected = int((bikes.numOfUnits > 15).sum())
    assert text(anon, "numofunits > 15") == expected
    assert as_json(anon, {"op": ">", "args": [{"property": "numofunits"}, 15]}) == expected
    assert text(anon, "numofunits <> 10") == int((bikes.numOfUnits != 10).sum())


def test_like_in_between(anon, bikes):
    assert text(anon, "name LIKE '%역%'") == int(bikes.name.str.contains("역").sum())
    assert as_json(anon, {"op": "like", "args": [{"property": "name"}, "%역%"]}) == int(bikes.name.str.contains("역").sum())
    two = bikes.place.isin(["마포구", "종로구"])
    assert text(anon, "place IN ('마포구', '종로구')") == int(two.sum())
    assert as_json(anon, {"op": "in", "args": [{"property": "place"}, ["마포구", "종로구"]]}) == int(two.sum())
    between = bikes.numOfUnits.between(10, 20)
    assert text(anon, "numofunits BETWEEN 10 AND 20") == int(between.sum())
    assert as_json(anon, {"op": "between", "args": [{"property": "numofunits"}, 10, 20]}) == int(between.sum())
    assert text(anon, "numofunits NOT BETWEEN 10 AND 20") == int((~between).sum())


def test_logical_operators_and_is_null(planner, feature_world):
    mains = feature_world.gas_mains
    assert text(planner, "note IS NULL", "gas_mains") == int(mains.note.isna().sum()) > 0
    assert as_json(planner, {"op": "isNull", "args": [{"property": "note"}]}, "gas_mains") == int(mains.note.isna().sum())
    expected = int((((mains.material == "PE") | (mains.diameter_mm >= 300)) & ~(mains.diameter_mm == 600)).sum())
    expr = "(material = 'PE' OR diameter_mm >= 300) AND NOT (diameter_mm = 600)"
    assert text(planner, expr, "gas_mains") == expected
    js = {"op": "and", "args": [
        {"op": "or", "args": [{"op": "=", "args": [{"property": "material"}, "PE"]},
                              {"op": ">=", "args": [{"property": "diameter_mm"}, 300]}]},
        {"op": "not", "args": [{"op": "=", "args": [{"property": "diameter_mm"}, 600]}]}]}
    assert as_json(planner, js, "gas_mains") == expected


def test_case_insensitive_comparison(planner, feature_world):
    n = int((feature_world.gas_mains.material == "PE").sum())
    assert text(planner, "CASEI(material) = casei('pe')", "gas_mains") == n


def test_date_comparison_and_temporal_operator(planner, feature_world):
    import datetime as dt

    n = sum(d > dt.date(2020, 1, 1) for d in feature_world.gas_mains.installed)
    assert text(planner, "installed > DATE('2020-01-01')", "gas_mains") == n
    assert text(planner, "T_AFTER(installed, DATE('2020-01-01'))", "gas_mains") == n
    assert as_json(planner, {"op": ">", "args": [{"property": "installed"}, {"date": "2020-01-01"}]}, "gas_mains") == n


def test_s_intersects_and_s_within_with_a_real_district(anon, bikes, junggu):
    inside = int(bikes.intersects(junggu).sum())
    assert inside > 10
    assert text(anon, f"S_INTERSECTS(geometry, {junggu.wkt})") == inside
    assert text(anon, f"S_WITHIN(geometry, {junggu.wkt})") == int(bikes.within(junggu).sum())
    assert as_json(anon, {"op": "s_intersects", "args": [{"property": "geometry"}, junggu.__geo_interface__]}) == inside


def test_s_contains_finds_the_district_of_city_hall(anon):
    r = anon.get("/collections/districts/items",
                 params={"filter": f"S_CONTAINS(geometry, POINT({CITY_HALL[0]} {CITY_HALL[1]}))"})
    feats = r.json()["features"]
    assert [f["properties"]["sig_eng_nm"] for f in feats] == ["Jung-gu"]


def test_s_dwithin_uses_metres_on_the_ellipsoid(anon, bikes):
    geod = Geod(ellps="WGS84")
    _, _, dist = geod.inv([CITY_HALL[0]] * len(bikes), [CITY_HALL[1]] * len(bikes),
                          bikes.geometry.x.values, bikes.geometry.y.values)
    expected = int((dist <= 700).sum())
    assert expected > 3
    assert text(anon, f"S_DWITHIN(geometry, POINT({CITY_HALL[0]} {CITY_HALL[1]}), 700, meters)") == expected
    assert as_json(anon, {"op": "s_dwithin", "args": [
        {"property": "geometry"}, {"type": "Point", "coordinates": list(CITY_HALL)}, 0.7, "kilometers"]}) == expected


def test_bbox_literal_and_filter_crs(anon, bikes):
    box = (126.95, 37.52, 127.03, 37.58)
    inside = int(bikes.cx[box[0]:box[2], box[1]:box[3]].shape[0])
    assert text(anon, f"S_INTERSECTS(geometry, BBOX({box[0]}, {box[1]}, {box[2]}, {box[3]}))") == inside
    assert as_json(anon, {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(box)}]}) == inside
    # filter-crs EPSG:4326: literals are lat/lon.
    lat_lon = f"S_INTERSECTS(geometry, POLYGON(({box[1]} {box[0]}, {box[1]} {box[2]}, {box[3]} {box[2]}, " \
              f"{box[3]} {box[0]}, {box[1]} {box[0]})))"
    assert text(anon, lat_lon, **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}) == inside


def test_filter_combines_with_bbox_and_paging(anon, bikes):
    box = (126.95, 37.52, 127.03, 37.58)
    sub = bikes.cx[box[0]:box[2], box[1]:box[3]]
    assert matched(anon, {"bbox": ",".join(map(str, box)), "filter": "numofunits >= 10"}) == int(
        (sub.numOfUnits >= 10).sum())


def test_spatial_filter_on_polygons_of_another_layer_shape(planner, feature_world, junggu):
    mains = feature_world.gas_mains
    assert text(planner, f"S_INTERSECTS(geometry, {junggu.wkt})", "gas_mains") == int(mains.intersects(junggu).sum())
    assert text(planner, f"S_CROSSES(geometry, {junggu.boundary.wkt})", "gas_mains") >= 0


@pytest.mark.parametrize("expr,lang", [
    ("numofunits >", None), ("nosuch = 1", None), ("name = 5", None), ("numofunits = 'five'", None),
    ("numofunits LIKE 'a%'", None), ("S_INTERSECTS(name, POINT(1 2))", None),
    ("S_INTERSECTS(geometry, POINT(500 2))", None), ("S_DWITHIN(geometry, POINT(127 37), 5, parsecs)", None),
    ("unknownfn(name) = 'a'", None), ("name = 'a'; DROP TABLE gis_meta.layers; --", None),
    ("\"name\" = 'x') OR 1=1 --", None), ("1 = 1", "cql3-text"), ("{not json", "cql2-json"),
    ('{"op": "=", "args": [{"property": "name"}]}', "cql2-json"),
    ('{"op": "drop", "args": []}', "cql2-json"), ('{"op": "=", "args": [{"property": "pg_sleep"}, 1]}', "cql2-json"),
    ("numofunits / 0 > 1", None), ("x" * 30_000, None),
])
def test_invalid_filters_are_400_and_do_no_harm(anon, expr, lang):
    params = {"filter": expr}
    if lang:
        params["filter-lang"] = lang
    assert_problem(anon.get("/collections/bike_stations/items", params=params), 400)
    assert anon.get("/collections/bike_stations/items", params={"limit": 1}).json()["numberMatched"] == 1540


def test_filter_lang_without_filter_is_400(anon):
    assert_problem(anon.get("/collections/bike_stations/items", params={"filter-lang": "cql2-text"}), 400)
