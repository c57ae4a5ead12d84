"""Every write goes through the same access decision as reads, with the key's scopes:
uploads, PATCH, DELETE, maps, permits - and indicators follow the same rule as layers."""

from __future__ import annotations

import json

import psycopg
import pytest

from gis_platform.apikeys import create_api_key

from .conftest import SecurityWorld

SQUARE = {"type": "Polygon", "coordinates": [[[126.9780, 37.5660], [126.9784, 37.5660],
                                              [126.9784, 37.5663], [126.9780, 37.5663],
                                              [126.9780, 37.5660]]]}
POINTS = json.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "x"},
     "geometry": {"type": "Point", "coordinates": [126.98, 37.56]}}]}).encode()


def client(world: SecurityWorld, token: str):
    return world.server.client(headers={"Authorization": f"Bearer {token}"})


def catalog(world: SecurityWorld) -> list[tuple]:
    with psycopg.connect(world.db_url) as conn:
        return conn.execute("SELECT id, data_version, feature_count, access_level FROM "
                            "gis_meta.layers ORDER BY id").fetchall()


def upload(c, layer_id: str, mode: str, **fields):
    return c.post("/layers/upload", data={"layer_id": layer_id, "mode": mode, **fields},
                  files={"file": ("points.geojson", POINTS, "application/geo+json")})


def test_a_layer_scoped_key_cannot_append_replace_or_publish_outside_its_scope(world):
    before = catalog(world)
    with world.client("planner_scoped") as c:       # layers: [survey_points]
        # a public layer outside the scope: visible, so the refusal is a 403 that says why
        for mode in ("append", "replace"):
            r = upload(c, "parks", mode)
            assert r.status_code == 403, r.text
            assert "survey_points" in r.json()["detail"]
        assert c.patch("/layers/parks", json={"access_level": "restricted"}).status_code == 403
        assert c.delete("/layers/parks").status_code == 403
        # a restricted layer outside the scope: the 404 of a missing layer, in every form
        for mode in ("append", "replace"):
            r = upload(c, "facilities", mode, access_level="public")
            assert r.status_code == 404 and r.json()["detail"] == "No layer 'facilities'."
        assert c.patch("/layers/facilities", json={"access_level": "public"}).status_code == 404
        assert c.delete("/layers/facilities").status_code == 404
    assert catalog(world) == before


def test_creating_a_hidden_layers_id_says_nothing_about_it(world):
    before = catalog(world)
    with world.client("planner_scoped") as c:
        hidden = upload(c, "facilities", "create")
        missing = upload(c, "no_such_layer_here", "create")
    assert hidden.status_code == missing.status_code == 403
    # The same answer for an id that exists (hidden) and one that does not: no oracle.
    assert hidden.json()["detail"] == missing.json()["detail"]
    assert "already exists" not in hidden.text
    assert catalog(world) == before


def test_a_row_scoped_key_cannot_write_whole_layers(world):
    token = create_api_key(world.db_url, "planner-power", ["planner"], scopes={"kinds": ["power"]})
    before = catalog(world)
    with client(world, token) as c:
        for layer_id, mode in (("facilities", "append"), ("facilities", "replace"),
                               ("parks", "append"), ("new_power_layer", "create")):
            r = upload(c, layer_id, mode, access_level="public")
            assert r.status_code == 403, (layer_id, mode, r.text)
            assert "kinds=power" in r.json()["detail"]
        assert c.patch("/layers/facilities", json={"access_level": "public"}).status_code == 403
    assert catalog(world) == before


def test_a_key_works_inside_its_scope(world):
    token = create_api_key(world.db_url, "planner-own", ["planner"], scopes={"layers": ["scoped_own"]})
    with client(world, token) as c:
        r = upload(c, "scoped_own", "create")
        assert r.status_code == 201, r.text
        assert upload(c, "scoped_own", "append").status_code == 200
        assert c.patch("/layers/scoped_own", json={"title": "Mine"}).json()["title"] == "Mine"
        assert c.get("/collections/scoped_own/items").json()["numberMatched"] == 2
        assert c.delete("/layers/scoped_own").status_code == 204


def test_an_empty_scope_grants_nothing(world):
    token = create_api_key(world.db_url, "empty", ["planner"], scopes={"layers": []})
    with client(world, token) as c:
        assert c.get("/collections/survey_points/items").status_code == 404
        assert c.get("/collections/facilities/items").status_code == 404
        assert c.get("/collections/parks/items").status_code == 200        # public stays public
        assert upload(c, "anything", "create").status_code == 403
    token = create_api_key(world.db_url, "empty-rows", ["operator"], scopes={"owners": []})
    with client(world, token) as c:
        assert c.get("/collections/facilities/items").json()["numberMatched"] == 0


def _restricted_indicator(world) -> str:
    from gis_platform.principal import SYSTEM  # noqa: F401 - the operator loads it
    from indicators.hexgrid import aggregate_indicator
    from indicators.store import Indicator, register_area_unit

    with psycopg.connect(world.db_url, autocommit=True) as conn:
        register_area_unit(conn, "gu", "districts", "sig_cd", "sig_kor_nm", "Districts", "자치구")
        aggregate_indicator(conn, Indicator(id="facility_length", name_ko="시설 연장",
                                            name_en="Facility length"),
                            "gu", "facilities", "length_density", 2026)
    return "facility_length"


def test_indicators_follow_the_same_decision_as_their_source_layers(world):
    ind = _restricted_indicator(world)
    with world.client("planner") as c:
        assert c.get(f"/indicators/{ind}").status_code == 200
        assert c.get(f"/indicators/{ind}/values").status_code == 200
    scoped_elsewhere = create_api_key(world.db_url, "roads-only", ["planner"], scopes={"layers": ["roads"]})
    scoped_here = create_api_key(world.db_url, "fac-only", ["planner"],
                                 scopes={"layers": ["facilities", "districts"]})
    for token in (scoped_elsewhere, world.tokens["operator"]):      # roads; owners=KT
        with client(world, token) as c:
            assert c.get(f"/indicators/{ind}").status_code == 404
            assert c.get(f"/indicators/{ind}/values").status_code == 404
            assert ind not in {i["id"] for i in c.get("/indicators").json()["indicators"]}
    with client(world, scoped_here) as c:
        assert c.get(f"/indicators/{ind}").status_code == 200
    with world.client("staff") as c:                       # restricted: not for staff
        assert c.get(f"/indicators/{ind}").status_code == 404


def _permit(c, district: str) -> str:
    r = c.post("/permits", json={
        "permit_type": "excavation", "purpose": "상수도관 교체", "facility_kind": "water",
        "planned_depth_m": 1.2, "starts_on": "2026-03-02", "ends_on": "2026-03-20",
        "office": "건설관리과", "district_code": district, "geometry": SQUARE,
        "applicant": {"name": "홍길동", "contact": "010-0000-0000"}})
    assert r.status_code == 201, r.text
    return r.json()["permit_no"]


def test_a_district_scoped_planner_handles_only_its_districts_permits(world):
    with world.client("planner") as c:
        mine, theirs = _permit(c, "11110"), _permit(c, "11140")
    token = create_api_key(world.db_url, "jongno", ["planner"], scopes={"districts": ["11110"]})
    with client(world, token) as c:
        assert c.get(f"/permits/{mine}/applicant").status_code == 200
        assert c.get(f"/permits/{theirs}/applicant").status_code == 404
        assert c.post(f"/permits/{theirs}/status", json={"status": "reviewed"}).status_code == 404
        assert c.post(f"/permits/{mine}/status", json={"status": "reviewed"}).status_code == 200
        assert _permit(c, "11110")
        other = c.post("/permits", json={"permit_type": "excavation", "purpose": "x",
                                         "planned_depth_m": 1.0, "starts_on": "2026-03-02",
                                         "ends_on": "2026-03-03", "office": "x",
                                         "district_code": "11140", "geometry": SQUARE,
                                         "applicant": {"name": "x"}})
        assert other.status_code == 403 and "11110" in other.json()["detail"]
    # An operator scoped to an owner has no district: no applicant, no permit decision.
    with world.client("operator") as c:
        assert c.get(f"/permits/{mine}/applicant").status_code in (403, 404)
        assert c.post(f"/permits/{mine}/status", json={"status": "approved"}).status_code == 403
    with world.client("planner") as c:
        assert c.get(f"/permits/{theirs}").json()["status"] == "received"


@pytest.mark.parametrize("who", ["citizen", "staff", None])
def test_applicant_data_needs_a_writing_role(world, who):
    with world.client("planner") as c:
        no = _permit(c, "11170")
    with world.client(who) as c:
        r = c.get(f"/permits/{no}/applicant")
    assert r.status_code == (401 if who is None else 403)
