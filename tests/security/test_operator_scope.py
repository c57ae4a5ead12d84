"""An operator key scoped to owner KT sees only KT's rows, on every feature path."""

from __future__ import annotations

import csv
import io

from gis_platform.access import NO_ROWS, row_filter_for
from gis_platform.principal import Principal


def test_row_filter_contract_composed_sql_catalog_columns_and_stable_key(world):
    from layers.catalog import Attribute, Layer

    layer = Layer(id="f", title="f", kind="vector", table_name="f", access_level="restricted",
                  schema=[Attribute(name="owner", type="text"), Attribute(name="kind", type="text")])
    op = Principal(id="k", roles=frozenset({"operator"}), scopes={"owners": ["LG", "KT"], "kinds": ["gas"]})
    rows = row_filter_for(op, layer.resource)
    cond, params = rows.named("src", "rf0_")
    assert cond.as_string(None) == ('"src"."kind"::text = ANY(%(rf0_0)s) AND '
                                    '"src"."owner"::text = ANY(%(rf0_1)s)')
    assert params == {"rf0_0": ["gas"], "rf0_1": ["KT", "LG"]}
    frag = rows.frag()
    assert frag.sql.as_string(None) == '"kind"::text = ANY(%s) AND "owner"::text = ANY(%s)'
    assert frag.params == [["gas"], ["KT", "LG"]]
    assert rows.key == '[["kind",["gas"]],["owner",["KT","LG"]]]'
    # a scope on a column the layer lacks: no rows (fail closed); admin/public: no filter
    no_col = Principal(id="k", roles=frozenset({"operator"}), scopes={"districts": ["11110"]})
    assert row_filter_for(no_col, layer.resource) == NO_ROWS
    admin = Principal(id="a", roles=frozenset({"admin"}), scopes={"owners": ["KT"]})
    assert row_filter_for(admin, layer.resource) is None
    assert row_filter_for(op, layer.model_copy(update={"access_level": "public"}).resource) is None
    assert row_filter_for(Principal(id="p", roles=frozenset({"planner"})), layer.resource) is None


def test_scope_values_with_commas_do_not_share_a_key():
    from gis_platform.access import Resource

    res = Resource("layer", "f", "restricted", frozenset({"owner"}))
    one = Principal(id="a", roles=frozenset({"operator"}), scopes={"owners": ["KT,LG"]})
    two = Principal(id="b", roles=frozenset({"operator"}), scopes={"owners": ["KT", "LG"]})
    assert row_filter_for(one, res).key != row_filter_for(two, res).key


def test_an_empty_scope_grants_nothing():
    from gis_platform.access import Resource, decide

    res = Resource("layer", "f", "restricted", frozenset({"owner"}))
    empty_rows = Principal(id="a", roles=frozenset({"operator"}), scopes={"owners": []})
    assert row_filter_for(empty_rows, res) == NO_ROWS
    empty_layers = Principal(id="b", roles=frozenset({"planner"}), scopes={"layers": []})
    assert not decide(empty_layers, "read", res).allowed
    assert not decide(empty_layers, "create", Resource.new_layer("x")).allowed


def test_operator_items_export_stats_and_item_show_only_their_rows(world):
    fac = world.facilities
    kt = fac[fac.owner == "KT"]
    with world.client("operator") as c:
        items = c.get("/collections/facilities/items", params={"limit": "1000"}).json()
        assert items["numberMatched"] == len(kt)
        assert {f["properties"]["owner"] for f in items["features"]} == {"KT"}
        exp = c.get("/collections/facilities/export", params={"format": "csv", "geometry": "none"})
        rows = list(csv.DictReader(io.StringIO(exp.content.decode("utf-8-sig"))))
        assert len(rows) == len(kt) and {r["owner"] for r in rows} == {"KT"}
        stats = c.get("/collections/facilities/stats", params={"group-by": "owner"}).json()
        assert stats["total"]["count"] == len(kt) and [g["value"] for g in stats["groups"]] == ["KT"]
        other_fid = int(fac.index[fac.owner != "KT"][0]) + 1     # fids are 1-based in file order
        mine_fid = int(kt.index[0]) + 1
        assert c.get(f"/collections/facilities/items/{mine_fid}").status_code == 200
        r = c.get(f"/collections/facilities/items/{other_fid}")
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
        # CQL cannot widen the filter, and a hidden row is no stats area either
        wide = c.get("/collections/facilities/items", params={"filter": "owner <> 'KT' OR 1 = 1"}).json()
        assert {f["properties"]["owner"] for f in wide["features"]} <= {"KT"}
        area = c.get("/collections/parks/stats", params={"area": f"facilities:{other_fid}"}).json()
        assert area["total"]["count"] == 0
        near = c.get("/collections/facilities/nearest", params={"point": "126.98,37.56", "limit": "20"}).json()
        assert {f["properties"]["owner"] for f in near["features"]} == {"KT"}
    with world.client("planner") as c:
        assert c.get("/collections/facilities/items", params={"limit": "1"}).json()["numberMatched"] == len(fac)
