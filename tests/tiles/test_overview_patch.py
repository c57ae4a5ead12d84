"""Overviews follow row changes in place (#17): the levels are updated where the rows changed,
and each level then holds exactly what a full rebuild would."""

from __future__ import annotations

import asyncio

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely

from layers.ingest import ingest_geodataframe
from tests.conftest import owner_url
from tile_server.overview_build import OverviewPlan, build_layer, list_overviews, patch_layer
from tile_server.sources import TileTuning

#: Small budgets, so that per-tile ranking and merging decide what each level keeps.
TUNING = TileTuning(overview_max_features=12)
PLAN = OverviewPlan(zooms=(8, 10, 12, 14, 16), min_features=1)


def network(n: int = 1500, seed: int = 7) -> gpd.GeoDataFrame:
    """Short lines (10-300 m) of a few classes scattered over 20 x 15 km of Seoul: dense enough
    for every level's per-tile budget to bind, and for chains to merge."""
    rng = np.random.default_rng(seed)
    x = 126.85 + rng.random(n) * 0.22
    y = 37.45 + rng.random(n) * 0.14
    length = 0.0001 + rng.random(n) * 0.003
    lines = [shapely.LineString([(a, b), (a + d, b + d * 0.3)]) for a, b, d in zip(x, y, length)]
    # some end-to-end chains along one street
    lines += [shapely.LineString([(126.95 + i * 0.001, 37.5), (126.951 + i * 0.001, 37.5)]) for i in range(40)]
    m = len(lines)
    return gpd.GeoDataFrame({"kind": [["water", "gas", "sewer"][i % 3] for i in range(m)],
                             "depth_m": [1.0 + (i % 7) * 0.3 for i in range(m)]},
                            geometry=lines, crs="EPSG:4326")


def level_rows(url: str, layer_id: str) -> dict[int, set]:
    async def read():
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            out = {}
            for o in await list_overviews(conn):
                if o.layer_id != layer_id:
                    continue
                cur = await conn.execute(psycopg.sql.SQL(
                    "SELECT __fid, to_jsonb(t) - '__geom' - '__fid' - '__size', ST_AsEWKT(__geom), "
                    "round(__size::numeric, 6) FROM tiles.{} AS t").format(psycopg.sql.Identifier(o.table_name)))
                out[o.zoom] = {(r[0], str(r[1]), r[2], r[3]) for r in await cur.fetchall()}
            return out
    return asyncio.run(read())


def test_a_patched_level_equals_a_rebuilt_one(db_url):
    url = owner_url(db_url)
    ingest_geodataframe(db_url, network(), "net")
    built = asyncio.run(build_layer(url, "net", TUNING, PLAN, force=True))
    assert sorted(b.zoom for b in built) == [8, 10, 12, 14, 16]
    before = level_rows(url, "net")
    # three edits: a line moved across the city, one deleted, one added in the chained street
    with psycopg.connect(db_url) as conn:
        old = conn.execute("SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) "
                           "FROM gis_data.net WHERE fid = 10").fetchone()
        conn.execute("UPDATE gis_data.net SET geom = ST_GeomFromText('LINESTRING(127.04 37.57, 127.045 37.571)', "
                     "4326) WHERE fid = 10")
        gone = conn.execute("DELETE FROM gis_data.net WHERE fid = 1520 RETURNING ST_XMin(geom), ST_YMin(geom), "
                            "ST_XMax(geom), ST_YMax(geom)").fetchone()
        conn.execute("INSERT INTO gis_data.net (fid, kind, depth_m, geom) VALUES (99999, 'water', 2.0, "
                     "ST_GeomFromText('LINESTRING(126.99 37.5, 126.991 37.5)', 4326))")
    boxes = [old, (127.04, 37.57, 127.045, 37.571), gone, (126.99, 37.5, 126.991, 37.5)]
    patched = asyncio.run(patch_layer(url, "net", TUNING, PLAN, boxes))
    assert patched is not None and sorted(p.zoom for p in patched) == [8, 10, 12, 14, 16]
    after_patch = level_rows(url, "net")
    assert after_patch != before                      # the edits reached every level ...
    assert all(after_patch[z] != before[z] for z in (12, 14, 16))
    asyncio.run(build_layer(url, "net", TUNING, PLAN, force=True, rebuild=True))
    rebuilt = level_rows(url, "net")
    for z in sorted(rebuilt):                         # ... exactly as a rebuild has them
        assert after_patch[z] == rebuilt[z], f"level {z}: {len(after_patch[z] ^ rebuilt[z])} rows differ"


def test_no_patch_without_a_complete_set_of_levels(db_url):
    url = owner_url(db_url)
    ingest_geodataframe(db_url, network(200), "net")
    assert asyncio.run(patch_layer(url, "net", TUNING, PLAN, [(126.9, 37.5, 126.91, 37.51)])) is None


@pytest.mark.parametrize("zoom", [8, 12, 16])
@pytest.mark.parametrize("merged", [True, False])
def test_patch_regions_cover_the_change(zoom, merged):
    from tile_server.overview_build import WEB_MERCATOR_HALF, _mercator, patch_regions

    (core, halo), = patch_regions([(126.97, 37.55, 126.98, 37.56)], zoom, merged)
    t = 2 * WEB_MERCATOR_HALF / 2 ** zoom
    ring = t if merged else 0
    x0, y0 = _mercator(126.97, 37.55)
    x1, y1 = _mercator(126.98, 37.56)
    assert core[0] <= x0 - ring + 1e-6 and core[2] >= x1 + ring - 1e-6 and core[1] <= y0 - ring + 1e-6
    assert all(abs(v / t - round(v / t)) < 1e-9 for v in core)        # whole tiles
    m = t if merged else t / 2
    assert halo == (core[0] - m, core[1] - m, core[2] + m, core[3] + m)
