"""Where a published layer's rows live, as SQL pieces: ids, keys, function arguments,
qualified names (no database)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from psycopg import sql

from gis_platform.errors import InvalidParameter
from layers.changes import Change, ChangeLog, Snapshot
from layers.publish import parse_qualified
from layers.relation import FunctionArg, KeyColumn, Relation, RowSource, parse_arg, parse_args, quote_ident


def rows(key, kind="table", geography=False, srid=5186, args=()):
    rel = Relation(kind=kind, schema="City Data", name="Water Mains", geometry_column="the_geom",
                   geography=geography, geographic=srid == 4326, key=[KeyColumn(name=n, type=t) for n, t in key],
                   args=list(args))
    table = None if kind == "function" else sql.Identifier(rel.schema_name, rel.name)
    return RowSource(table, rel, srid)


def text(c: sql.Composable) -> str:
    return c.as_string(None)


def test_an_ingested_layer_reads_fid_and_geom():
    r = RowSource(sql.Identifier("gis_data", "roads"), None, 4326)
    assert text(r.fid("s")) == '"s"."fid"' and text(r.geom()) == '"geom"'
    assert r.id_kind == "int" and text(r.id_json()) == """'"id":' || "fid" || ','"""
    w = r.id_where("12")
    assert text(w.sql) == '"fid" = %s' and w.params == [12]
    assert r.id_where("12.0") is None and r.id_where("x") is None and r.id_where(str(2**63)) is None


def test_keys_of_every_type_give_ids_and_lookups():
    r = rows([("MainID", "bigint")])
    assert r.id_kind == "int" and text(r.mvt_id("s")) == '"s"."MainID"'
    u = rows([("id", "uuid")])
    assert u.id_kind == "text" and u.mvt_id() is None
    w = u.id_where("0f4b2c1e-0000-0000-0000-000000000000")
    assert text(w.sql) == '"id" = CAST(%s AS uuid)'
    c = rows([("district", "text"), ("lot", "integer")])
    w = c.id_where("jung%7E2~12")
    assert text(w.sql) == '"district" = %s AND "lot" = CAST(%s AS integer)'
    assert w.params == ["jung~2", "12"]
    assert c.id_where("only-one-part") is None and c.id_where("a~b~c") is None
    assert "concat_ws('~'" in text(c.fid())
    none = rows([])
    assert none.id_kind == "none" and none.id_where("1") is None and text(none.id_json()) == "''"
    assert text(none.order()[0]) == '"ctid"'
    assert rows([], kind="view").order() == []


def test_geography_and_foreign_srids_are_cast_and_transformed():
    g = rows([("id", "integer")], geography=True, srid=4326)
    assert text(g.geom("s")) == '("s"."the_geom")::geometry'
    assert text(g.geography("s")) == '"s"."the_geom"'
    p = rows([("id", "integer")], srid=5186)
    assert text(p.geom_in(4326)) == 'ST_Transform("the_geom", 4326)'
    assert text(p.geom_in(5186)) == '"the_geom"'
    assert text(p.geography()) == '(ST_Transform("the_geom", 4326))::geography'


def test_function_arguments_are_typed_and_bound_as_parameters():
    args = [FunctionArg(name="min_depth", type="double precision"),
            FunctionArg(name="on", type="date", required=False),
            FunctionArg(name="owner", type="text", required=False)]
    r = rows([("MainID", "bigint")], kind="function", args=args)
    rel = r.relation
    given = parse_args(rel, {"min_depth": "2.5", "on": "2026-01-02"})
    assert given == {"min_depth": 2.5, "on": dt.date(2026, 1, 2)}
    src = r.from_(given)
    assert text(src.sql) == ('"City Data"."Water Mains"("min_depth" => CAST(%s AS double precision), '
                             '"on" => CAST(%s AS date))')
    assert src.params == [2.5, dt.date(2026, 1, 2)]
    named = r.from_(given, named="fa0_")
    assert "%(fa0_0)s" in text(named.sql) and named.params == [{"fa0_0": 2.5, "fa0_1": dt.date(2026, 1, 2)}]
    with pytest.raises(InvalidParameter, match="min_depth is required"):
        parse_args(rel, {})
    for bad in ("deep", "nan", "inf"):
        with pytest.raises(InvalidParameter, match="number"):
            parse_args(rel, {"min_depth": bad})
    assert parse_arg(FunctionArg(name="k", type="uuid"), str(uuid.UUID(int=5))) == uuid.UUID(int=5)
    assert parse_arg(FunctionArg(name="t", type="timestamp with time zone"), "2026-01-02T03:04:05").tzinfo
    with pytest.raises(InvalidParameter, match="whole number"):
        parse_arg(FunctionArg(name="n", type="integer"), "1.5")
    with pytest.raises(InvalidParameter, match="true or false"):
        parse_arg(FunctionArg(name="b", type="boolean"), "yes")


def test_qualified_names_and_quoting():
    assert parse_qualified('"City Data"."Water Mains"') == ("City Data", "Water Mains", True)
    assert parse_qualified("utility.valves") == ("utility", "valves", False)
    assert parse_qualified('a."b""c"') == ("a", 'b"c', True)
    for bad in ("nope", "a.b.c", "", ".x", "a. "):
        with pytest.raises(InvalidParameter):
            parse_qualified(bad)
    assert quote_ident("valves") == "valves" and quote_ident("Water Mains") == '"Water Mains"'
    assert quote_ident("order") == '"order"' and quote_ident('a"b') == '"a""b"'


def test_change_log_signatures_touch_only_changed_tiles():
    log = ChangeLog([Change(10, 100, (127.0, 37.5, 127.1, 37.6)), Change(12, 101, None)])
    here, there = (127.05, 37.55, 127.06, 37.56), (126.0, 36.0, 126.1, 36.1)
    assert log.signature(here) != log.signature(there)          # the first touches only "here"
    grown = ChangeLog([*log.changes, Change(11, 99, (126.05, 36.05, 126.06, 36.06))])
    assert grown.signature(there) != log.signature(there)        # a late commit, lower version
    assert grown.signature(here) == log.signature(here)
    snap = Snapshot.parse("100:102:101")
    assert snap.sees(99) and not snap.sees(101) and not snap.sees(102)
    assert log.unseen(snap, here) and not ChangeLog([Change(10, 100, here)]).unseen(Snapshot.parse("101:101:"), here)
    assert log.extent() is None and ChangeLog([Change(1, 1, here)]).extent() == here
