"""The dig-safety check against hand-built facilities whose answers are known."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import LineString, box

from tests.domains.conftest import CASES, X0, Y0, excavation_lonlat, lonlat


def check(client, headers, **body):
    return client.post("/dig-check", json={"geometry": excavation_lonlat(), "depth_m": 1.0, **body},
                       headers=headers)


def test_each_facility_gets_its_known_risk(dc, planner):
    r = check(dc, planner)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    got = {f["fid"]: f["risk"] for f in doc["facilities"]}
    # fids follow the ingest order of CASES (1-based)
    expected = {i + 1: c[5] for i, c in enumerate(CASES) if c[5] is not None}
    assert got == expected
    assert doc["summary"]["verdict"] == "conflict"
    assert doc["summary"]["high"] == 2 and doc["summary"]["low"] == 1


def test_distances_and_vertical_clearances_are_exact_to_the_millimetre(dc, planner):
    doc = check(dc, planner).json()
    f = {x["fid"]: x for x in doc["facilities"]}
    assert f[1]["horizontal_distance_m"] == 0 and f[1]["vertical_clearance_m"] == pytest.approx(-0.2)
    assert f[2]["vertical_clearance_m"] == pytest.approx(2.0) and f[2]["conflict"] is False
    assert f[3]["horizontal_distance_m"] == 2.0 and f[3]["conflict"] is True
    assert f[4]["horizontal_distance_m"] == 2.01
    assert f[5]["horizontal_distance_m"] == 1.5 and f[5]["vertical_clearance_m"] == pytest.approx(0.5)
    assert f[6]["horizontal_distance_m"] == 3.0
    assert f[9]["vertical_clearance_m"] is None and "unknown" in " ".join(f[9]["reasons"])
    assert f[1]["length_in_area_m"] == pytest.approx(10.0, abs=0.01)


def test_a_shallow_trench_clears_a_deep_main_but_not_a_shallow_cable(dc, planner):
    doc = check(dc, planner, depth_m=0.3).json()
    risks = {f["fid"]: f["risk"] for f in doc["facilities"]}
    assert risks[1] == "medium"        # cable top 0.8 m, dig 0.3 m: 0.5 m >= 0.3 m needed
    doc = check(dc, planner, depth_m=2.8).json()
    risks = {f["fid"]: f["risk"] for f in doc["facilities"]}
    assert risks[2] == "high"          # main top 3.0 m, dig 2.8 m: 0.2 m < 0.3 m needed


def test_owners_to_notify_are_grouped_worst_first(dc, planner):
    doc = check(dc, planner).json()
    owners = [o["owner"] for o in doc["notify"]]
    assert owners[0] in ("KT", "서울도시가스")
    assert doc["notify"][0]["max_risk"] == "high"
    assert set(owners) == {c[2] for c in CASES if c[5] is not None}


def test_a_line_with_width_is_a_trench(dc, planner):
    line = lonlat(LineString([(X0 + 5, Y0 - 5), (X0 + 5, Y0 + 30)]))     # along the telecom line
    r = dc.post("/dig-check", json={"geometry": shapely.geometry.mapping(line), "width_m": 1.0,
                                    "depth_m": 1.0, "buffer_m": 0.5}, headers=planner)
    assert r.status_code == 200, r.text
    fids = {f["fid"]: f for f in r.json()["facilities"]}
    # trench x in [X0+4.5, X0+5.5]: telecom (x=X0+5) inside, water main (x=X0+4) 0.5 m away
    assert fids[1]["horizontal_distance_m"] == 0
    assert fids[2]["horizontal_distance_m"] == pytest.approx(0.5, abs=0.001)
    assert r.json()["request"]["area_m2"] == pytest.approx(35.0, abs=0.01)


def test_geometry_in_utmk_uses_northing_easting_order(dc, planner):
    ring = [[Y0, X0], [Y0, X0 + 10], [Y0 + 10, X0 + 10], [Y0 + 10, X0], [Y0, X0]]
    r = dc.post("/dig-check", json={"geometry": {"type": "Polygon", "coordinates": [ring]},
                                    "geometry_crs": "EPSG:5179", "depth_m": 1.0}, headers=planner)
    assert r.status_code == 200, r.text
    assert r.json()["request"]["area_m2"] == pytest.approx(100.0, abs=0.01)
    assert {f["fid"] for f in r.json()["facilities"]} == {i + 1 for i, c in enumerate(CASES) if c[5]}


def test_geojson_output_has_the_facilities_and_the_area(dc, planner):
    r = dc.post("/dig-check?f=geojson", json={"geometry": excavation_lonlat(), "depth_m": 1.0},
                headers=planner)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 7
    assert doc["features"][0]["geometry"]["type"] == "LineString"
    assert doc["excavation"]["type"] == "Polygon"


def test_anonymous_and_citizens_get_the_missing_layer_answer(dc, citizen):
    for headers in ({}, citizen):
        r = check(dc, headers)
        assert r.status_code == 404
        assert r.json()["detail"] == "No layer 'underground_facilities'."
        assert "KT" not in r.text and "telecom" not in r.text
    r = dc.post("/cross-section", json={"geometry": excavation_lonlat()})
    assert r.status_code == 404


def test_anonymous_gets_404_even_with_bad_input(dc):
    r = dc.post("/dig-check", content=b"{not json")
    assert r.status_code == 404


@pytest.mark.parametrize("body, status, words", [
    ({"depth_m": 1.0}, 400, "geometry is required"),
    ({"geometry": {"type": "Polygon", "coordinates": "x"}, "depth_m": 1}, 400, "not a valid GeoJSON"),
    ({"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "depth_m": 1}, 400, "GeoJSON geometry"),
    ({"depth_m": -1.0}, 400, "must not be negative"),
    ({"depth_m": "deep"}, 400, "must be a number"),
    ({"depth_m": 100}, 400, "at most 30"),
    ({"buffer_m": 500, "depth_m": 1}, 400, "at most 50"),
    ({"geometry_crs": "EPSG:999999", "depth_m": 1}, 400, "Unsupported geometry_crs"),
    ({"geometry": {"type": "Point", "coordinates": [126.97, 37.56]}, "depth_m": 1}, 400, "width_m"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[953000, 1952000], [953010, 1952000],
                                                      [953010, 1952010], [953000, 1952000]]]},
      "depth_m": 1}, 400, "out of range"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[126.9, 37.5], [127.1, 37.5], [127.1, 37.6],
                                                      [126.9, 37.6], [126.9, 37.5]]]},
      "depth_m": 1}, 422, "Split the works"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[126.97, 37.56], [126.9701, 37.5601],
                                                      [126.9701, 37.56], [126.97, 37.5601],
                                                      [126.97, 37.56]]]}, "depth_m": 1}, 422, "not a valid polygon"),
    ({"depth_m": 1, "colour": "red"}, 400, "Unknown fields"),
])
def test_bad_input_is_a_4xx_with_an_actionable_message(dc, planner, body, status, words):
    body = {"geometry": excavation_lonlat(), **body} if "geometry" not in body and "depth_m" in body \
        and words != "geometry is required" else body
    r = dc.post("/dig-check", json=body, headers=planner)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"]


def test_not_json_is_a_400(dc, planner):
    r = dc.post("/dig-check", content=b"{oops", headers={**planner, "content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


def test_cross_section_lists_crossings_by_station_as_json_and_svg(dc, planner):
    from xml.etree import ElementTree

    line = lonlat(LineString([(X0 - 10, Y0 + 5), (X0 + 20, Y0 + 5)]))
    body = {"geometry": shapely.geometry.mapping(line), "depth_m": 1.0}
    r = dc.post("/cross-section", json=body, headers=planner)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["length_m"] == pytest.approx(30.0, abs=0.01)
    stations = [(c["fid"], c["station_m"]) for c in doc["crossings"]]
    # x offsets from X0-10: sewer(X0-3.01)=6.99, sewer(X0-3)=7, power 8.5, water 14, telecom 15,
    # gas 22, gas 22.01, water(unknown) 22.5, heating 25
    assert [s for _, s in stations] == sorted(s for _, s in stations)
    assert dict(stations)[1] == pytest.approx(15.0, abs=0.01)
    assert len(stations) == 9
    svg = dc.post("/cross-section?f=svg", json=body, headers=planner)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(svg.content)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert len(root.findall(f".//{ns}circle")) == 9
    assert root.findall(f".//{ns}line[@class='planned-depth']")


def test_cross_section_refuses_polygons_and_overlong_lines(dc, planner):
    r = dc.post("/cross-section", json={"geometry": excavation_lonlat()}, headers=planner)
    assert r.status_code == 400 and "LineString" in r.json()["detail"]
    long_line = lonlat(LineString([(X0, Y0), (X0 + 10_000, Y0)]))
    r = dc.post("/cross-section", json={"geometry": shapely.geometry.mapping(long_line)}, headers=planner)
    assert r.status_code == 422 and "at most" in r.json()["detail"]


def test_facility_kinds_are_public(dc):
    kinds = {k["code"]: k for k in dc.get("/facility-kinds").json()["kinds"]}
    assert kinds["gas"]["horizontal_clearance_m"] == 2.0 and kinds["gas"]["name_ko"] == "도시가스"


def test_a_big_box_of_the_right_size_passes(dc, planner):
    big = lonlat(box(X0 - 100, Y0 - 100, X0 + 100, Y0 + 100))    # 40,000 m²
    r = dc.post("/dig-check", json={"geometry": shapely.geometry.mapping(big), "depth_m": 2.0},
                headers=planner)
    assert r.status_code == 200 and r.json()["summary"]["facilities"] == len(CASES)
