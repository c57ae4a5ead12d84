"""The gallery as a citizen meets it: thumbnails stored when a map is published (never drawn
while the page waits), cards whose texts do not run into each other at 600 px, one visible
"검색", and a downloadable PNG whose title, subtitle, map, legend and source never overlap."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from gis_platform.db.connections import connect
from gis_platform.principal import SYSTEM
from indicators.store import Indicator, load_values, upsert_indicator
from policy_maps.build import MapAccess
from policy_maps.render_png import figure
from policy_maps.service import load_map
from policy_maps.spec import Text
from policy_maps.thumbnails import folder
from tests.maps.test_maps_browser import chromium_page

DEMO = ("turnout-2022", "turnout-gap-2022", "cctv-new-density", "bike-access-dong", "bike-hex-500m")


def _stored(map_world, map_id: str) -> list:
    return sorted((folder(map_world.server.settings.resolved_data_dir()) / map_id).glob("*.png"))


def test_publishing_stores_the_thumbnail_and_the_gallery_serves_that_file(map_world, planner, anon):
    mid = "t-" + uuid.uuid4().hex[:8]
    spec = {"id": mid, "title": {"ko": "시험", "en": "Test"}, "indicator": "turnout", "area_unit": "district"}
    assert planner.post("/maps", json=spec).status_code == 201
    assert _stored(map_world, mid) == []                          # a draft: nothing drawn yet
    assert anon.get(f"/maps/{mid}/thumbnail.png").status_code == 404
    assert planner.post(f"/maps/{mid}/publish").status_code == 200
    [path] = _stored(map_world, mid)                              # drawn at publish time
    drawn = path.read_bytes()
    assert drawn.startswith(b"\x89PNG")
    path.write_bytes(b"\x89PNG stored at publish time")           # what is served is the stored file
    try:
        first = anon.get(f"/maps/{mid}/thumbnail.png")
        second = anon.get(f"/maps/{mid}/thumbnail.png", params={"version": 1})
    finally:
        path.write_bytes(drawn)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content == b"\x89PNG stored at publish time"
    assert first.headers["content-type"] == "image/png" and "public" in first.headers["cache-control"]
    assert first.headers["etag"] == second.headers["etag"]
    again = anon.get(f"/maps/{mid}/thumbnail.png", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert _stored(map_world, mid) == [path]


def test_the_demo_maps_thumbnails_are_stored_when_the_demo_is_published(map_world, anon):
    html = anon.get("/maps", params={"lang": "ko"}).text
    for mid in DEMO:
        [path] = _stored(map_world, mid)
        assert f"/maps/{mid}/thumbnail.png?version=1" in html
        r = anon.get(f"/maps/{mid}/thumbnail.png", params={"version": 1})
        assert r.content == path.read_bytes()


def _load(map_world, indicator: str, seed: int) -> None:
    with connect(map_world.db_url, autocommit=True) as conn:
        codes = [r[0] for r in conn.execute("SELECT code FROM gis_data.districts ORDER BY code")]
        upsert_indicator(conn, Indicator(id=indicator, name_ko="시험", name_en="Test", unit="%",
                                         access_level="public"))
        values = np.random.default_rng(seed).uniform(0, 100, len(codes))
        load_values(conn, indicator, "district", pd.DataFrame({"area_code": codes, "year": 2024, "value": values}))


def test_a_thumbnail_is_drawn_again_once_when_its_values_change(map_world, planner, anon):
    mid = "t-" + uuid.uuid4().hex[:8]
    indicator = mid.replace("-", "_")
    _load(map_world, indicator, 1)
    spec = {"id": mid, "title": "T", "indicator": indicator, "area_unit": "district"}
    assert planner.post("/maps", params={"publish": "true"}, json=spec).status_code == 201
    [old] = _stored(map_world, mid)
    before = anon.get(f"/maps/{mid}/thumbnail.png")
    assert before.content == old.read_bytes()
    _load(map_world, indicator, 2)                                   # new values
    after = anon.get(f"/maps/{mid}/thumbnail.png")
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert after.content != before.content and after.content.startswith(b"\x89PNG")
    [new] = _stored(map_world, mid)
    assert new != old and new.read_bytes() == after.content
    assert anon.get(f"/maps/{mid}/thumbnail.png").headers["etag"] == after.headers["etag"]


def test_a_thumbnail_follows_the_maps_access_rules(map_world, planner, anon):
    assert anon.get("/maps/no-such-map/thumbnail.png").status_code == 404
    assert anon.get("/maps/turnout-2022/thumbnail.png", params={"version": 99}).status_code == 404
    assert anon.get("/maps/turnout-2022/thumbnail.png", params={"version": 0}).status_code in (400, 422)
    mid = "t-" + uuid.uuid4().hex[:8]
    assert planner.post("/maps", json={"id": mid, "title": "T", "indicator": "turnout",
                                       "area_unit": "district"}).status_code == 201
    draft = planner.get(f"/maps/{mid}/thumbnail.png")
    assert draft.status_code == 200 and "private" in draft.headers["cache-control"]


# --- the download PNG ---------------------------------------------------------------------------
@pytest.mark.parametrize("width", [600, 900, 1200, 2400])
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_png_parts_never_overlap(map_world, width, lang):
    """Measured by matplotlib's own renderer, at every width and with a title long enough
    to wrap."""
    with connect(map_world.db_url, autocommit=True) as conn:
        data, _ = load_map(conn, "turnout-gap-2022", None, SYSTEM, MapAccess.system(conn))
    for title in (data.spec.title, Text(ko="서울 자치구별 2022년 대통령선거 투표율과 서울 평균의 차이 " * 3,
                                        en="District turnout in the 2022 presidential election "
                                           "against the Seoul average " * 3)):
        data.spec = data.spec.model_copy(update={"title": title})
        fig = figure(data, lang, width_px=width)
        renderer = fig.canvas.get_renderer()
        parts = [t.get_window_extent(renderer) for t in fig.texts] + \
                [fig.axes[0].get_window_extent(renderer), fig.legends[0].get_window_extent(renderer)]
        names = [t.get_text()[:20] for t in fig.texts] + ["map", "legend"]
        box = fig.bbox
        for i, a in enumerate(parts):
            assert box.x0 <= a.x0 and a.x1 <= box.x1 + 0.5 and box.y0 <= a.y0 and a.y1 <= box.y1 + 0.5, names[i]
            for j in range(i):
                assert not a.overlaps(parts[j]), (names[i], names[j], a, parts[j])


# --- in Chromium --------------------------------------------------------------------------------
_BOXES = """() => [...document.querySelectorAll('li.card')].map(card => {
  const r = (el) => { if (!el) return null; const b = el.getBoundingClientRect();
                      return {x: b.left, y: b.top, w: b.width, h: b.height}; };
  return {card: r(card), img: r(card.querySelector('img')), title: r(card.querySelector('h2')),
          desc: r(card.querySelector('.desc')), meta: r(card.querySelector('.meta')),
          loaded: card.querySelector('img').complete && card.querySelector('img').naturalWidth > 0};
})"""
_VISIBLE_TEXT = """(word) => {
  const seen = [];
  for (const el of document.querySelectorAll('body *')) {
    const b = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (b.width <= 1 || b.height <= 1 || style.visibility === 'hidden' || style.display === 'none') continue;
    const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('');
    if (own.includes(word)) seen.push(el.tagName + ':' + own.trim());
    if (el.placeholder && el.placeholder.includes(word)) seen.push(el.tagName + '[placeholder]');
  }
  return seen;
}"""


def _overlap(a, b) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


@pytest.mark.browser
@pytest.mark.parametrize("lang,width", [("ko", 600), ("en", 600), ("ko", 390), ("en", 1280)])
def test_gallery_cards_read_cleanly_and_show_their_thumbnails_at_once(map_world, artifacts, lang, width):
    with chromium_page(viewport=(width, 900)) as (page, errors, requests):
        page.goto(f"{map_world.server.url}/maps?lang={lang}")           # returns after 'load'
        cards = page.evaluate(_BOXES)
        search_word = page.evaluate(_VISIBLE_TEXT, "검색" if lang == "ko" else "Search")
        labelled = page.get_by_label("지도 검색" if lang == "ko" else "Search the maps").count()
        page.screenshot(path=str(artifacts / f"maps-gallery-{lang}-{width}.png"), full_page=True)
    assert errors == []
    assert len(cards) >= 5
    for c in cards:
        parts = [p for p in (c["img"], c["title"], c["desc"], c["meta"]) if p]
        for i, a in enumerate(parts):
            assert c["card"]["x"] <= a["x"] + 0.5 and a["x"] + a["w"] <= c["card"]["x"] + c["card"]["w"] + 0.5
            for b in parts[:i]:
                assert not _overlap(a, b), c
    for i, a in enumerate(cards):
        assert not any(_overlap(a["card"], b["card"]) for b in cards[:i])
    first = [c for c in cards[:8] if c["card"]["y"] < 900]             # the first screen's cards
    assert first and all(c["loaded"] for c in first), first            # no blank thumbnail on arrival
    assert len(search_word) == 1 and search_word[0].startswith("BUTTON"), search_word
    assert labelled == 1                                                 # the field keeps its label
    assert not [u for u in requests if "/map.png" in u]
