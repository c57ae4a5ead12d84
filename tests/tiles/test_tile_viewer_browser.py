"""The viewer page in headless Chromium: MapLibre shows the layers from our tiles."""

from __future__ import annotations

import pytest

from tests.browser import chromium, wait_until


@pytest.mark.browser
def test_viewer_shows_the_layers_without_console_errors(city_server, planner_token, artifacts):

    base = city_server.url
    errors: list[str] = []
    requests: list[str] = []
    tile_statuses: list[int] = []
    with chromium((1024, 768)) as ctx:
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: tile_statuses.append(r.status) if ".mvt" in r.url else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}/viewer?layers=districts,roads")
        wait_until(page, "!!(window.__viewer && (window.__viewer.ready || window.__viewer.errors.length))",
                   60)
        state = page.evaluate("window.__viewer")
        rendered = page.evaluate(
            "window.__map.queryRenderedFeatures().map(f => f.sourceLayer)")
        page.screenshot(path=str(artifacts / "tile-viewer.png"))
    assert state["errors"] == [] and errors == []
    assert {"districts", "roads"} <= set(rendered)
    assert tile_statuses and all(s in (200, 204) for s in tile_statuses)
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]


@pytest.mark.browser
def test_viewer_reports_a_restricted_layer_as_missing_to_anonymous_visitors(city_server):

    with chromium(None) as ctx:
        page = ctx.new_page()
        page.goto(f"{city_server.url}/viewer?layers=facilities")
        wait_until(page, "!!(window.__viewer && window.__viewer.errors.length)", 30)
        errors = page.evaluate("window.__viewer.errors")
    assert errors == ["No layer 'facilities'."]


@pytest.mark.browser
def test_viewer_refreshes_when_a_feature_is_edited(city_server, planner_token):
    """The viewer listens to the layer's change feed: an edit elsewhere makes it fetch the
    tiles again, without reloading the page."""

    auth = {"Authorization": f"Bearer {planner_token}"}
    with city_server.client(headers=auth) as c:
        assert c.patch("/layers/roads", json={"editable": True}).status_code == 200
    errors: list[str] = []
    tiles_after: list[str] = []
    with chromium((800, 600)) as ctx:
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{city_server.url}/viewer?layers=roads")
        wait_until(page, "!!(window.__viewer && window.__viewer.ready && window.__viewer.feeds)", 60)
        page.wait_for_timeout(500)              # the feed connected
        page.on("request", lambda r: tiles_after.append(r.url) if ".mvt" in r.url else None)
        with city_server.client(headers=auth) as c:
            etag = c.get("/collections/roads/items/1").headers["etag"]
            assert c.patch("/collections/roads/items/1", json={"properties": {"surface": "concrete"}},
                           headers={"If-Match": etag}).status_code == 204
        wait_until(page, "(window.__viewer.refreshes || 0) >= 1", 10)
        page.wait_for_timeout(500)
    assert errors == []
    assert tiles_after and all("&r=" in u for u in tiles_after)
