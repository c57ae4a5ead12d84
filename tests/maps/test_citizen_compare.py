"""Two years of a policy map as a swipe in the offline file: the chosen year left of the
divider, the year compared with right of it - checked on the pixels Chromium draws."""

from __future__ import annotations

import io

import pytest

from tests.maps.test_maps_browser import chromium_page


def _rgb(hex_colour: str) -> tuple[int, ...]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _drawn(colour: str, background: tuple[int, ...], opacity: float = 0.8) -> tuple[int, ...]:
    return tuple(round(opacity * c + (1 - opacity) * b) for c, b in zip(_rgb(colour), background))


def _inside_points(anon, doc) -> list[list[float]]:
    """A point inside each of the map's districts (in the map's order), from the public layer."""
    from shapely.geometry import shape

    by_code = {f["properties"]["code"]: shape(f["geometry"]) for f in
               anon.get("/collections/districts/items", params={"f": "json", "limit": 100}).json()["features"]}
    return [list(by_code[a["code"]].representative_point().coords[0]) for a in doc["areas"]]


@pytest.mark.browser
def test_the_offline_map_swipes_between_two_years(anon, tmp_path, artifacts):
    from PIL import Image

    doc = anon.get("/maps/cctv-new-density/data.json").json()
    colour = {y: [doc["colors"][c] for c in doc["classes"][y]] for y in ("2014", "2016")}
    path = tmp_path / "map.html"
    path.write_bytes(anon.get("/maps/cctv-new-density/map.html", params={"lang": "ko"}).content)
    with chromium_page(viewport=(1024, 768)) as (page, errors, _):
        page.goto(path.as_uri())
        page.wait_for_function("window.__policyMap && window.__policyMap.ready", timeout=30_000)
        page.add_style_tag(content=".pm-label{display:none}")            # sample the fills, not the names
        assert not page.locator("#pm-swipe").is_visible()
        page.select_option("#pm-year", "2014")
        page.select_option("#pm-compare", "2016")
        page.fill("#pm-swipe", "50")
        page.dispatch_event("#pm-swipe", "input")
        divider = page.evaluate("document.querySelector('.pm-divider').getBoundingClientRect().left")
        tags = page.evaluate("[...document.querySelectorAll('.pm-divider span')].map(s => s.textContent)")
        points = page.evaluate("(lonlats) => lonlats.map(p => window.__policyMap.map.latLngToContainerPoint("
                               "[p[1], p[0]]))", _inside_points(anon, doc))
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        page.screenshot(path=str(artifacts / "maps-offline-swipe.png"))
        page.select_option("#pm-compare", "")
        gone = page.evaluate("getComputedStyle(document.querySelector('.pm-divider')).display")
    assert errors == []
    assert abs(divider - 1024 / 2) <= 3 and tags == ["2014", "2016"] and gone == "none"
    background = shot.getpixel((3, 300))                                  # the map's own background
    checked = {"left": 0, "right": 0}
    for i, p in enumerate(points):
        if abs(p["x"] - divider) < 25 or colour["2014"][i] == colour["2016"][i]:
            continue
        side = "left" if p["x"] < divider else "right"
        expected = _drawn(colour["2014" if side == "left" else "2016"][i], background)
        got = shot.getpixel((round(p["x"]), round(p["y"])))
        assert all(abs(a - b) <= 8 for a, b in zip(got, expected)), (i, side, got, expected)
        checked[side] += 1
    assert checked["left"] >= 2 and checked["right"] >= 2, checked
