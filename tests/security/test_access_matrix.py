"""Roles x access levels x endpoints: every allow is a 200 (or 204 for an empty tile), every
deny is exactly the 404 of a missing layer, and no denied layer's name appears anywhere."""

from __future__ import annotations

import pytest

from gis_platform.principal import Principal, readable_levels

from .conftest import TILE, assert_no_internals

LAYERS = {"parks": "public", "survey_points": "internal", "facilities": "restricted"}
WHO = (None, "citizen", "staff", "planner", "operator", "admin")
Z, X, Y = TILE


def endpoints(layer: str) -> list[tuple[str, str, dict]]:
    return [
        ("catalog record", f"/layers/{layer}", {}),
        ("collection", f"/collections/{layer}", {}),
        ("items", f"/collections/{layer}/items", {"limit": "5"}),
        ("item", f"/collections/{layer}/items/1", {}),
        ("export", f"/collections/{layer}/export", {"format": "geojson"}),
        ("stats", f"/collections/{layer}/stats", {}),
        ("tile", f"/collections/{layer}/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt", {}),
        ("composite tile", f"/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt", {"layers": f"parks,{layer}"}),
        ("tilejson", f"/collections/{layer}/tiles/WebMercatorQuad/tilejson.json", {}),
        ("composite tilejson", "/tiles/WebMercatorQuad/tilejson.json", {"layers": f"parks,{layer}"}),
    ]


def expected_allowed(who: str | None, layer: str, what: str) -> bool:
    roles = frozenset({who}) if who else frozenset({"public"})
    if LAYERS[layer] not in readable_levels(Principal(id="x", roles=roles)):
        return False
    # The operator key is scoped to owner KT: its row filter applies to the non-public layers.
    # Feature and tile routes apply it; the catalog record and TileJSON are metadata (no rows).
    return True


def _same_as_missing(c, path: str, params: dict, layer: str, r) -> None:
    missing = c.get(path.replace(layer, "no_such_layer"), params={
        k: v.replace(layer, "no_such_layer") for k, v in params.items()})
    assert r.status_code == missing.status_code == 404, (path, r.status_code, missing.status_code)
    a, b = r.json(), missing.json()
    assert (a["title"], a["type"]) == (b["title"], b["type"]), path
    assert a["detail"] == b["detail"].replace("no_such_layer", layer), path
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("who", WHO, ids=lambda w: w or "anonymous")
def test_every_role_gets_exactly_its_levels_on_every_endpoint(world, who):
    with world.client(who) as c:
        listed = {l["id"] for l in c.get("/layers").json()["layers"]}
        collections = {x["id"] for x in c.get("/collections").json()["collections"]}
        api = c.get("/api").text
        for layer in LAYERS:
            assert (layer in listed) == (LAYERS[layer] in readable_levels(
                Principal(id="x", roles=frozenset({who or "public"})))), (who, layer)
            assert (layer in collections) == (layer in listed), (who, layer)
            if layer not in listed:
                assert f"/collections/{layer}/" not in api and f"_{layer}\"" not in api, (who, layer)
            for what, path, params in endpoints(layer):
                r = c.get(path, params=params)
                assert_no_internals(r)
                if expected_allowed(who, layer, what):
                    if who == "operator" and what == "item" and r.status_code == 404:
                        # fid 1 is outside the operator's rows: "no feature", not "no layer"
                        assert r.json()["type"] == "/problems/not-found", r.text[:200]
                        continue
                    assert r.status_code in (200, 204), (who, what, path, r.status_code, r.text[:200])
                else:
                    _same_as_missing(c, path, params, layer, r)


@pytest.mark.parametrize("who", WHO, ids=lambda w: w or "anonymous")
def test_raster_tiles_of_a_restricted_raster_follow_the_same_rule(world, who):
    with world.client(who) as c:
        r = c.get(f"/collections/dem/tiles/WebMercatorQuad/{Z}/{X}/{Y}.png")
        assert_no_internals(r)
        # The KT-scoped operator: a raster has no owner column, so nothing of it (fail closed).
        if who in ("planner", "admin"):
            assert r.status_code in (200, 204), r.text[:200]
        else:
            _same_as_missing(c, f"/collections/dem/tiles/WebMercatorQuad/{Z}/{X}/{Y}.png", {}, "dem", r)


def test_a_key_scoped_to_layers_sees_only_those_non_public_layers(world):
    with world.client("planner_scoped") as c:
        ids = {l["id"] for l in c.get("/layers").json()["layers"]}
        assert {"parks", "districts", "survey_points"} <= ids and "facilities" not in ids and "dem" not in ids
        assert c.get("/collections/facilities/items").status_code == 404
        assert c.get("/collections/survey_points/items").status_code == 200


@pytest.mark.parametrize("key", ["expired", "revoked"])
def test_expired_and_revoked_keys_get_401_everywhere(world, key):
    with world.client(key) as c:
        for path in ("/layers", "/collections/parks/items", f"/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt?layers=parks"):
            r = c.get(path)
            assert r.status_code == 401, (path, r.status_code)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "bearer" in r.headers["www-authenticate"].lower()


@pytest.mark.parametrize("header", [{"Authorization": "Bearer gis_deadbeef0000_nope"},
                                    {"Authorization": "Token abc"}, {"X-API-Key": "garbage"},
                                    {"Authorization": "Bearer " + "x" * 5000}])
def test_garbled_keys_get_401_with_no_internals(world, header):
    with world.server.client(headers=header) as c:
        r = c.get("/collections/parks/items")
        assert r.status_code == 401
        assert_no_internals(r)


def test_composite_tile_with_a_hidden_layer_is_the_missing_layer_404(world):
    with world.client() as c:
        r = c.get(f"/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt", params={"layers": "parks,facilities"})
        assert r.status_code == 404 and "facilities" in r.json()["detail"]
        m = c.get(f"/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt", params={"layers": "parks,nothing_here"})
        assert r.json()["detail"] == m.json()["detail"].replace("nothing_here", "facilities")


def test_tiles_of_non_public_layers_are_never_stored_by_shared_caches(world):
    """A restricted tile is `private` and varies on the credentials; a public one is public."""
    checked = set()
    with world.client("planner") as c:
        for layer, level in LAYERS.items():
            r = c.get(f"/collections/{layer}/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt")
            if r.status_code not in (200, 204):
                continue
            checked.add(level)
            control = r.headers["cache-control"]
            if level == "public":
                assert "public" in control and "private" not in control, (layer, control)
            else:
                assert control.startswith("private") and "public" not in control, (layer, control)
                assert "Authorization" in r.headers["vary"], (layer, r.headers.get("vary"))
                again = c.get(f"/collections/{layer}/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt",
                              headers={"If-None-Match": r.headers["etag"]})
                assert again.status_code == 304 and again.headers["cache-control"] == control
        r = c.get(f"/tiles/WebMercatorQuad/{Z}/{X}/{Y}.mvt", params={"layers": "parks,facilities"})
        assert r.headers["cache-control"].startswith("private")
    assert checked >= {"public", "internal", "restricted"}
