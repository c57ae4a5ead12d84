"""The whole city, and nothing over it, in the frames citizens use: the offline file (folium)
on a phone, in a 600x450 frame and on a desktop; the embed in a 600x450 iframe.  Measured in
Chromium: the panels and controls do not overlap each other, the map's bounds after load
contain Seoul's extent, and no panel or control covers that extent."""

from __future__ import annotations

import pytest

from tests.maps.test_maps_browser import chromium_page

FRAMES = [(600, 450), (390, 844), (1024, 768)]
_RECT = """(sel) => [...document.querySelectorAll(sel)].map(el => { const b = el.getBoundingClientRect();
  return {sel: sel, x: b.left, y: b.top, w: b.width, h: b.height}; }).filter(r => r.w > 0 && r.h > 0)"""


def _overlap(a, b) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def _rects(page, selectors) -> list[dict]:
    return [r for sel in selectors for r in page.evaluate(_RECT, sel)]


def _check(panels: list[dict], extent: dict, viewport) -> None:
    for i, a in enumerate(panels):
        assert a["x"] >= -0.5 and a["y"] >= -0.5 and a["x"] + a["w"] <= viewport[0] + 0.5 \
            and a["y"] + a["h"] <= viewport[1] + 0.5, a
        for b in panels[:i]:
            assert not _overlap(a, b), (a, b)
        assert not _overlap(a, extent), (a, extent)


@pytest.mark.browser
@pytest.mark.parametrize("viewport", FRAMES, ids=[f"{w}x{h}" for w, h in FRAMES])
@pytest.mark.parametrize("map_id,lang", [("turnout-2022", "ko"), ("cctv-new-density", "en")])
def test_the_offline_map_shows_all_of_seoul_with_nothing_over_it(anon, tmp_path, artifacts, viewport,
                                                               map_id, lang):
    doc = anon.get(f"/maps/{map_id}/data.json").json()
    west, south, east, north = doc["bounds"]
    path = tmp_path / "map.html"
    path.write_bytes(anon.get(f"/maps/{map_id}/map.html", params={"lang": lang}).content)
    with chromium_page(viewport=viewport) as (page, errors, _):
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else route.abort())
        page.goto(path.as_uri())
        page.wait_for_function("window.__policyMap && window.__policyMap.ready", timeout=30_000)
        bounds = page.evaluate("(() => { const b = window.__policyMap.map.getBounds(); "
                               "return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()")
        corners = page.evaluate(f"""(() => {{ const m = window.__policyMap.map, r = m.getContainer().getBoundingClientRect();
            const a = m.latLngToContainerPoint([{north}, {west}]), b = m.latLngToContainerPoint([{south}, {east}]);
            return {{x: r.left + a.x, y: r.top + a.y, w: b.x - a.x, h: b.y - a.y}}; }})()""")
        panels = _rects(page, ["#pm-head", "#pm-legend", "#pm-source", ".leaflet-control-zoom",
                               ".leaflet-control-scale", ".leaflet-control-attribution"])
        page.screenshot(path=str(artifacts / f"maps-offline-{map_id}-{viewport[0]}x{viewport[1]}.png"))
    assert errors == []
    assert len(panels) == 6, panels
    assert bounds[0] <= west and bounds[1] <= south and bounds[2] >= east and bounds[3] >= north, bounds
    _check(panels, corners, viewport)


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_embed_shows_all_of_seoul_and_its_legend_in_a_600x450_frame(map_world, anon, artifacts, lang):
    doc = anon.get("/maps/turnout-2022/data.json").json()
    west, south, east, north = doc["bounds"]
    with chromium_page(viewport=(600, 450)) as (page, errors, _):
        page.goto(f"{map_world.server.url}/maps/turnout-2022/embed?lang={lang}")
        page.wait_for_selector("html[data-map-state=ready]", state="attached", timeout=60_000)
        bounds = page.evaluate("window.__map.getBounds().toArray().flat()")
        corners = page.evaluate(f"""(() => {{ const m = window.__map, r = m.getContainer().getBoundingClientRect();
            const a = m.project([{west}, {north}]), b = m.project([{east}, {south}]);
            return {{x: r.left + a.x, y: r.top + a.y, w: b.x - a.x, h: b.y - a.y}}; }})()""")
        controls = _rects(page, [".maplibregl-ctrl-top-right > *", ".maplibregl-ctrl-bottom-right > *"])
        texts = _rects(page, ["#pm-title", "#pm-legend"])
        scroll = page.evaluate("document.scrollingElement.scrollHeight - innerHeight")
        page.screenshot(path=str(artifacts / f"maps-embed-600x450-{lang}.png"))
    assert errors == []
    assert bounds[0] <= west and bounds[1] <= south and bounds[2] >= east and bounds[3] >= north, bounds
    assert controls
    _check(controls, corners, (600, 450))
    assert len(texts) == 2
    for t in texts:                      # title and legend in the frame, beside the city, not over it
        assert t["y"] + t["h"] <= 450 and not _overlap(t, corners), t
    assert scroll <= 0, "the embed scrolls inside its frame"


@pytest.mark.browser
def test_the_offline_map_names_each_district_inside_it(anon, tmp_path, artifacts):
    from shapely.geometry import Point, shape

    areas = {f["properties"]["name"]: shape(f["geometry"]) for f in
             anon.get("/collections/districts/items", params={"f": "json", "limit": 100}).json()["features"]}
    path = tmp_path / "map.html"
    path.write_bytes(anon.get("/maps/turnout-2022/map.html", params={"lang": "ko"}).content)
    with chromium_page(viewport=(1024, 768)) as (page, errors, _):
        page.goto(path.as_uri())
        page.wait_for_function("window.__policyMap && window.__policyMap.ready", timeout=30_000)
        labels = page.evaluate("""[...document.querySelectorAll('.pm-label span')].map(el => {
            const b = el.getBoundingClientRect(), m = window.__policyMap.map;
            const ll = m.containerPointToLatLng([b.left + b.width / 2, b.top + b.height / 2]);
            return {text: el.textContent, html: el.innerHTML, lon: ll.lng, lat: ll.lat, w: b.width}; })""")
        page.screenshot(path=str(artifacts / "maps-offline-labels.png"))
    assert errors == []
    assert sorted(label["text"] for label in labels) == sorted(areas)
    for label in labels:
        assert label["w"] > 10 and label["html"] == label["text"]          # text, not markup
        assert areas[label["text"]].contains(Point(label["lon"], label["lat"])), label


@pytest.mark.browser
def test_the_offline_dong_map_names_dongs_once_zoomed_in(anon, tmp_path):
    path = tmp_path / "map.html"
    path.write_bytes(anon.get("/maps/bike-access-dong/map.html", params={"lang": "ko"}).content)
    names = {a["name"] for a in anon.get("/maps/bike-access-dong/data.json").json()["areas"]}
    with chromium_page(viewport=(1024, 768)) as (page, errors, _):
        page.goto(path.as_uri())
        page.wait_for_function("window.__policyMap && window.__policyMap.ready", timeout=30_000)
        at_city_scale = page.locator(".pm-label").count()
        page.evaluate("() => { window.__policyMap.map.setView([37.5665, 126.978], 14, {animate: false}); }")
        shown = page.evaluate("[...document.querySelectorAll('.pm-label span')].map(el => el.textContent)")
    assert errors == []
    assert at_city_scale == 0
    assert shown and set(shown) <= names
