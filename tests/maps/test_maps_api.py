"""The maps API over HTTP: publishing rules, drafts hidden from the public, errors as problem+json."""

from __future__ import annotations

import uuid

SPEC = {"title": {"ko": "시험 지도", "en": "Test map"}, "indicator": "turnout", "area_unit": "district",
        "classification": {"method": "equal_interval", "k": 4}}


def _new_id() -> str:
    return "t-" + uuid.uuid4().hex[:8]


def test_the_gallery_lists_the_published_demo_maps_in_korean_and_english(anon):
    listed = anon.get("/maps", params={"f": "json"}).json()["maps"]
    assert {"turnout-2022", "cctv-new-density", "bike-access-dong", "bike-hex-500m"} <= {m["id"] for m in listed}
    assert all(m["status"] == "published" for m in listed)
    ko = anon.get("/maps", headers={"Accept-Language": "en;q=0.5, ko"}).text
    en = anon.get("/maps", params={"lang": "en"}).text
    assert '<html lang="ko">' in ko and "정책지도 갤러리" in ko
    assert '<html lang="en">' in en and "Turnout, 2022 presidential election" in en
    found = anon.get("/maps", params={"q": "따릉이", "f": "json"}).json()["maps"]
    assert {m["id"] for m in found} == {"bike-access-dong", "bike-hex-500m"}


def test_a_draft_is_404_to_the_public_and_visible_to_planners_until_published(anon, planner):
    spec = {**SPEC, "id": _new_id()}
    r = planner.post("/maps", json=spec)
    assert r.status_code == 201 and r.json()["status"] == "draft", r.text
    mid = spec["id"]
    for path in (f"/maps/{mid}", f"/maps/{mid}/v/1", f"/maps/{mid}/data.json", f"/maps/{mid}/map.png",
                 f"/maps/{mid}/map.html", f"/maps/{mid}/embed"):
        assert anon.get(path).status_code == 404, path
    assert mid not in {m["id"] for m in anon.get("/maps", params={"f": "json", "drafts": "true"}).json()["maps"]}
    assert mid in {m["id"] for m in planner.get("/maps", params={"f": "json", "drafts": "true"}).json()["maps"]}
    assert planner.get(f"/maps/{mid}", params={"f": "json"}).json()["status"] == "draft"
    assert anon.post(f"/maps/{mid}/publish").status_code == 401
    assert planner.post(f"/maps/{mid}/publish").json()["version"] == 1
    assert anon.get(f"/maps/{mid}").status_code == 200
    # a second version is a draft again: the public keeps seeing version 1
    planner.post("/maps", json={**spec, "classification": {"method": "quantiles", "k": 3}})
    doc = anon.get(f"/maps/{mid}", params={"f": "json"}).json()
    assert doc["version"] == 1 and doc["method"] == "equal_interval"
    assert anon.get(f"/maps/{mid}/v/2").status_code == 404
    assert planner.get(f"/maps/{mid}/v/2", params={"f": "json"}).json()["method"] == "quantiles"


def test_publishing_a_map_over_a_restricted_layer_fails_with_a_clear_message(planner, anon):
    spec = {**SPEC, "id": _new_id(), "overlays": [{"layer": "underground_facilities"}]}
    assert planner.post("/maps", json=spec).status_code == 201      # planners may draft it
    r = planner.post(f"/maps/{spec['id']}/publish")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert "a public map may only use public layers" in body["detail"]
    assert "overlay layer 'underground_facilities' is restricted" in body["detail"]
    assert anon.get(f"/maps/{spec['id']}").status_code == 404


def test_the_public_cannot_even_draft_over_a_restricted_layer_it_cannot_see(anon):
    r = anon.post("/maps", json={**SPEC, "id": _new_id()})
    assert r.status_code == 401 and "planner" in r.json()["detail"]


def test_invalid_specs_are_422_problems_listing_each_field(planner):
    r = planner.post("/maps", json={"id": "x", "title": "T", "indicator": "turnout", "area_unit": "district",
                                    "palette": {"name": "rainbow"}, "classification": {"k": 1}})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"palette.name", "classification.k"}
    r = planner.post("/maps", json={**SPEC, "id": _new_id(), "year": 1999})
    assert r.status_code == 422 and "1999 has no values; choose one of [2022]" in r.json()["detail"]
    r = planner.post("/maps", json={**SPEC, "id": _new_id(), "indicator": "nope"})
    assert r.status_code == 422 and "no indicator 'nope'" in r.json()["detail"]
    r = planner.post("/maps", content=b"id: [", headers={"content-type": "application/yaml"})
    assert r.status_code == 422 and "not valid YAML" in r.json()["detail"]
    r = planner.post("/maps", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_a_spec_in_yaml_with_a_year_slider_and_the_data_table(planner, anon):
    mid = _new_id()
    yaml_spec = (f"id: {mid}\ntitle: {{ko: CCTV, en: CCTV}}\nindicator: cctv_new_per_km2\n"
                 "area_unit: district\nclassification: {method: natural_breaks, k: 4}\n")
    assert planner.post("/maps?publish=true", content=yaml_spec.encode(),
                        headers={"content-type": "application/yaml"}).status_code == 201
    doc = anon.get(f"/maps/{mid}/data.json", params={"lang": "en"}).json()
    assert doc["years"] == [2014, 2015, 2016] and len(doc["areas"]) == 25
    assert len(doc["table"]["rows"]) == 25 and doc["table"]["years"] == [2014, 2015, 2016]
    assert doc["summary"]["2016"].startswith("In 2016, New CCTV density across 25 areas")
    assert doc["data_versions"]["indicator"]["cctv_new_per_km2"] > 0
    page = anon.get(f"/maps/{mid}").text
    assert 'type="range"' in page and "<table>" in page and "&lt;iframe" in page


def test_indicator_values_join_to_geometry_and_restricted_indicators_stay_hidden(anon):
    geo = anon.get("/indicators/turnout/values", params={"f": "geojson"})
    assert geo.status_code == 200 and geo.headers["content-type"] == "application/geo+json"
    feats = geo.json()["features"]
    assert len(feats) == 25 and all(70 < f["properties"]["values"]["2022"] < 85 for f in feats)
    assert anon.get("/indicators/turnout/values", params={"year": 1990}).status_code == 400
    assert anon.get("/indicators/missing").status_code == 404
    units = {u["id"] for u in anon.get("/area-units").json()["area_units"]}
    assert units == {"district", "neighbourhood", "hex500"}


def test_png_and_offline_html_carry_title_legend_and_source(anon):
    png = anon.get("/maps/turnout-2022/map.png", params={"w": 400})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    html = anon.get("/maps/turnout-2022/map.html", params={"lang": "en"}).text
    assert "Turnout, 2022 presidential election" in html and 'id="pm-legend"' in html and "Source:" in html
    import re

    # nothing to fetch: no script, stylesheet, image or frame from another host (links are fine)
    assert not re.findall(r'<(?:script|link|img|iframe)[^>]*(?:src|href)\s*=\s*["\']?(?:https?:)?//', html)
    assert "cdn.jsdelivr" not in html and "L.geoJSON" in html


def test_count_maps_label_classes_with_whole_numbers_that_do_not_overlap(anon):
    """Counts per hexagon: classes read "0", "1", "3 – 4"..., never "0.0 – 1.0"."""
    doc = anon.get("/maps/bike-hex-500m/data.json").json()
    rows = doc["legend"][str(doc["year"])]
    ranges = []
    for row in rows:
        assert "." not in row["label"], row
        parts = [int(p.replace(",", "")) for p in row["label"].split(" – ")]
        ranges.append((parts[0], parts[-1]))
    for (_, prev_last), (first, last) in zip(ranges, ranges[1:]):
        assert first == prev_last + 1 and last >= first
    assert sum(r["count"] for r in rows) == len(doc["areas"])
