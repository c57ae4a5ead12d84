"""The one access decision, as a table: roles x levels x scopes x actions."""

from __future__ import annotations

import pytest

from gis_platform.access import APPLICANTS, PERMITS, Resource, decide, row_filter_for
from gis_platform.principal import Principal

LAYER = {level: Resource("layer", f"l_{level}", level, frozenset({"owner", "kind"}))
         for level in ("public", "internal", "restricted")}


def who(role: str | None, **scopes) -> Principal:
    if role is None:
        return Principal()
    return Principal(id=f"key:{role}", roles=frozenset({role}), scopes=scopes)


@pytest.mark.parametrize("role, levels", [
    (None, {"public"}), ("citizen", {"public"}), ("staff", {"public", "internal"}),
    ("planner", {"public", "internal", "restricted"}), ("operator", {"public", "internal", "restricted"}),
    ("admin", {"public", "internal", "restricted"}),
])
def test_roles_read_their_levels_and_everything_else_is_a_404(role, levels):
    for level, res in LAYER.items():
        d = decide(who(role), "read", res)
        assert d.allowed == (level in levels)
        assert d.allowed or d.status == 404


def test_writes_need_a_writing_role():
    assert decide(who(None), "write", LAYER["public"]).status == 401
    assert decide(who("operator"), "write", LAYER["public"]).status == 403
    assert decide(who("planner"), "write", LAYER["public"]).allowed
    assert decide(who(None), "write", LAYER["public"], anonymous_writes=True).allowed


def test_a_layer_scope_limits_reads_of_hidden_data_and_every_write():
    p = who("planner", layers=["l_internal"])
    assert decide(p, "read", LAYER["internal"]).allowed
    assert decide(p, "read", LAYER["restricted"]).status == 404
    assert decide(p, "read", LAYER["public"]).allowed                 # public stays public
    assert decide(p, "write", LAYER["public"]).status == 403
    assert decide(p, "write", LAYER["restricted"]).status == 404      # hidden: no oracle
    assert decide(p, "create", Resource.new_layer("l_internal")).allowed
    assert decide(p, "create", Resource.new_layer("other")).status == 403


def test_row_scopes_filter_rows_and_forbid_whole_layer_writes():
    p = who("operator", owners=["KT"])
    d = decide(p, "read", LAYER["restricted"])
    assert d.allowed and d.rows.terms == (("owner", ("KT",)),)
    assert decide(p, "read", LAYER["public"]).rows is None
    planner = who("planner", kinds=["power"])
    assert decide(planner, "write", LAYER["restricted"]).status == 403
    assert decide(planner, "create", Resource.new_layer("x")).status == 403
    raster = Resource("layer", "dem", "restricted", has_rows=False)
    assert decide(p, "read", raster).status == 404


def test_indicators_need_every_source_layer_in_scope_and_no_row_scope():
    ind = Resource("indicator", "len", "restricted", has_rows=False, sources=("fac",))
    assert decide(who("planner"), "read", ind).allowed
    assert decide(who("planner", layers=["fac"]), "read", ind).allowed
    assert not decide(who("planner", layers=["roads"]), "read", ind).allowed
    assert not decide(who("operator", owners=["KT"]), "read", ind).allowed
    orphan = Resource("indicator", "csv", "restricted", has_rows=False)
    assert not decide(who("planner", layers=["fac"]), "read", orphan).allowed


def test_permits_and_applicants():
    district = who("planner", districts=["11110"])
    d = decide(district, "write_rows", PERMITS)
    assert d.allowed and d.rows.terms == (("district_code", ("11110",)),)
    assert decide(district, "write", PERMITS).status == 403
    assert decide(who("operator", owners=["KT"]), "write_rows", PERMITS).status == 403
    assert decide(who(None), "read", APPLICANTS).status == 401
    assert decide(who("staff"), "read", APPLICANTS).status == 403
    assert decide(who("operator"), "read", APPLICANTS).status == 403
    assert decide(who("planner"), "read", APPLICANTS).allowed


def test_empty_scopes_grant_nothing():
    assert row_filter_for(who("operator", owners=[]), LAYER["restricted"]).nothing
    assert not decide(who("planner", layers=[]), "read", LAYER["internal"]).allowed
