"""A person who opens the items URL in Chromium is told it is one page of the result, can page
on, and downloads the whole (filtered) result from the links on the page."""

from __future__ import annotations

import httpx
import pytest

from tests.browser import chromium, wait_until


def _read_page(page) -> dict:
    wait_until(page, "!!document.getElementById('page-summary')")
    return page.evaluate("""() => ({
        summary: document.getElementById('page-summary').innerText.trim(),
        next: (document.querySelector('nav.paging a[rel=next]') || {}).href || null,
        offer: document.getElementById('downloads').innerText.trim(),
        downloads: Array.from(document.querySelectorAll('#downloads a'))
                        .map(a => [a.innerText.trim(), a.href]),
        rows: document.querySelectorAll('table tr').length - 1})""")


@pytest.mark.browser
def test_items_page_says_it_is_one_page_and_offers_the_whole_result(feature_world, bikes):

    base = feature_world.server.url
    errors: list[str] = []
    with chromium(None) as ctx:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        # What a reader pastes: the bare items URL, as a browser asks for it.
        page.goto(f"{base}/collections/bike_stations/items")
        first = _read_page(page)
        page.goto(first["next"])
        second = _read_page(page)
        page.goto(f"{base}/collections/bike_stations/items?numofunits=20&limit=10")
        filtered = _read_page(page)
    assert errors == []
    assert first["summary"].startswith("Showing 1–100 of 1,540 features") and first["rows"] == 100
    assert "this page only" in first["summary"]
    assert second["summary"].startswith("Showing 101–200 of 1,540 features")
    assert [name for name, _ in first["downloads"]] == ["GeoPackage", "CSV", "GeoJSON"]
    # The download is the whole result, with the page's filter and without its paging.
    matched = int((bikes.numOfUnits == 20).sum())
    assert f"of {matched:,} features" in filtered["summary"]
    assert filtered["offer"].startswith(f"Download the whole result ({matched:,} features)")
    geojson = dict(filtered["downloads"])["GeoJSON"]
    assert "numofunits=20" in geojson and "limit" not in geojson and "offset" not in geojson
    with httpx.Client(timeout=120) as c:
        every = c.get(dict(first["downloads"])["GeoJSON"]).json()["features"]
        chosen = c.get(geojson).json()["features"]
    assert len(every) == 1540 and len(chosen) == matched > 10
    assert all(f["properties"]["numofunits"] == 20 for f in chosen)
