"""Each rendering in headless Chromium: no console errors, legend present, screenshot saved."""

from __future__ import annotations

import pytest

from tests.browser import chromium_page


@pytest.mark.browser
def test_offline_folium_html_works_from_a_file_with_networking_off(anon, tmp_path, artifacts):
    path = tmp_path / "cctv.html"
    path.write_bytes(anon.get("/maps/cctv-new-density/map.html", params={"lang": "en"}).content)
    with chromium_page() as (page, errors, requests):
        page.context.set_offline(True)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else route.abort())
        page.goto(path.as_uri())
        page.wait_for_function("window.__policyMap && window.__policyMap.ready", timeout=30_000)
        legend = page.inner_text("#pm-legend")
        areas = page.evaluate("window.__policyMap.areas")
        page.select_option("#pm-year", "2014")
        year = page.evaluate("window.__policyMap.year()")
        page.screenshot(path=str(artifacts / "maps-folium-offline.png"))
    assert errors == []
    assert [u for u in requests if not u.startswith("file:")] == []
    assert "New CCTV density" in legend and areas == 25 and year == "2014"


@pytest.mark.browser
def test_live_maplibre_page_draws_the_choropleth_from_our_tiles(map_world, artifacts):
    base = map_world.server.url
    with chromium_page() as (page, errors, requests):
        page.goto(f"{base}/maps/bike-access-dong?lang=ko")
        # (the pages' CSP forbids the eval behind wait_for_function: wait on an attribute)
        page.wait_for_selector("html[data-map-state]", state="attached", timeout=60_000)
        state = page.evaluate("({errors: window.__policyMap.errors, ms: window.__policyMap.renderMs})")
        drawn = page.evaluate("window.__map.queryRenderedFeatures({layers: ['pm-fill']}).length")
        overlay = page.evaluate("window.__map.queryRenderedFeatures().filter(f => f.sourceLayer === "
                                "'bike_stations').length")
        legend = page.inner_text("#pm-legend")
        summary = page.inner_text("#pm-summary")
        page.screenshot(path=str(artifacts / "maps-live-bike-access-dong.png"))
    assert state["errors"] == [] and errors == []
    assert drawn > 100 and overlay > 100
    assert "따릉이 대여소 밀도" in legend and "가장 높고" in summary
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]


@pytest.mark.browser
def test_year_slider_recolours_the_live_map(map_world, artifacts):
    with chromium_page(viewport=(390, 844)) as (page, errors, _):      # a phone
        page.goto(f"{map_world.server.url}/maps/cctv-new-density?lang=en")
        page.wait_for_selector("html[data-map-state=ready]", state="attached", timeout=60_000)
        before = page.evaluate("JSON.stringify(window.__map.getPaintProperty('pm-fill', 'fill-color'))")
        page.fill("#pm-year", "0")
        page.dispatch_event("#pm-year", "input")
        after = page.evaluate("JSON.stringify(window.__map.getPaintProperty('pm-fill', 'fill-color'))")
        shown = page.inner_text("#pm-year-out")
        page.screenshot(path=str(artifacts / "maps-live-mobile-2014.png"), full_page=True)
    assert errors == [] and shown == "2014" and before != after


@pytest.mark.browser
def test_gallery_page_shows_published_maps_with_thumbnails(map_world, artifacts):
    with chromium_page() as (page, errors, _):
        page.goto(f"{map_world.server.url}/maps?lang=en")
        page.wait_for_load_state("networkidle")
        cards = page.locator("li.card").count()
        loaded = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
        page.screenshot(path=str(artifacts / "maps-gallery.png"), full_page=True)
    assert errors == [] and cards >= 5 and loaded >= 3


@pytest.mark.browser
def test_the_live_map_refreshes_its_overlay_when_a_feature_is_edited(map_world, planner):
    """A citizen's open policy map follows its layers' change feeds: a station moved by a
    planner is drawn at its new place without a reload."""
    assert planner.patch("/layers/bike_stations", json={"editable": True}).status_code == 200
    with chromium_page() as (page, errors, requests):
        page.goto(f"{map_world.server.url}/maps/bike-access-dong?lang=en")
        page.wait_for_selector("html[data-map-state=ready]", state="attached", timeout=60_000)
        assert page.evaluate("window.__policyMap.feeds") == 2          # the areas and the stations
        page.wait_for_timeout(500)                                      # the feeds connected
        n = len(requests)
        fid = page.evaluate("window.__map.queryRenderedFeatures().find(f => f.sourceLayer === "
                            "'bike_stations').id")
        etag = planner.get(f"/collections/bike_stations/items/{fid}").headers["etag"]
        b = page.evaluate("window.__map.getBounds().toArray()")
        there = [(b[0][0] + b[1][0]) / 2, (b[0][1] + b[1][1]) / 2]       # the middle of the screen
        r = planner.patch(f"/collections/bike_stations/items/{fid}",
                          json={"geometry": {"type": "Point", "coordinates": there}}, headers={"If-Match": etag})
        assert r.status_code == 204
        deadline = 100
        while not page.evaluate("(window.__policyMap.refreshes || 0) >= 1") and deadline:
            page.wait_for_timeout(100)
            deadline -= 1
        assert deadline, "no refresh"
        page.wait_for_timeout(300)
        page.wait_for_selector("html[data-map-state=ready]", state="attached")
        deadline = 100
        point = page.evaluate(f"window.__map.project({there})")
        box = [[point["x"] - 4, point["y"] - 4], [point["x"] + 4, point["y"] + 4]]
        while deadline and fid not in page.evaluate(
                f"window.__map.queryRenderedFeatures({box}).filter(f => f.sourceLayer === "
                "'bike_stations').map(f => f.id)"):
            page.wait_for_timeout(100)
            deadline -= 1
        later = [u for u in requests[n:] if ".mvt" in u]
    assert deadline, "the moved station is not drawn at its new place"
    assert errors == []
    assert later and all("r=" in u for u in later)


@pytest.mark.browser
def test_the_live_map_compares_two_years_with_a_swipe(map_world):
    with chromium_page() as (page, errors, _):
        page.goto(f"{map_world.server.url}/maps/cctv-new-density?lang=en")
        page.wait_for_selector("html[data-map-state=ready]", state="attached", timeout=60_000)
        shown = page.evaluate("window.__policyMap.year")
        other = page.evaluate("window.__policyMap && JSON.parse(document.getElementById('pm-data').textContent)"
                              ".years.find(y => String(y) !== window.__policyMap.year)")
        page.select_option("#pm-compare", str(other))
        deadline = 200
        while deadline and not page.evaluate("!!(window.__compareMap && window.__compareMap.loaded() && "
                                             "window.__compareMap.queryRenderedFeatures({layers: ['pm-fill']}).length)"):
            page.wait_for_timeout(100)
            deadline -= 1
        assert deadline, "the second year was not drawn"
        main_fill = page.evaluate("JSON.stringify(window.__map.getPaintProperty('pm-fill', 'fill-color'))")
        other_fill = page.evaluate("JSON.stringify(window.__compareMap.getPaintProperty('pm-fill', 'fill-color'))")
        assert main_fill != other_fill
        assert page.inner_text("#map-divider") == str(other)
        assert page.evaluate("document.getElementById('map-compare').style.clipPath") == "inset(0px 0px 0px 50%)"
        page.fill("#pm-swipe", "30")
        page.dispatch_event("#pm-swipe", "input")
        assert page.evaluate("document.getElementById('map-compare').style.clipPath") == "inset(0px 0px 0px 30%)"
        # the second map follows the first
        page.evaluate("window.__map.jumpTo({zoom: window.__map.getZoom() + 1})")
        assert page.evaluate("Math.abs(window.__compareMap.getZoom() - window.__map.getZoom()) < 1e-9")
        page.select_option("#pm-compare", "")
        assert page.evaluate("window.__compareMap === null && document.getElementById('map-compare').hidden")
        assert page.evaluate("window.__policyMap.year") == shown
    assert errors == []


@pytest.mark.browser
def test_the_live_map_names_its_areas_offline(map_world):
    """Context for a citizen (#20 item 16): the areas' names drawn over the choropleth, from
    the platform's own glyphs and fonts (no request leaves the server)."""
    base = map_world.server.url
    with chromium_page() as (page, errors, requests):
        page.goto(f"{base}/maps/cctv-new-density?lang=ko")
        page.wait_for_selector("html[data-map-state=ready]", state="attached", timeout=60_000)
        names = page.evaluate("[...new Set(window.__map.queryRenderedFeatures()"
                              ".filter(f => f.layer.type === 'symbol').map(f => f.properties.name))]")
    assert errors == [] and all(u.startswith(base) for u in requests)
    assert len(names) >= 10 and any(n and n.endswith("구") for n in names), names
