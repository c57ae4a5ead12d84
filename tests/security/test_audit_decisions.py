"""Every access decision on non-public data leaves an audit row, allowed or denied: bad keys,
denied reads, applicant data, denied permit writes, restricted indicators, uploads (with
the layer id)."""

from __future__ import annotations

import json

from .conftest import SecurityWorld
from .test_write_scopes import SQUARE, _permit, _restricted_indicator


def _actor(world, role: str) -> str:
    return f"key:{world.tokens[role].split('_')[1]}:"


def rows_of(world: SecurityWorld, role: str | None = None, **where) -> list[dict]:
    rows = world.audit(**where)
    return [r for r in rows if role is None or r["actor"].startswith(_actor(world, role))]


def test_a_bad_key_is_on_the_record_with_its_id_but_never_its_secret(world):
    with world.server.client(headers={"Authorization": "Bearer gis_abcdef123456_notthesecret"}) as c:
        assert c.get("/collections/parks/items").status_code == 401
    with world.server.client(headers={"Authorization": "Bearer garbage"}) as c:
        assert c.get("/collections/parks/items").status_code == 401
    revoked_id = world.tokens["revoked"].split("_")[1]
    with world.client("revoked") as c:
        assert c.get("/collections/parks/items").status_code == 401
    rows = world.audit(action="authenticate")
    actors = {r["actor"] for r in rows}
    assert {"key:abcdef123456", "invalid-key", f"key:{revoked_id}"} <= actors
    assert all(r["status"] == 401 and r["details"]["denied"] for r in rows)
    assert "notthesecret" not in json.dumps(rows, default=str)
    assert any("revoked" in r["details"]["reason"] for r in rows if r["actor"] == f"key:{revoked_id}")


def test_applicant_reads_and_denied_permit_writes_are_on_the_record(world):
    with world.client("planner") as c:
        no = _permit(c, "11110")
        assert c.get(f"/permits/{no}/applicant").status_code == 200
    with world.client("citizen") as c:
        assert c.post(f"/permits/{no}/status", json={"status": "reviewed"}).status_code == 403
        assert c.get(f"/permits/{no}/applicant").status_code == 403
    read = rows_of(world, "planner", layer_id="applicants", action="read")
    assert read and read[-1]["status"] == 200 and read[-1]["endpoint"].endswith("/applicant")
    denied = rows_of(world, "citizen", layer_id="permits", action="write_rows")
    assert denied and denied[-1]["status"] == 403 and denied[-1]["details"]["denied"] is True
    assert rows_of(world, "citizen", layer_id="applicants", action="read")[-1]["details"]["denied"]


def test_restricted_indicator_reads_are_on_the_record(world):
    ind = _restricted_indicator(world)
    with world.client("planner") as c:
        assert c.get(f"/indicators/{ind}").status_code == 200
    with world.client("citizen") as c:
        assert c.get(f"/indicators/{ind}").status_code == 404
    assert rows_of(world, "planner", layer_id=f"indicator:{ind}", action="read")
    assert rows_of(world, "citizen", layer_id=f"indicator:{ind}", action="read")[-1]["details"]["denied"]


def test_upload_rows_name_the_layer_allowed_or_not(world):
    points = json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature",
                         "properties": {}, "geometry": SQUARE}]}).encode()
    with world.client("planner") as c:
        r = c.post("/layers/upload", data={"layer_id": "audited_upload"},
                   files={"file": ("a.geojson", points)})
        assert r.status_code == 201, r.text
        assert c.delete("/layers/audited_upload").status_code == 204
    with world.client("planner_scoped") as c:
        assert c.post("/layers/upload", data={"layer_id": "audited_upload"},
                      files={"file": ("a.geojson", points)}).status_code == 403
    ok = rows_of(world, "planner", layer_id="audited_upload", action="create")
    assert ok and ok[-1]["status"] == 201 and ok[-1]["endpoint"] == "POST /layers/upload"
    assert rows_of(world, "planner", layer_id="audited_upload", action="write")   # the delete
    no = rows_of(world, "planner_scoped", layer_id="audited_upload", action="create")
    assert no and no[-1]["status"] == 403 and no[-1]["details"]["denied"]
