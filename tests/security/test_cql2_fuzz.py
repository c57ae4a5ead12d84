"""A grammar-based CQL2 fuzzer (hypothesis): filters built from the CQL2 grammar - known and
unknown properties, hostile strings, odd numbers, geometries, temporal literals, nesting -
sent to a live server.  Every one is answered 200 with a feature collection or 400 with a
problem that says why; none is a 500, none leaks internals, none changes the database, and
a key's row scope is never widened by a filter."""

from __future__ import annotations

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SecurityWorld, assert_no_internals

PROPS = ["owner", "kind", "district_code", "depth_m", "fid", "geometry", "nope", '"owner"',
         "OWNER", "depth_m)", "x--y"]
TEXT = st.one_of(
    st.sampled_from(["KT", "한국전력공사", "", "' OR 1=1 --", "'); DROP TABLE gis_meta.layers; --",
                     "%", "_", "\\", "O''Brien", "\x00", "a\nb", "${jndi}", "<script>"]),
    st.text(max_size=12))
NUMBERS = st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=False, width=64),
                    st.sampled_from(["1e309", "-0", "0x10", "1.2.3", "NaN", "Infinity"]))


def quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def literal() -> st.SearchStrategy[str]:
    return st.one_of(
        TEXT.map(quote),
        NUMBERS.map(str),
        st.sampled_from(["TRUE", "FALSE", "NULL", "DATE('2026-01-01')", "TIMESTAMP('2026-01-01T00:00:00Z')",
                         "DATE('2026-13-45')", "INTERVAL('2026-01-01', '..')",
                         "POINT(126.98 37.56)", "POINT(1e300 1e300)", "BBOX(126.9, 37.5, 127.1, 37.6)",
                         "POLYGON((126.9 37.5, 127.1 37.5, 127.1 37.6, 126.9 37.5))",
                         "POLYGON((0 0, 1 1, 0 0))", "LINESTRING(126.9 37.5)", "ENVELOPE(1,2,3,4)"]))


def predicate() -> st.SearchStrategy[str]:
    prop = st.sampled_from(PROPS)
    return st.one_of(
        st.tuples(prop, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), literal())
          .map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(prop, TEXT).map(lambda t: f"{t[0]} LIKE {quote(t[1])}"),
        st.tuples(prop, st.lists(literal(), min_size=1, max_size=4))
          .map(lambda t: f"{t[0]} IN ({', '.join(t[1])})"),
        st.tuples(prop, literal(), literal()).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
        prop.map(lambda p: f"{p} IS NULL"),
        prop.map(lambda p: f"{p} IS NOT NULL"),
        st.tuples(st.sampled_from(["S_INTERSECTS", "S_WITHIN", "S_CONTAINS", "S_DISJOINT", "S_CROSSES"]),
                  prop, literal()).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(prop, literal(), NUMBERS).map(lambda t: f"S_DWITHIN({t[0]}, {t[1]}, {t[2]}, meters)"),
        st.tuples(st.sampled_from(["T_AFTER", "T_BEFORE", "T_DURING", "T_INTERSECTS"]), prop, literal())
          .map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(prop, st.sampled_from(["+", "-", "*", "/"]), NUMBERS, literal())
          .map(lambda t: f"({t[0]} {t[1]} {t[2]}) > {t[3]}"),
        st.sampled_from(["", "(", ")", "AND", "owner = ", "1 = 1", "CASEI(owner) = 'kt'",
                         "owner = 'KT' OR 1 = 1"]),
    )


def condition(depth: int = 0) -> st.SearchStrategy[str]:
    if depth >= 3:
        return predicate()
    sub = st.deferred(lambda: condition(depth + 1))
    return st.one_of(
        predicate(),
        st.tuples(sub, st.sampled_from(["AND", "OR"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda c: f"NOT ({c})"),
    )


def _state(world: SecurityWorld) -> tuple:
    with psycopg.connect(world.db_url) as conn:
        return (conn.execute("SELECT id, data_version FROM gis_meta.layers ORDER BY id").fetchall(),
                conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'gis_data'").fetchone())


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(flt=condition())
def test_any_cql2_filter_is_a_200_or_a_400_never_a_500(world: SecurityWorld, flt: str):
    before = _state(world)
    with world.client("operator") as c:             # owners: KT - a filter must not widen it
        r = c.get("/collections/facilities/items", params={"filter": flt, "limit": "50"})
    assert r.status_code in (200, 400), (flt, r.status_code, r.text[:300])
    assert_no_internals(r)
    if r.status_code == 200:
        doc = r.json()
        assert doc["type"] == "FeatureCollection"
        assert {f["properties"]["owner"] for f in doc["features"]} <= {"KT"}, flt
    else:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"]
    assert _state(world) == before, flt


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(prop=st.sampled_from(PROPS), value=st.one_of(TEXT, NUMBERS.map(str)),
       op=st.sampled_from(["=", "<>", "<", ">", "like"]))
def test_any_cql2_json_filter_is_a_200_or_a_400(world: SecurityWorld, prop, value, op):
    import orjson

    doc = {"op": op, "args": [{"property": prop}, value]}
    with world.client("planner") as c:
        r = c.get("/collections/facilities/items",
                  params={"filter": orjson.dumps(doc).decode(), "filter-lang": "cql2-json"})
    assert r.status_code in (200, 400), (doc, r.status_code, r.text[:300])
    assert_no_internals(r)
