"""Permits: filing, legal and illegal transitions, the public timeline, applicant privacy."""

from __future__ import annotations

import gzip

import mapbox_vector_tile
import morecantile
import psycopg
import pytest

from tests.conftest import owner_url
from tests.domains.conftest import X0, Y0, excavation_lonlat, lonlat

APPLICANT = {"name": "홍길동", "organisation": "비밀건설(주)", "contact": "010-9876-5432",
             "address": "서울특별시 은평구 비밀로 7"}
PRIVATE = [APPLICANT["name"], APPLICANT["organisation"], APPLICANT["contact"], APPLICANT["address"],
           "9876-5432", "비밀"]


def application(**over) -> dict:
    doc = {"permit_type": "excavation", "purpose": "상수도관 교체공사", "facility_kind": "water",
           "planned_depth_m": 1.5, "starts_on": "2026-03-02", "ends_on": "2026-03-20",
           "office": "중구 건설관리과", "district_code": "11140", "geometry": excavation_lonlat(),
           "applicant": APPLICANT}
    doc.update(over)
    return doc


def assert_private(text: str) -> None:
    for secret in PRIVATE:
        assert secret not in text, f"applicant data {secret!r} leaked"


@pytest.fixture
def permit_no(dc, planner) -> str:
    r = dc.post("/permits", json=application(), headers=planner)
    assert r.status_code == 201, r.text
    return r.json()["permit_no"]


def move(dc, headers, no, status, **extra):
    return dc.post(f"/permits/{no}/status", json={"status": status, **extra}, headers=headers)


def test_filing_needs_a_planner_key(dc, citizen):
    assert dc.post("/permits", json=application()).status_code == 401
    r = dc.post("/permits", json=application(), headers=citizen)
    assert r.status_code == 403 and "planner" in r.json()["detail"]


def test_a_new_permit_is_received_and_public_without_the_applicant(dc, planner, permit_no):
    assert permit_no.startswith("RW-2026-")
    r = dc.get(f"/permits/{permit_no}")
    doc = r.json()
    assert doc["status"] == "received" and doc["status_ko"] == "접수"
    assert [h["status"] for h in doc["timeline"]] == ["received"]
    assert doc["next_statuses"] == ["reviewed"]
    assert "actor" not in doc["timeline"][0] and "applicant" not in doc
    assert_private(r.text)


def test_the_whole_legal_path_is_recorded_with_who_when_and_office(dc, planner, permit_no, dom_db):
    for status in ("reviewed", "approved", "works", "completed"):
        r = move(dc, planner, permit_no, status, note=f"{status} ok")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status
    doc = dc.get(f"/permits/{permit_no}", headers=planner).json()
    tl = doc["timeline"]
    assert [h["status"] for h in tl] == ["received", "reviewed", "approved", "works", "completed"]
    assert all(h["office"] == "중구 건설관리과" for h in tl)
    assert [h["at"] for h in tl] == sorted(h["at"] for h in tl)
    assert all(h["actor"].startswith("key:") and "planner-kim" in h["actor"] for h in tl)
    assert doc["next_statuses"] == []
    with psycopg.connect(dom_db) as conn:
        audit = conn.execute("SELECT actor, details->>'to' FROM gis_meta.audit_log WHERE feature_id = %s "
                             "AND action = 'write' ORDER BY id", (permit_no,)).fetchall()
    assert [a[1] for a in audit] == ["received", "reviewed", "approved", "works", "completed"]
    assert all("planner-kim" in a[0] for a in audit)


@pytest.mark.parametrize("path, target, status, words", [
    ([], "approved", 409, "it can move to: reviewed"),
    ([], "completed", 409, "not allowed"),
    (["reviewed", "rejected"], "approved", 409, "'rejected' is final"),
    (["reviewed", "approved", "works", "completed"], "works", 409, "'completed' is final"),
    ([], "demolished", 422, "Unknown status"),
    ([], "", 400, "status is required"),
])
def test_illegal_transitions_are_refused_with_a_clear_message(dc, planner, permit_no, path, target,
                                                             status, words):
    for s in path:
        assert move(dc, planner, permit_no, s).status_code == 200
    r = move(dc, planner, permit_no, target)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert dc.get(f"/permits/{permit_no}").json()["status"] == (path[-1] if path else "received")


def test_status_changes_need_a_planner(dc, citizen, permit_no):
    assert move(dc, {}, permit_no, "reviewed").status_code == 401
    assert move(dc, citizen, permit_no, "reviewed").status_code == 403
    assert dc.get(f"/permits/{permit_no}").json()["status"] == "received"


def test_the_database_refuses_an_illegal_history_row_even_without_the_api(dom_db, permit_no):
    with psycopg.connect(dom_db) as conn:
        pid = conn.execute("SELECT id FROM gis_domain.permits WHERE permit_no = %s", (permit_no,)).fetchone()[0]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO gis_domain.permit_status_history (permit_id, status, actor, office) "
                         "VALUES (%s, 'completed', 'sql', 'x')", (pid,))
        conn.rollback()
        # The server's login may only append to the history...
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE gis_domain.permit_status_history SET status = 'approved'")
    # ... and even the owner cannot rewrite it: the trigger refuses.
    with psycopg.connect(owner_url(dom_db)) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE gis_domain.permit_status_history SET status = 'approved'")


def test_unknown_permits_are_404(dc):
    assert dc.get("/permits/RW-1999-000001").status_code == 404
    assert dc.get("/permits/..%2F..%2Fetc").status_code == 404
    assert dc.get("/permits/<script>").status_code == 404


@pytest.mark.parametrize("over, status, words", [
    ({"planned_depth_m": -2}, 400, "must not be negative"),
    ({"ends_on": "2026-01-01"}, 400, "before starts_on"),
    ({"starts_on": "tomorrow"}, 400, "YYYY-MM-DD"),
    ({"applicant": None}, 400, "applicant is required"),
    ({"permit_type": "demolition"}, 400, "permit_type"),
    ({"facility_kind": "unicorn"}, 400, "Unknown facility_kind"),
    ({"geometry": {"type": "LineString", "coordinates": [[126.97, 37.56], [126.98, 37.56]]}}, 400, "Polygon"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[126.0, 37.0], [127.5, 37.0], [127.5, 38.0],
                                                      [126.0, 37.0]]]}}, 422, "at most"),
])
def test_bad_applications_are_4xx_and_store_nothing(dc, planner, dom_db, over, status, words):
    r = dc.post("/permits", json=application(**over), headers=planner)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert_private(r.text)
    with psycopg.connect(dom_db) as conn:
        assert conn.execute("SELECT count(*) FROM gis_domain.permits").fetchone()[0] == 0


def test_the_applicant_is_for_planners_only(dc, planner, citizen, permit_no):
    assert dc.get(f"/permits/{permit_no}/applicant").status_code == 401
    assert dc.get(f"/permits/{permit_no}/applicant", headers=citizen).status_code == 403
    r = dc.get(f"/permits/{permit_no}/applicant", headers=planner)
    assert r.status_code == 200 and r.json()["applicant"]["name"] == "홍길동"
    assert r.headers["cache-control"] == "no-store"


def test_no_public_output_carries_applicant_data(dc, planner, permit_no):
    for s in ("reviewed", "approved"):
        move(dc, planner, permit_no, s, note="서류 확인")
    outputs = [
        dc.get("/permits"), dc.get("/permits?f=geojson"), dc.get("/permits?f=html"),
        dc.get(f"/permits/{permit_no}"), dc.get(f"/permits/{permit_no}?f=html"),
        dc.get("/collections"), dc.get("/collections/active_works"),
        dc.get("/collections/active_works/items"), dc.get("/collections/active_works/items?f=html"),
        dc.get("/collections/active_works/queryables"), dc.get("/layers/active_works"),
    ]
    for r in outputs:
        assert r.status_code == 200, (r.url, r.text[:300])
        assert_private(r.text)
    items = dc.get("/collections/active_works/items").json()
    assert items["numberMatched"] == 1
    props = items["features"][0]["properties"]
    assert props["permit_no"] == permit_no and props["status"] == "approved"
    assert not {"name", "contact", "organisation", "address", "applicant"} & set(props)
    # a vector tile over the permit
    lon, lat = lonlat(__import__("shapely").Point(X0 + 5, Y0 + 5)).coords[0]
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 16)
    r = dc.get(f"/collections/active_works/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
    assert r.status_code == 200, r.text
    content = gzip.decompress(r.content) if r.content[:2] == b"\x1f\x8b" else r.content
    tile = mapbox_vector_tile.decode(content)
    feats = tile["active_works"]["features"]
    assert len(feats) == 1 and feats[0]["properties"]["permit_no"] == permit_no
    assert_private(repr(tile))


def test_active_works_follow_the_status(dc, planner, permit_no):
    ids = {c["id"] for c in dc.get("/collections").json()["collections"]}
    assert "active_works" in ids
    assert dc.get("/collections/active_works/items").json()["numberMatched"] == 0
    for s in ("reviewed", "approved"):
        move(dc, planner, permit_no, s)
    assert dc.get("/collections/active_works/items").json()["numberMatched"] == 1
    for s in ("works", "completed"):
        move(dc, planner, permit_no, s)
    assert dc.get("/collections/active_works/items").json()["numberMatched"] == 0


def test_list_filters_by_status_and_pages(dc, planner):
    nos = [dc.post("/permits", json=application(), headers=planner).json()["permit_no"] for _ in range(3)]
    move(dc, planner, nos[0], "reviewed")
    doc = dc.get("/permits?status=reviewed").json()
    assert [p["permit_no"] for p in doc["permits"]] == [nos[0]]
    assert doc["status_counts"]["received"] == 2 and doc["status_counts"]["reviewed"] == 1
    page = dc.get("/permits?limit=2&offset=2").json()
    assert page["numberMatched"] == 3 and len(page["permits"]) == 1
    assert dc.get("/permits?status=bogus").status_code == 400
    assert dc.get("/permits?limit=0").status_code == 400


def test_demo_permits_are_deterministic_idempotent_and_follow_the_rules(dom_db, make_settings):
    from domains import demo

    settings = make_settings()
    counts = demo.load_demo(settings, dom_db, scale="small")
    assert counts["permits"] == 5          # one per fixture road (fewer roads than permits)
    assert demo.load_demo(settings, dom_db, scale="small") == {}
    with psycopg.connect(dom_db) as conn:
        first = conn.execute("SELECT permit_no, status, purpose FROM gis_domain.permits ORDER BY 1").fetchall()
        n_hist = conn.execute("SELECT count(*) FROM gis_domain.permit_status_history").fetchone()[0]
        layer = conn.execute("SELECT feature_count FROM gis_meta.layers WHERE id = 'active_works'").fetchone()
        active = conn.execute("SELECT count(*) FROM gis_data.active_works").fetchone()[0]
    assert n_hist >= 5 and layer[0] == active
    demo.load_demo(settings, dom_db, scale="small", only_if_empty=False)
    with psycopg.connect(dom_db) as conn:
        again = conn.execute("SELECT permit_no, status, purpose FROM gis_domain.permits ORDER BY 1").fetchall()
    assert again == first


def test_the_active_works_view_cannot_be_deleted_or_replaced(dc, planner, permit_no, dom_db):
    """It is derived from the permits: a clear 409, and the layer stays as it was."""
    import geopandas as gpd
    import shapely

    from gis_platform.errors import Conflict
    from layers.ingest import ingest_geodataframe

    r = dc.delete("/layers/active_works", headers=planner)
    assert r.status_code == 409 and "maintained by the platform" in r.json()["detail"]
    gdf = gpd.GeoDataFrame({"x": [1]}, geometry=[shapely.box(127.0, 37.5, 127.001, 37.501)],
                           crs="EPSG:4326")
    for mode in ("replace", "append"):
        with pytest.raises(Conflict, match="cannot be"):
            ingest_geodataframe(dom_db, gdf, "active_works", mode=mode, metadata={"access_level": "public"})
    assert dc.get("/collections/active_works/items").status_code == 200
    assert "active_works" in {c["id"] for c in dc.get("/collections").json()["collections"]}
