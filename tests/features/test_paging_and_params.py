"""Paging (next/prev links), limit, properties, sortby and datetime on /items."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import start_server

from .conftest import assert_problem


def _pull(client, url, params=None, max_pages=500):
    """Follow next links from ``url`` and return every feature and every page size."""
    feats, sizes = [], []
    r = client.get(url, params=params)
    for _ in range(max_pages):
        assert r.status_code == 200, r.text
        doc = r.json()
        feats += doc["features"]
        sizes.append(doc["numberReturned"])
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        if not nxt:
            return feats, sizes, doc
        r = client.get(nxt[0])
    raise AssertionError("next links did not end")


def test_full_pull_via_next_links_returns_every_feature_exactly_once(anon):
    feats, sizes, _ = _pull(anon, "/collections/bike_stations/items", {"limit": 97})
    ids = [f["id"] for f in feats]
    assert len(ids) == 1540 and len(set(ids)) == 1540
    assert sizes[:-1] == [97] * (len(sizes) - 1) and sizes[-1] == 1540 - 97 * (len(sizes) - 1)


def test_full_pull_with_sortby_and_filter_keeps_order_and_loses_nothing(anon):
    params = {"limit": 50, "sortby": "-numofunits,name", "filter": "numofunits >= 10"}
    feats, _, _ = _pull(anon, "/collections/bike_stations/items", params)
    first = anon.get("/collections/bike_stations/items", params={**params, "limit": 1}).json()
    assert len(feats) == first["numberMatched"] and len({f["id"] for f in feats}) == len(feats)
    units = [f["properties"]["numofunits"] for f in feats]
    assert units == sorted(units, reverse=True) and min(units) >= 10


def test_prev_link_returns_the_previous_page(anon):
    p1 = anon.get("/collections/bike_stations/items", params={"limit": 10}).json()
    nxt = next(link["href"] for link in p1["links"] if link["rel"] == "next")
    p2 = anon.get(nxt).json()
    prev = next(link["href"] for link in p2["links"] if link["rel"] == "prev")
    assert [f["id"] for f in anon.get(prev).json()["features"]] == [f["id"] for f in p1["features"]]


def test_last_page_has_no_next_link_and_exact_count(anon):
    doc = anon.get("/collections/bike_stations/items", params={"limit": 40, "offset": 1520}).json()
    assert doc["numberReturned"] == 20 and doc["numberMatched"] == 1540
    assert not [link for link in doc["links"] if link["rel"] == "next"]


def test_default_and_max_limit_come_from_settings(make_settings, feature_world):
    srv = start_server(make_settings(database_url=feature_world.db_url, features_default_limit=7,
                                     features_max_limit=25))
    try:
        with srv.client() as c:
            assert c.get("/collections/bike_stations/items").json()["numberReturned"] == 7
            assert c.get("/collections/bike_stations/items", params={"limit": 25}).json()["numberReturned"] == 25
            # above the maximum: clamped, with a next link (OGC API Features; GDAL, OWSLib)
            page = c.get("/collections/bike_stations/items", params={"limit": 26}).json()
            assert page["numberReturned"] == 25
            assert "limit=25" in next(l["href"] for l in page["links"] if l["rel"] == "next")
    finally:
        srv.stop()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "99999999999999999999"])
def test_bad_limit_is_400(anon, value):
    assert_problem(anon.get("/collections/bike_stations/items", params={"limit": value}), 400)


@pytest.mark.parametrize("value", ["-1", "x", "1540", "5000"])
def test_bad_or_past_the_end_offset_is_400(anon, value):
    assert_problem(anon.get("/collections/bike_stations/items", params={"offset": value}), 400)


def test_properties_selects_columns(anon):
    doc = anon.get("/collections/bike_stations/items", params={"limit": 3, "properties": "name,numofunits"}).json()
    assert all(set(f["properties"]) == {"name", "numofunits"} for f in doc["features"])
    doc = anon.get("/collections/bike_stations/items", params={"limit": 3, "properties": ""}).json()
    assert all(f["properties"] == {} for f in doc["features"])


def test_properties_with_unknown_column_is_400(anon):
    body = assert_problem(anon.get("/collections/bike_stations/items",
                                   params={"properties": "name,password"}), 400)
    assert "password" in body["detail"]


def test_sortby_orders_and_unknown_sort_key_is_400(anon):
    doc = anon.get("/collections/bike_stations/items", params={"limit": 30, "sortby": "+numofunits"}).json()
    units = [f["properties"]["numofunits"] for f in doc["features"]]
    assert units == sorted(units)
    assert_problem(anon.get("/collections/bike_stations/items", params={"sortby": "geom;"}), 400)


def test_property_equality_query_parameter_filters(anon, bikes):
    doc = anon.get("/collections/bike_stations/items", params={"place": "마포구", "limit": 1}).json()
    assert doc["numberMatched"] == int((bikes.place == "마포구").sum()) > 0
    assert_problem(anon.get("/collections/bike_stations/items", params={"numofunits": "many"}), 400)


def test_datetime_filters_on_the_time_column(planner, feature_world):
    mains = feature_world.gas_mains
    import datetime as dt

    start, end = dt.date(2000, 1, 1), dt.date(2004, 12, 31)
    expected = sum(start <= d <= end for d in mains.installed)
    doc = planner.get("/collections/gas_mains/items",
                      params={"datetime": "2000-01-01/2004-12-31", "limit": 1}).json()
    assert doc["numberMatched"] == expected
    open_end = planner.get("/collections/gas_mains/items", params={"datetime": "2020-01-01/..", "limit": 1}).json()
    assert open_end["numberMatched"] == sum(d >= dt.date(2020, 1, 1) for d in mains.installed)
    day = mains.installed.iloc[0]
    one = planner.get("/collections/gas_mains/items", params={"datetime": day.isoformat()}).json()
    assert one["numberMatched"] == Counter(mains.installed)[day]


@pytest.mark.parametrize("value", ["yesterday", "2020-13-01", "../..", "2021-01-01/2020-01-01"])
def test_bad_datetime_is_400(planner, value):
    assert_problem(planner.get("/collections/gas_mains/items", params={"datetime": value}), 400)


def test_datetime_on_a_layer_without_time_column_is_400(anon):
    assert_problem(anon.get("/collections/bike_stations/items", params={"datetime": "2020-01-01"}), 400)


def test_a_condition_is_counted_once_per_data_version_and_never_reused_after_a_write(db_url):
    """Paging a filtered layer counts it on the first full page only; a write (new data
    version) counts again, so numberMatched is never stale."""
    import asyncio

    import geopandas as gpd
    import psycopg
    from psycopg.rows import dict_row
    from shapely.geometry import Point

    from features.query import parse_items_query
    from features.sql import COUNTS, fetch_page
    from gis_platform.config import Settings
    from gis_platform.security import ANONYMOUS
    from layers.catalog import get_layer
    from layers.ingest import ingest_geodataframe

    def points(n: int, start: int) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"kind": ["a" if i % 3 else "b" for i in range(start, start + n)]},
                                geometry=[Point(127 + i * 1e-4, 37.5) for i in range(start, start + n)],
                                crs="EPSG:4326")

    class Spy:
        """A real connection that also records the statements it ran."""

        def __init__(self, conn):
            self.conn, self.statements = conn, []

        async def execute(self, stmt, params):
            self.statements.append(stmt)
            return await self.conn.execute(stmt, params)

    settings = Settings(_env_file=None)
    ingest_geodataframe(db_url, points(90, 0), "counted", metadata={"access_level": "public", "title": "Counted"})

    def layer():
        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            return get_layer(conn, "counted")

    async def page(lyr, offset: int):
        q = parse_items_query({"filter": "kind = 'a'", "limit": "10", "offset": str(offset)}, lyr,
                              settings, principal=ANONYMOUS)
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            spy = Spy(conn)
            result = await fetch_page(spy, q)
        return result, spy.statements

    COUNTS.clear()
    lyr = layer()
    first, stmts1 = asyncio.run(page(lyr, 0))
    second, stmts2 = asyncio.run(page(lyr, 10))
    assert first.number_matched == second.number_matched == 60
    assert "count(*)" in stmts1[0] and "count(*)" not in stmts2[0]
    assert [len(first.features), len(second.features)] == [10, 10]
    # A write gives the layer a new data version: counted afresh, with the new rows.
    ingest_geodataframe(db_url, points(30, 90), "counted", mode="append", metadata={"access_level": "public"})
    lyr2 = layer()
    assert lyr2.data_version != lyr.data_version
    third, stmts3 = asyncio.run(page(lyr2, 10))
    assert third.number_matched == 80 and "count(*)" in stmts3[0]
    # Past the end is still refused from a remembered count.
    with pytest.raises(Exception, match="past the end"):
        asyncio.run(page(lyr2, 80))
