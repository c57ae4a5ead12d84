"""The viewer in headless Chromium credits the data and names the map: the attribution of a
layer is on screen, district and road names are drawn (MapLibre places their symbols), and
every request - style, tiles, label points, glyph PBFs - goes to the platform itself."""

from __future__ import annotations

import psycopg
import pytest

from layers.catalog import LayerUpdate, update_layer
from tests.browser import chromium, wait_until
from tests.conftest import start_server
from tests.tiles.conftest import STUB_LAT, STUB_LON

CREDIT = "Statistics Korea (SGIS) — KOGL Type 1"


@pytest.fixture
def server(city: str, tile_settings):
    with psycopg.connect(city, autocommit=True) as conn:
        update_layer(conn, "districts", LayerUpdate(attribution="Statistics Korea (SGIS)",
                                                    licence="KOGL Type 1"))
    srv = start_server(tile_settings())
    yield srv
    srv.stop()


def _symbols(page, layer: str) -> list[str]:
    return page.evaluate(f"window.__map.queryRenderedFeatures({{layers: ['{layer}']}})"
                         ".map(f => String(f.properties.name))")


@pytest.mark.browser
def test_viewer_credits_the_data_and_draws_korean_names_offline(server, artifacts):

    base = server.url
    errors: list[str] = []
    requests: list[str] = []
    glyphs: list[tuple[int, str]] = []
    with chromium((1024, 768)) as ctx:
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: errors.append(f"failed {r.url}"))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("response", lambda r: glyphs.append((r.status, r.url)) if ".pbf" in r.url else None)
        page.goto(f"{base}/viewer?layers=districts,roads")
        wait_until(page, "!!(window.__viewer && (window.__viewer.ready || window.__viewer.errors.length))", 60)
        credits = page.evaluate(
            "document.querySelector('.maplibregl-ctrl-attrib-inner').textContent")
        # Closer, over the city hall: road names (with digits: glyph PBFs) show too.
        page.evaluate(f"window.__map.jumpTo({{center: [{STUB_LON}, {STUB_LAT}], zoom: 13}})")
        wait_until(page, "window.__map.loaded() && window.__map.queryRenderedFeatures("
                         "{layers: ['roads-label']}).length > 0", 60)
        wait_until(page, "window.__map.queryRenderedFeatures({layers: ['districts-label']})"
                         ".length > 0", 30)
        districts, roads = _symbols(page, "districts-label"), _symbols(page, "roads-label")
        page.screenshot(path=str(artifacts / "style-labels.png"))
        state = page.evaluate("window.__viewer")
    assert CREDIT in credits
    assert "종로구" in districts
    assert roads and all(n.endswith(("번가", "로")) for n in roads)
    assert glyphs and all(s == 200 for s, _ in glyphs)
    assert any("/static/glyphs/Noto%20Sans%20CJK%20KR%20Regular/0-255.pbf" in u for _, u in glyphs)
    assert state["errors"] == [] and errors == []
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]
