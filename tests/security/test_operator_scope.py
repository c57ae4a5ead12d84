"""An operator key scoped to owner KT sees only KT's rows, on every feature path."""

from __future__ import annotations

import csv
import io

from gis_platform.security import Principal, row_filter, row_filter_key


def test_row_filter_contract_named_params_catalog_columns_and_stable_key(world):
    from layers.catalog import Attribute, Layer

    layer = Layer(id="f", title="f", kind="vector", table_name="f", access_level="restricted",
                  schema=[Attribute(name="owner", type="text"), Attribute(name="kind", type="text")])
    op = Principal(id="k", roles=frozenset({"operator"}), scopes={"owners": ["KT", "LG"], "kinds": ["gas"]})
    text, params = row_filter(op, layer, alias="src")
    assert text == ('("src"."kind"::text = ANY(%(rf_kinds)s) AND "src"."owner"::text = ANY(%(rf_owners)s))')
    assert params == {"rf_kinds": ["gas"], "rf_owners": ["KT", "LG"]}
    assert row_filter_key(op, layer) == "rf_kinds=gas;rf_owners=KT,LG"
    # a scope on a column the layer lacks: no rows (fail closed); admin/public: no filter
    no_col = Principal(id="k", roles=frozenset({"operator"}), scopes={"districts": ["11110"]})
    assert row_filter(no_col, layer) == ("FALSE", {})
    assert row_filter(Principal(id="a", roles=frozenset({"admin"}), scopes={"owners": ["KT"]}), layer) is None
    assert row_filter(op, layer.model_copy(update={"access_level": "public"})) is None
    assert row_filter_key(Principal(id="p", roles=frozenset({"planner"})), layer) == ""


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
