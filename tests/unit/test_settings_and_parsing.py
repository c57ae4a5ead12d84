"""Settings by concern from flat names; request parameters (bbox, CRS, limit, properties,
sortby, datetime) parsed into safe values or a 400."""

from __future__ import annotations

import pytest

from features.query import ItemsQuery, parse_items_query, parse_limit
from gis_platform.config import Settings, env_names
from gis_platform.errors import InvalidParameter
from gis_platform.principal import ANONYMOUS
from layers.spatial import parse_bbox, parse_crs


def test_flat_environment_names_land_in_their_groups(monkeypatch):
    monkeypatch.setenv("GIS_TILE_EXTENT", "512")
    monkeypatch.setenv("GIS_CORS_ORIGINS", "https://a.example, https://b.example")
    s = Settings(_env_file=None, database_url="postgresql://x/y", features_max_limit=500)
    assert s.tiles.extent == 512 and s.database.url == "postgresql://x/y"
    assert s.http.cors_origins == ["https://a.example", "https://b.example"]
    assert s.features.max_limit == 500 and not s.embedded
    assert env_names()["domains_roads_layer"] == ("domains", "roads_layer")
    with pytest.raises(TypeError, match="Unknown setting"):
        Settings(_env_file=None, tile_extnet=1)


def test_axis_order_follows_the_crs():
    crs84, epsg4326 = parse_crs(None), parse_crs("http://www.opengis.net/def/crs/EPSG/0/4326")
    assert parse_bbox("126.9,37.5,127.1,37.6", crs84) == (126.9, 37.5, 127.1, 37.6)
    assert parse_bbox("37.5,126.9,37.6,127.1", epsg4326) == (126.9, 37.5, 127.1, 37.6)
    assert parse_crs("EPSG:5179").north_first
    with pytest.raises(InvalidParameter):
        parse_crs("EPSG:99999")


def test_items_parameters(mains):
    settings = Settings(_env_file=None)
    planner = ANONYMOUS.__class__(id="k", roles=frozenset({"planner"}))
    q = parse_items_query({"limit": "20", "properties": "owner,kind", "sortby": "-depth_m",
                           "datetime": "2020-01-01/..", "owner": "KT"}, mains, settings,
                          principal=planner)
    assert isinstance(q, ItemsQuery) and q.limit == 20 and q.properties == ["owner", "kind"]
    assert q.sortby == [("depth_m", True)]
    text = q.where_frag().sql.as_string(None)
    assert '"installed" >=' in text and '"owner" = %s' in text
    for bad in ({"limit": "0"}, {"limit": "abc"}, {"sortby": "nope"}, {"properties": "nope"},
                {"datetime": "yesterday"}, {"bbox": "1,2,3"}, {"unknown_param": "1"}):
        with pytest.raises(InvalidParameter):
            parse_items_query(bad, mains, settings, principal=planner)
    assert parse_limit({}, settings) == settings.features.default_limit


def test_a_row_scoped_caller_gets_the_filter_first(mains):
    op = ANONYMOUS.__class__(id="k", roles=frozenset({"operator"}), scopes={"owners": ["KT"]})
    q = parse_items_query({}, mains, Settings(_env_file=None), principal=op)
    assert q.where[0].sql.as_string(None) == '"owner"::text = ANY(%s)' and q.where[0].params == [["KT"]]
