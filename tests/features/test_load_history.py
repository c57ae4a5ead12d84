"""Bulk ingests in an editable layer's history (#17): one change set per ingest, the rows a
replace replaced kept, so the network before and after a survey is one query each."""

from __future__ import annotations

import geopandas as gpd
import httpx
import psycopg
import pytest
import shapely

from layers.ingest import ingest_geodataframe
from tests.features.test_editing import WM, as_, feature, mains, make_editable, world  # noqa: F401
from tests.tiles.conftest import tile_ids, wait_for

#: Far in the south-west of the old mains: where the survey found one main the old data lacked.
NEW_AT = (126.9301, 37.5101)


def survey() -> gpd.GeoDataFrame:
    """The 2026 survey: every other old main (depths measured again), and one new one."""
    old = mains()
    kept = old.iloc[::2].copy()
    kept["depth_m"] = kept["depth_m"] + 0.4
    new = gpd.GeoDataFrame({"owner": ["KT"], "kind": ["telecom"], "depth_m": [0.8], "diameter_mm": [150]},
                           geometry=[shapely.LineString([NEW_AT, (NEW_AT[0] + 0.0005, NEW_AT[1])])],
                           crs="EPSG:4326")
    return gpd.GeoDataFrame(gpd.pd.concat([kept, new], ignore_index=True), crs="EPSG:4326")


def follow(c, href: str, **extra):
    """GET a link the server gave (its query kept, ``extra`` added)."""
    url = httpx.URL(href)
    return c.get(url.path, params={**dict(url.params), **extra})


def archived_tables(db_url) -> list[str]:
    with psycopg.connect(db_url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'gis_data' AND tablename LIKE '\\_g%'")]


def test_the_network_before_and_after_a_survey(world):  # noqa: F811
    srv, tokens, db_url = world
    make_editable(srv, tokens)
    old_n = len(mains())
    with as_(srv, tokens, "planner") as c:
        # an edit before the survey: part of the old network's history
        e1 = c.get("/collections/mains/items/1").headers["etag"]
        assert c.patch("/collections/mains/items/1?reason=crew+report", json={"properties": {"depth_m": 3.3}},
                       headers={"If-Match": e1}).status_code == 204
        version = c.get("/layers/mains").json()["data_version"]
        ingest_geodataframe(db_url, survey(), "mains", mode="replace", actor="survey-team",
                            reason="2026 survey")
        wait_for(lambda: c.get("/layers/mains").json()["data_version"] != version)  # the server heard
        hist = c.get("/collections/mains/history").json()
        sets = hist["changeSets"]
        assert [(s["kind"], s["mode"]) for s in sets] == [("ingest", "replace"), ("edit", "update"),
                                                         ("ingest", "create")]
        survey_set = sets[0]
        assert survey_set["actor"] == "survey-team" and survey_set["features"] == old_n // 2 + 2
        assert sets[1]["reason"] == "crew report" and sets[1]["features"] == 1
        # before and after the survey: one query each, from the links the history gives
        before = follow(c, survey_set["before"], limit=1000).json()
        after = follow(c, survey_set["after"], limit=1000).json()
        assert before["numberMatched"] == old_n and after["numberMatched"] == old_n // 2 + 2
        by_id = {f["id"]: f for f in before["features"]}
        assert by_id[1]["properties"]["depth_m"] == pytest.approx(3.3)      # with the edit
        assert by_id[2]["properties"]["depth_m"] == pytest.approx(mains().iloc[1]["depth_m"])
        now = c.get("/collections/mains/items", params={"limit": 1000}).json()
        assert now["numberMatched"] == old_n // 2 + 2
        at_before = survey_set["before"].split("asOf=")[1]
        # stats and tiles of then
        assert c.get("/collections/mains/stats", params={"asOf": at_before}).json()["total"]["count"] == old_n
        t2 = WM.tile(126.9701, 37.5601, 16)          # old main 2 (dropped by the survey) lies here
        path = f"/collections/mains/tiles/WebMercatorQuad/{t2.z}/{t2.x}/{t2.y}.mvt"
        assert 2 in tile_ids(c.get(path, params={"asOf": at_before}))
        assert 2 not in tile_ids(c.get(path))
        # the new generation's features start their own history: fid 1 is another main now
        r = c.get("/collections/mains/items/1")
        assert r.headers["etag"].strip('"').startswith("b")
        assert c.get("/collections/mains/items/1/versions").status_code == 404
        # an append: each new feature's first version, one change set
        extra = gpd.GeoDataFrame({"owner": ["KT"], "kind": ["telecom"], "depth_m": [1.0],
                                  "diameter_mm": [100]},
                                 geometry=[shapely.LineString([(126.93, 37.52), (126.931, 37.52)])],
                                 crs="EPSG:4326")
        version = c.get("/layers/mains").json()["data_version"]
        report = ingest_geodataframe(db_url, extra, "mains", mode="append", actor="crew-7")
        assert report.features_written == 1
        wait_for(lambda: c.get("/layers/mains").json()["data_version"] != version)
        appended = c.get("/collections/mains/history").json()["changeSets"][0]
        new_fid = old_n // 2 + 3
        versions = c.get(f"/collections/mains/items/{new_fid}/versions").json()["versions"]
        assert [(v["op"], v["actor"]) for v in versions] == [("create", "crew-7")]
        assert c.get(f"/collections/mains/items/{new_fid}",
                     params={"asOf": appended["before"].split("asOf=")[1]}).status_code == 404
        # paging
        page = c.get("/collections/mains/history", params={"limit": 2}).json()
        nxt = next(l["href"] for l in page["links"] if l["rel"] == "next")
        rest = follow(c, nxt).json()["changeSets"]
        assert [s["changeSet"] for s in page["changeSets"] + rest] == \
            [s["changeSet"] for s in c.get("/collections/mains/history").json()["changeSets"]]
    with as_(srv, tokens, "kt") as c:                  # limited to rows: not the others' history
        assert c.get("/collections/mains/history").status_code == 404
    assert len(archived_tables(db_url)) == 1
    with as_(srv, tokens, "admin") as c:
        assert c.delete("/layers/mains").status_code == 204
    assert archived_tables(db_url) == []


def test_a_layer_without_history_drops_what_a_replace_replaces(world):  # noqa: F811
    srv, tokens, db_url = world
    ingest_geodataframe(db_url, survey(), "mains", mode="replace")
    assert archived_tables(db_url) == []
    with as_(srv, tokens, "planner") as c:
        hist = c.get("/collections/mains/history").json()
        assert not hist["keepsHistory"]
        assert [s["mode"] for s in hist["changeSets"]] == ["replace", "create"]
        assert "before" not in hist["changeSets"][0]
