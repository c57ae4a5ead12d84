"""Edits of the facilities and roads layers follow the rules their ingest follows (#17)."""

from __future__ import annotations


def test_facility_edits_are_checked_against_the_domain(dc, planner):
    assert dc.patch("/layers/underground_facilities", json={"editable": True}, headers=planner).status_code == 200
    item = dc.get("/collections/underground_facilities/items/1", headers=planner)
    assert item.status_code == 200
    etag = item.headers["etag"]
    cases = [
        ({"kind": "unicorn"}, "unknown facility kind"),
        ({"depth_min_m": -1.0}, "negative depth"),
        ({"depth_min_m": 2.0, "depth_max_m": 1.0}, "less than depth_min_m"),
        ({"depth_min_m": 80.0, "depth_max_m": 90.0}, "plausible"),
        ({"diameter_mm": 0}, "diameter must be positive"),
    ]
    for props, text in cases:
        r = dc.patch("/collections/underground_facilities/items/1", json={"properties": props},
                     headers={**planner, "If-Match": etag})
        assert r.status_code == 422 and text in r.json()["detail"], (props, r.text)
        assert r.json()["parameter"] in props
    # nothing was written by the refused edits
    assert dc.get("/collections/underground_facilities/items/1", headers=planner).headers["etag"] == etag
    # a Korean kind name is normalised to its code, as at ingest
    r = dc.patch("/collections/underground_facilities/items/1", json={"properties": {"kind": "상수도"}},
                 headers={**planner, "If-Match": etag})
    assert r.status_code == 204, r.text
    assert dc.get("/collections/underground_facilities/items/1", headers=planner).json()["properties"]["kind"] == "water"


def test_road_edits_are_checked_against_the_domain(dc, planner):
    assert dc.patch("/layers/roads", json={"editable": True}, headers=planner).status_code == 200
    etag = dc.get("/collections/roads/items/1").headers["etag"]
    r = dc.patch("/collections/roads/items/1", json={"properties": {"width_m": 250.0}},
                 headers={**planner, "If-Match": etag})
    assert r.status_code == 422 and "width" in r.json()["detail"]
    new = {"type": "Feature", "properties": {"road_class": "flying", "width_m": 8.0},
           "geometry": {"type": "LineString", "coordinates": [[126.98, 37.56], [126.981, 37.56]]}}
    r = dc.post("/collections/roads/items", json=new, headers=planner)
    assert r.status_code == 422 and "unknown road class" in r.json()["detail"]
