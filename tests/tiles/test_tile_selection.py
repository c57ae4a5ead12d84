"""Selection by class (``default_style.feature_minzoom``): which features tiles show per zoom.

The layer is the overview tests' pipe network (24 streets of 60 segments; even streets are
gas, odd ones water).  Tiles are decoded and compared with what the rule says, on the base
table path and on the overview path, and the rule is changed over HTTP.
"""

from __future__ import annotations

import psycopg
import pytest

from gis_platform.errors import InvalidParameter
from layers import selection
from tests.conftest import start_server
from tests.tiles.conftest import decode, wait_for
from tests.tiles.test_tile_overviews import T10, T11, T14, build, ingest_pipes

WATER_FIRST = {"field": "kind", "values": {"water": 0}, "default": 14}


def url(tile, query: str = "") -> str:
    return f"/collections/pipes/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.mvt{query}"


def kinds(content: bytes) -> set[str]:
    return {f["properties"]["kind"] for f in decode(content).get("pipes", {"features": []})["features"]}


def set_style(db_url: str, style: dict) -> None:
    from layers.catalog import LayerUpdate, update_layer

    with psycopg.connect(db_url, autocommit=True) as conn:
        update_layer(conn, "pipes", LayerUpdate(default_style=style))


@pytest.fixture
def pipes(city: str) -> str:
    ingest_pipes(city)
    return city


def test_base_table_path_shows_each_class_from_its_zoom(pipes, tile_settings):
    set_style(pipes, {"feature_minzoom": WATER_FIRST})
    srv = start_server(tile_settings(tile_overview_zooms=[], tile_overview_below_zoom=10))
    try:
        with srv.client() as c:
            z11, z14 = c.get(url(T11)), c.get(url(T14))
        assert z11.status_code == z14.status_code == 200
        assert kinds(z11.content) == {"water"}          # gas only from z14
        assert kinds(z14.content) == {"gas", "water"}
    finally:
        srv.stop()


def test_numeric_steps_and_the_layer_minzoom_still_applies(pipes, tile_settings):
    # every pipe is 300 mm: shown from z12 by the step, nothing at z11
    set_style(pipes, {"feature_minzoom": {"field": "diameter_mm", "steps": [[1000, 3], [300, 12]],
                                          "default": 16}})
    srv = start_server(tile_settings(tile_overview_zooms=[], tile_overview_below_zoom=10))
    try:
        with srv.client() as c:
            assert c.get(url(T11)).status_code == 204
            t12 = type(T11)(T14.x >> 2, T14.y >> 2, 12)
            assert kinds(c.get(url(t12)).content) == {"gas", "water"}
    finally:
        srv.stop()


def test_overviews_carry_the_selection_and_agree_with_the_base_table(pipes, tile_settings):
    set_style(pipes, {"feature_minzoom": WATER_FIRST})
    settings = tile_settings(tile_overview_min_features=1000, tile_overview_auto_build=False)
    build(pipes, settings)
    with psycopg.connect(pipes) as conn:
        rows = conn.execute("SELECT zoom, table_name FROM tiles.overviews WHERE layer_id = 'pipes' "
                            "ORDER BY zoom").fetchall()
        assert [z for z, _ in rows] == [8, 10, 11, 12, 13, 14, 16]
        for zoom, table in rows:
            # a level holds only the rows shown at or below it, each with its first zoom
            got = conn.execute(f'SELECT min(__minzoom), max(__minzoom) FROM tiles."{table}"').fetchone()
            assert got == ((0, 0) if zoom < 14 else (0, 14)), (zoom, got)
    srv = start_server(settings)
    base = start_server(tile_settings(tile_overview_min_features=1000, tile_overview_auto_build=False,
                                      tile_overview_zooms=[]))
    try:
        with srv.client() as c, base.client() as bc:
            for tile, want in ((T10, {"water"}), (T11, {"water"}), (T14, {"gas", "water"})):
                over, ref = c.get(url(tile)), bc.get(url(tile))
                assert over.headers.get("etag") != ref.headers.get("etag")  # really the overview
                assert kinds(over.content) == want, tile
                if tile.z >= 14:
                    ids = lambda r: {f["id"] for f in decode(r.content)["pipes"]["features"]}
                    assert ids(over) == ids(ref)
    finally:
        srv.stop()
        base.stop()


def test_changing_the_rule_over_http_changes_tiles_and_bad_rules_are_400(pipes, tile_settings,
                                                                         planner_token):
    srv = start_server(tile_settings(tile_overview_zooms=[], tile_overview_below_zoom=10))
    auth = {"Authorization": f"Bearer {planner_token}"}
    try:
        with srv.client() as c:
            before = c.get(url(T11))
            assert kinds(before.content) == {"gas", "water"}
            for bad, words in (
                ({"field": "nope", "values": {"a": 1}, "default": 14}, "not an attribute"),
                ({"field": "kind", "steps": [[1, 2]], "default": 14}, "numeric field"),
                ({"field": "kind", "values": {"water": 30}, "default": 14}, "between 0 and 24"),
                ({"field": "kind", "default": 14}, "exactly one of"),
                ({"field": "kind", "values": {"water": 1}}, "Field required"),
            ):
                r = c.patch("/layers/pipes", json={"default_style": {"feature_minzoom": bad}},
                            headers=auth)
                assert r.status_code == 400, r.text
                assert words in r.json()["detail"], r.json()["detail"]
            r = c.patch("/layers/pipes", json={"default_style": {"feature_minzoom": WATER_FIRST}},
                        headers=auth)
            assert r.status_code == 200, r.text
            # the style change is a new data version: a new tile, never the cached one
            after = wait_for(lambda: (t := c.get(url(T11))).headers["etag"] != before.headers["etag"]
                             and t)
            assert kinds(after.content) == {"water"}
            tj = c.get("/collections/pipes/tiles/WebMercatorQuad/tilejson.json").json()
            assert tj["vector_layers"][0]["feature_minzoom"] == WATER_FIRST
            # features API and exports are not tiles: every feature, whatever the zoom rule
            items = c.get("/collections/pipes/items", params={"limit": 1, "filter": "kind = 'gas'"})
            assert items.json()["numberMatched"] == 720
    finally:
        srv.stop()


def test_rule_parsing_names_what_is_wrong():
    attrs = [("road_class", "text"), ("lanes", "integer")]
    rule = selection.parse({"feature_minzoom": {"field": "lanes", "steps": [[2, 11], [4, 8]],
                                                "default": 14}}, attrs)
    assert rule.max_zoom == 14
    sql_text = rule.expression("src").as_string(None)
    # larger thresholds are tried first, values are quoted literals
    assert sql_text.index(">= 4.0") < sql_text.index(">= 2.0")
    quoted = selection.parse({"feature_minzoom": {"field": "road_class",
                                                  "values": {"it's": 3}, "default": 9}}, attrs)
    assert "'it''s'" in quoted.expression("src").as_string(None)
    assert selection.parse({"color": "#fff"}, attrs) is None
    with pytest.raises(InvalidParameter, match="unexpected|extra|not permitted"):
        selection.parse({"feature_minzoom": {"field": "lanes", "values": {"1": 2}, "default": 3,
                                             "sql": "1=1"}}, attrs)
