"""bbox parsing and OGC API Features Part 2 (crs, bbox-crs, Content-Crs, axis order)."""

from __future__ import annotations

import pytest
from pyproj import Transformer

from .conftest import assert_problem

BOX = (126.95, 37.52, 127.03, 37.58)


def _count_in(bikes, box):
    minx, miny, maxx, maxy = box
    return int(((bikes.geometry.x >= minx) & (bikes.geometry.x <= maxx)
                & (bikes.geometry.y >= miny) & (bikes.geometry.y <= maxy)).sum())


def test_bbox_returns_exactly_the_stations_inside(anon, bikes):
    doc = anon.get("/collections/bike_stations/items", params={"bbox": ",".join(map(str, BOX)), "limit": 1}).json()
    assert doc["numberMatched"] == _count_in(bikes, BOX) > 20


def test_bbox_with_17_significant_digits_and_encoded_commas(anon, bikes):
    # GDAL sends 17 significant digits; OWSLib percent-encodes the commas.
    raw = "126.950000000000003%2C37.5200000000000031%2C127.030000000000001%2C37.5799999999999983"
    r = anon.get(f"/collections/bike_stations/items?limit=1&bbox={raw}")
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == _count_in(bikes, BOX)


def test_six_number_bbox_ignores_heights(anon, bikes):
    minx, miny, maxx, maxy = BOX
    doc = anon.get("/collections/bike_stations/items",
                   params={"bbox": f"{minx},{miny},-10,{maxx},{maxy},500", "limit": 1}).json()
    assert doc["numberMatched"] == _count_in(bikes, BOX)


def test_bbox_crs_epsg_4326_is_read_in_lat_lon_order(anon, bikes):
    minx, miny, maxx, maxy = BOX
    doc = anon.get("/collections/bike_stations/items", params={
        "bbox": f"{miny},{minx},{maxy},{maxx}", "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326",
        "limit": 1}).json()
    assert doc["numberMatched"] == _count_in(bikes, BOX)


def test_bbox_crs_in_korean_tm_metres(anon, bikes):
    # EPSG:5186 axes are northing, easting: bbox is minN,minE,maxN,maxE.
    to5186 = Transformer.from_crs("EPSG:4326", "EPSG:5186", always_xy=True)
    e, n = to5186.transform(bikes.geometry.x.values, bikes.geometry.y.values)
    box = (195_000.0, 545_000.0, 205_000.0, 552_000.0)     # minE, minN, maxE, maxN
    inside = int(((e >= box[0]) & (e <= box[2]) & (n >= box[1]) & (n <= box[3])).sum())
    doc = anon.get("/collections/bike_stations/items", params={
        "bbox": f"{box[1]},{box[0]},{box[3]},{box[2]}", "bbox-crs": "EPSG:5186", "limit": 1}).json()
    assert inside > 10
    assert abs(doc["numberMatched"] - inside) <= 1   # edges are densified, not exact curves


def test_crs_epsg_4326_output_is_lat_lon_with_content_crs(anon):
    base = anon.get("/collections/bike_stations/items/10").json()
    r = anon.get("/collections/bike_stations/items/10", params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4326>"
    lon, lat = base["geometry"]["coordinates"]
    assert r.json()["geometry"]["coordinates"] == [lat, lon]


@pytest.mark.parametrize("srid,always_xy_swap", [(3857, False), (5186, True), (5179, True)])
def test_projected_output_crs_matches_pyproj(anon, srid, always_xy_swap):
    base = anon.get("/collections/bike_stations/items/10").json()
    lon, lat = base["geometry"]["coordinates"]
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{srid}", always_xy=True).transform(lon, lat)
    r = anon.get("/collections/bike_stations/items/10", params={"crs": f"[EPSG:{srid}]"})
    assert r.status_code == 200, r.text
    assert r.headers["content-crs"] == f"<http://www.opengis.net/def/crs/EPSG/0/{srid}>"
    got = r.json()["geometry"]["coordinates"]
    expected = [y, x] if always_xy_swap else [x, y]
    assert got == pytest.approx(expected, abs=0.01)


def test_items_page_in_another_crs_keeps_count(anon):
    a = anon.get("/collections/districts/items", params={"crs": "EPSG:5179", "limit": 3}).json()
    assert a["numberMatched"] == 25 and a["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


@pytest.mark.parametrize("params", [
    {"bbox": "1,2,3"}, {"bbox": "a,b,c,d"}, {"bbox": "127,37,126,38,1"}, {"bbox": "0,50,1,40"},
    {"bbox": "0,0,1,nan"}, {"bbox": "0,0,1,inf"}, {"bbox": "-200,0,1,1"}, {"bbox": "0,-91,1,1"},
    {"bbox": ""}, {"bbox": "1,2,3,4'); DROP TABLE gis_meta.layers; --"},
    {"bbox": "126,37,127,38", "bbox-crs": "EPSG:9999"}, {"bbox-crs": "EPSG:4326"},
    {"crs": "EPSG:2097"}, {"crs": "urn:ogc:def:crs:EPSG::4326'--"}, {"crs": "x" * 500},
])
def test_malformed_bbox_and_unknown_crs_are_400(anon, params):
    assert_problem(anon.get("/collections/bike_stations/items", params=params), 400)


def test_bbox_across_the_antimeridian_is_accepted(anon):
    doc = anon.get("/collections/bike_stations/items", params={"bbox": "170,30,130,40", "limit": 1}).json()
    assert doc["numberMatched"] == 1540     # 170°E..180 and -180..130°E holds all of Seoul
