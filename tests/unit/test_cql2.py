"""CQL2 text and JSON -> parameterized SQL, checked on the composed text and parameters."""

from __future__ import annotations

import pytest

from features.cql import MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parse_filter, to_sql
from gis_platform.errors import InvalidParameter
from layers.spatial import CRS84_REF


def sql_of(text: str, layer, lang: str | None = None) -> tuple[str, list]:
    frag = to_sql(parse_filter(text, lang), layer, CRS84_REF)
    return frag.sql.as_string(None), frag.params


def test_comparisons_become_quoted_columns_and_parameters(mains):
    text, params = sql_of("owner = 'KT' AND depth_m > 1.5", mains)
    assert text == '(("owner" = %s) AND ("depth_m" > %s))'
    assert params == ["KT", 1.5]


def test_values_never_reach_the_sql_text(mains):
    text, params = sql_of("owner = '''; DROP TABLE x; --'", mains)
    assert "DROP" not in text and params == ["'; DROP TABLE x; --"]


def test_a_chain_of_one_operator_is_composed_flat(mains):
    text, params = sql_of(" OR ".join(f"diameter_mm = {i}" for i in range(150)), mains)
    assert text.count("(") == 151 and len(params) == 150      # one group, no nesting


@pytest.mark.parametrize("flt, words", [
    ("nope = 1", "Unknown property 'nope'"),
    ("owner > 3", "Cannot compare a text with a number"),
    ("owner LIKE 5", "LIKE needs a text property"),
    ("S_INTERSECTS(owner, POINT(1 2))", "Spatial operators need the geometry property"),
    ("depth_m = ", "syntax error"),
    (" AND ".join(f"diameter_mm = {i}" for i in range(MAX_FILTER_TERMS + 1)), "more than 200 conditions"),
])
def test_bad_filters_are_400s_that_say_why(mains, flt, words):
    with pytest.raises(InvalidParameter, match=words):
        sql_of(flt, mains)


def test_nesting_is_limited_after_parsing(mains):
    deep = "owner = 'a'"
    for i in range(MAX_FILTER_DEPTH + 2):
        deep = f"(kind = '{i}' {'AND' if i % 2 else 'OR'} {deep})"
    with pytest.raises(InvalidParameter, match="levels deep"):
        parse_filter(deep)


def test_cql2_1_0_forms_the_upstream_grammar_lacks(mains):
    text, params = sql_of("S_DWITHIN(geometry, POINT(126.98 37.56), 1, kilometers)", mains)
    assert "ST_DWithin" in text and 1000.0 in params
    text, _ = sql_of("T_AFTER(installed, DATE('2020-01-01'))", mains)
    assert '"installed" >' in text
    text, params = sql_of("owner = 'O''Brien' AND kind IN ('gas', 'power')", mains)
    assert params == ["O'Brien", "gas", "power"]


def test_json_and_text_give_the_same_sql(mains):
    as_text = sql_of("owner = 'KT'", mains)
    as_json = sql_of('{"op": "=", "args": [{"property": "owner"}, "KT"]}', mains, "cql2-json")
    assert as_text == as_json
