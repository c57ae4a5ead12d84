"""The audit log: one row per access decision on non-public data (with who, what, where,
size, status), allowed or denied, and per write attempt; none for public reads; searchable
over HTTP (admins only) and the CLI; append-only even for the server's own login."""

from __future__ import annotations

from datetime import UTC

import psycopg
import pytest

from tests.conftest import owner_url

from .conftest import TILE

Z, X, Y = TILE


def _actor(world, role: str) -> str:
    return f"key:{world.tokens[role].split('_')[1]}:"


def test_restricted_reads_are_audited_with_who_what_where_size_and_status(world):
    with world.client("planner") as c:
        items = c.get("/collections/facilities/items", params={"limit": "3", "bbox": "126.9,37.5,127.1,37.6"})
        one = c.get("/collections/facilities/items/2")
        tile = c.get(f"/collections/facilities/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt")
        comp = c.get(f"/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt", params={"layers": "parks,facilities"})
        exp = c.get("/collections/facilities/export", params={"format": "csv"})
        stats = c.get("/collections/facilities/stats")
    assert all(r.status_code in (200, 204) for r in (items, one, tile, comp, exp, stats))
    rows = [r for r in world.audit(layer_id="facilities", action="read")
            if r["actor"].startswith(_actor(world, "planner"))]
    by_endpoint = {r["endpoint"].split("?")[0]: r for r in rows}
    assert {"GET /collections/facilities/items", "GET /collections/facilities/items/2",
            f"GET /collections/facilities/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt",
            f"GET /tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt", "GET /collections/facilities/export",
            "GET /collections/facilities/stats"} <= set(by_endpoint)
    row = by_endpoint["GET /collections/facilities/items"]
    assert row["status"] == 200 and row["result_size"] == items.num_bytes_downloaded > 0
    assert row["roles"] == ["planner"] and row["ip"] == "127.0.0.1"
    assert row["area"].startswith("POLYGON((126.9 37.5")
    assert row["details"]["access_level"] == "restricted" and row["details"]["request_id"]
    assert by_endpoint["GET /collections/facilities/items/2"]["feature_id"] == "2"
    # the composite tile names the restricted layer only (parks is public)
    comp_rows = [r for r in rows if r["endpoint"].startswith("GET /tiles/")]
    assert {r["layer_id"] for r in comp_rows} == {"facilities"}


def test_public_reads_are_not_audited_internal_reads_and_denied_reads_are(world):
    with world.client("staff") as c:
        c.get("/collections/parks/items")
        c.get("/collections/survey_points/items")
        assert c.get("/collections/facilities/items").status_code == 404
    actor = _actor(world, "staff")
    endpoints = {f"GET /collections/{l}/items" for l in ("parks", "survey_points", "facilities")}
    rows = [r for r in world.audit(action="read") if r["actor"].startswith(actor)
            and r["endpoint"] in endpoints]
    assert {r["layer_id"] for r in rows} == {"survey_points", "facilities"}     # never parks
    internal = next(r for r in rows if r["layer_id"] == "survey_points")
    assert internal["status"] == 200 and internal["details"]["denied"] is False
    assert internal["details"]["access_level"] == "internal"
    denied = next(r for r in rows if r["layer_id"] == "facilities")
    assert denied["status"] == 404 and denied["details"]["denied"] is True
    assert "restricted" in denied["details"]["reason"]


def test_every_write_attempt_is_audited_allowed_or_not(world):
    with world.client("planner") as c:
        assert c.patch("/layers/parks", json={"title": "Parks"}).status_code == 200
    with world.client("citizen") as c:
        assert c.patch("/layers/parks", json={"title": "Mine"}).status_code == 403
    writes = world.audit(action="write", layer_id="parks")
    ok = [w for w in writes if w["actor"].startswith(_actor(world, "planner"))]
    denied = [w for w in writes if w["actor"].startswith(_actor(world, "citizen"))]
    assert ok and ok[-1]["status"] == 200 and ok[-1]["endpoint"] == "PATCH /layers/parks"
    assert denied and denied[-1]["status"] == 403 and denied[-1]["details"]["denied"] is True


def test_audit_log_rejects_update_delete_and_truncate(world):
    stmts = ("UPDATE gis_meta.audit_log SET actor = 'x'", "DELETE FROM gis_meta.audit_log",
             "TRUNCATE gis_meta.audit_log")
    with psycopg.connect(owner_url(world.db_url), autocommit=True) as conn:
        conn.execute("INSERT INTO gis_meta.audit_log (action) VALUES ('test')")
        for stmt in stmts:
            with pytest.raises(psycopg.errors.RaiseException):
                conn.execute(stmt)
    # The server's own login cannot even try, nor switch the triggers off.
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        for stmt in (*stmts, "ALTER TABLE gis_meta.audit_log DISABLE TRIGGER USER",
                     "SET session_replication_role = replica"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)


def test_admins_search_the_audit_log_over_http_and_others_cannot(world):
    with world.client("planner") as c:
        c.get("/collections/facilities/items/3")
    with world.client("admin") as c:
        r = c.get("/admin/audit", params={"principal": _actor(world, "planner").rstrip(":"),
                                          "layer": "facilities", "since": "1h"})
        assert r.status_code == 200
        entries = r.json()["entries"]
        assert any(e["endpoint"] == "GET /collections/facilities/items/3" for e in entries)
        assert all(e["layer_id"] == "facilities" for e in entries)
        bad = c.get("/admin/audit", params={"since": "yesterday-ish"})
        assert bad.status_code == 400 and "since" in bad.json()["detail"]
        d = c.get("/admin/audit/digest", params={"factor": "2", "min-reads": "1"})
        assert d.status_code == 200
        assert any(f["principal"].startswith(_actor(world, "planner")) for f in d.json()["flagged"])
    with world.client() as c:
        assert c.get("/admin/audit").status_code == 401
    with world.client("planner") as c:
        assert c.get("/admin/audit").status_code == 403


def test_digest_flags_only_volume_above_factor_times_baseline(world):
    from datetime import datetime, timedelta

    from gis_platform.audit import digest

    now = datetime.now(UTC)
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        with conn.cursor() as cur:
            # steady: 2 reads/h over the past week and 2 in the last hour; burst: 0 then 50
            rows = [("steady", now - timedelta(hours=h, minutes=m)) for h in range(1, 169) for m in (10, 40)]
            rows += [("steady", now - timedelta(minutes=m)) for m in (5, 15)]
            rows += [("burst", now - timedelta(minutes=1 + i % 50)) for i in range(50)]
            cur.executemany("INSERT INTO gis_meta.audit_log (actor, action, layer_id, at) "
                            "VALUES (%s, 'read', 'facilities', %s)", rows)
        flagged = {f["principal"]: f for f in digest(conn, factor=5, min_reads=20, now=now)}
    assert "burst" in flagged and flagged["burst"]["last_hour"] == 50
    assert "steady" not in flagged


def test_admin_manages_keys_over_http_and_each_change_is_audited(world):
    with world.client("admin") as c:
        r = c.post("/admin/keys", json={"name": "contractor", "roles": ["operator"],
                                        "scopes": {"owners": ["KT"]}, "expires_days": 1})
        assert r.status_code == 201, r.text
        token, key_id = r.json()["token"], r.json()["id"]
        assert any(k["id"] == key_id and k["scopes"] == {"owners": ["KT"]}
                   for k in c.get("/admin/keys").json()["keys"])
        assert c.post("/admin/keys", json={"name": "x", "roles": ["root"]}).status_code == 400
        assert c.post("/admin/keys", json={"name": "x", "roles": ["admin"], "extra": 1}).status_code == 400
        with world.server.client(headers={"Authorization": f"Bearer {token}"}) as k:
            assert k.get("/collections/facilities/items").status_code == 200
        assert c.delete(f"/admin/keys/{key_id}").status_code == 204
        assert c.delete(f"/admin/keys/{key_id}").status_code == 404
    from gis_platform.apikeys import forget_cached_keys

    forget_cached_keys()
    with world.server.client(headers={"Authorization": f"Bearer {token}"}) as k:
        assert k.get("/collections/facilities/items").status_code == 401
    with world.client("planner") as c:
        assert c.post("/admin/keys", json={"name": "x", "roles": ["admin"]}).status_code == 403
    writes = [w for w in world.audit(action="write") if w["endpoint"].startswith(("POST /admin/keys",
                                                                                 "DELETE /admin/keys"))]
    assert {w["status"] for w in writes} >= {201, 204, 403}
