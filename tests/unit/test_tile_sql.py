"""Tile SQL composition and per-tile numbers (no database)."""

from __future__ import annotations

import morecantile

from gis_platform.access import RowFilter
from gis_platform.config import TileSettings
from tile_server.bands import band_attributes, zoom_band
from tile_server.sources import TileTuning
from tile_server.tms import tile_bounds
from tile_server.vector_sql import LayerPlan, SqlCache, compose_layer_sql, tile_params

WM = morecantile.tms.get("WebMercatorQuad")


def test_bands_follow_the_settings(mains):
    tuning = TileTuning.from_settings(TileSettings())
    assert [zoom_band(z, tuning) for z in (10, 13, 15)] == ["overview", "mid", "detail"]
    assert len(band_attributes(mains, "overview", tuning)) == 3
    assert band_attributes(mains, "detail", tuning) == [a.name for a in mains.attributes]


def test_a_row_filter_is_composed_into_the_statement_with_named_parameters(mains):
    tuning = TileTuning.from_settings(TileSettings())
    cond, params = RowFilter((("owner", ("KT",)),)).named("src", "rf0_")
    text = compose_layer_sql(mains, "WebMercatorQuad", "detail", tuning, cond).as_string(None)
    assert '"src"."owner"::text = ANY(%(rf0_0)s)' in text and params == {"rf0_0": ["KT"]}
    assert '"gis_data"."gas_mains"' in text


def test_statements_are_cached_per_layer_version_and_filter(mains):
    tuning = TileTuning.from_settings(TileSettings())
    cache = SqlCache()
    a = cache.statement([LayerPlan(mains)], "WebMercatorQuad", "mid", tuning)
    assert cache.statement([LayerPlan(mains)], "WebMercatorQuad", "mid", tuning) is a
    newer = mains.model_copy(update={"data_version": 2})
    assert cache.statement([LayerPlan(newer)], "WebMercatorQuad", "mid", tuning) is not a


def test_tile_params_are_the_tile_envelope_and_pixel_sizes():
    tuning = TileTuning.from_settings(TileSettings())
    tile = morecantile.Tile(3492, 1586, 12)
    bounds = tile_bounds(WM, tile, tuning.buffer / tuning.extent)
    p = tile_params(WM, tile, bounds, tuning)
    assert p["xmin"] < p["xmax"] and p["gxmin"] < 126.98 < p["gxmax"]
    assert abs(p["minsize_m"] - (p["xmax"] - p["xmin"]) / 256) < 1e-6
