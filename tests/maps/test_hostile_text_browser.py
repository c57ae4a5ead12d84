"""Text a planner chooses (map title, legend title) is text everywhere a browser shows it:
in the embed snippet pasted into a third-party page, on the live page and in the offline map."""

from __future__ import annotations

import uuid

import pytest

from .test_maps_browser import chromium_page

HOSTILE = '"><img src=x onerror="window.__pwned=1">\'</textarea><script>window.__pwned=2</script>'


@pytest.fixture
def hostile_map(map_world, planner) -> str:
    mid = "x-" + uuid.uuid4().hex[:8]
    spec = {"id": mid, "title": {"ko": HOSTILE, "en": HOSTILE}, "indicator": "turnout",
            "area_unit": "district", "legend": {"title": {"ko": HOSTILE, "en": HOSTILE}}}
    r = planner.post("/maps", json=spec, params={"publish": "true"})
    assert r.status_code == 201, r.text
    return mid


@pytest.mark.browser
def test_the_embed_snippet_is_inert_on_a_third_party_page(map_world, hostile_map, tmp_path):
    with chromium_page() as (page, errors, _):
        page.goto(f"{map_world.server.url}/maps/{hostile_map}?lang=en")
        snippet = page.input_value("textarea")
        assert page.evaluate("window.__pwned") is None
        # A newspaper pastes the snippet into its article.
        article = tmp_path / "article.html"
        article.write_text(f"<!doctype html><html><body><p>Our map:</p>{snippet}</body></html>",
                           encoding="utf-8")
        page.goto(article.as_uri())
        page.wait_for_selector("iframe")
        assert page.evaluate("window.__pwned") is None
        assert page.evaluate("document.querySelectorAll('iframe').length") == 1
        assert page.get_attribute("iframe", "title") == HOSTILE
        assert page.evaluate("document.querySelectorAll('img, script').length") == 0


@pytest.mark.browser
def test_the_offline_map_shows_hostile_titles_as_text(map_world, hostile_map, tmp_path, anon):
    path = tmp_path / "map.html"
    path.write_bytes(anon.get(f"/maps/{hostile_map}/map.html", params={"lang": "en"}).content)
    with chromium_page() as (page, errors, _):
        page.goto(path.as_uri())
        page.wait_for_function("window.__policyMap && window.__policyMap.ready", timeout=30_000)
        # Open a popup (it shows the legend title) and read the panels.
        page.evaluate("""() => { const m = window.__policyMap.map;
            const l = Object.values(m._layers).find((x) => x.feature); l.openPopup(); }""")
        page.wait_for_selector(".leaflet-popup-content")
        popup = page.inner_text(".leaflet-popup-content")
        head = page.inner_text("#pm-head")
        assert page.evaluate("window.__pwned") is None
    assert HOSTILE in popup and HOSTILE in head
