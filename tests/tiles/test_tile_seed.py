"""``gis-platform tiles seed`` fills the cache the server then serves from."""

from __future__ import annotations

import morecantile

from tests.conftest import start_server
from tests.tiles.conftest import STUB_LAT, STUB_LON

WM = morecantile.tms.get("WebMercatorQuad")
BBOX = "126.97,37.56,126.99,37.57"


def serve_one(settings, z: int) -> tuple[int, int]:
    """Start a server, get one roads tile at zoom ``z``: (disk cache hits, misses)."""
    srv = start_server(settings)
    try:
        cache = srv.app.state.tile_service.cache
        with srv.client() as c:
            t = WM.tile(STUB_LON, STUB_LAT, z)
            r = c.get(f"/collections/roads/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
            assert r.status_code == 200
        return cache.hits_disk, cache.misses
    finally:
        srv.stop()


def run_cli(args, env):
    """The real command in a process of its own (run as root, it becomes the service user)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "gis_platform.cli", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    proc.exit_code, proc.output = proc.returncode, proc.stdout + proc.stderr
    return proc


def test_seed_renders_the_range_and_the_server_answers_from_disk(city, tile_settings):
    settings = tile_settings()
    env = {"GIS_DATABASE_URL": city, "GIS_DATA_DIR": str(settings.data_dir)}
    res = run_cli(["tiles", "seed", "--layer", "roads", "--zooms", "12-14", "--bbox", BBOX], env)
    assert res.exit_code == 0, res.output
    expected = sum(1 for _ in WM.tiles(*map(float, BBOX.split(",")), [12, 13, 14], truncate=True))
    assert f"seeded {expected} tiles" in res.output
    files = [p for p in (settings.resolved_data_dir() / "tile-cache").rglob("*") if p.is_file()]
    # A public layer is stored once per distinct access key (public / +internal / all).
    assert len(files) == expected * 3

    again = run_cli(["tiles", "seed", "--layer", "roads", "--zooms", "12-14", "--bbox", BBOX], env)
    assert f"{expected} already cached" in again.output

    assert serve_one(settings, 14) == (1, 0)


def test_seed_of_a_restricted_layer_stores_it_only_for_callers_who_may_read_it(city, tile_settings):
    settings = tile_settings()
    env = {"GIS_DATABASE_URL": city, "GIS_DATA_DIR": str(settings.data_dir)}
    res = run_cli(["tiles", "seed", "--layer", "facilities", "--zooms", "14", "--bbox", BBOX], env)
    assert res.exit_code == 0, res.output
    expected = sum(1 for _ in WM.tiles(*map(float, BBOX.split(",")), [14], truncate=True))
    files = [p for p in (settings.resolved_data_dir() / "tile-cache").rglob("*") if p.is_file()]
    assert len(files) == expected            # only the key of planners, operators and admins
    assert "['internal,public,restricted']" in res.output


def test_seed_rejects_a_malformed_zoom_range_and_unknown_layers(city, tile_settings):
    env = {"GIS_DATABASE_URL": city, "GIS_DATA_DIR": str(tile_settings().data_dir)}
    bad = run_cli(["tiles", "seed", "--layer", "roads", "--zooms", "ten"], env)
    assert bad.exit_code != 0 and "zooms" in bad.output
    missing = run_cli(["tiles", "seed", "--layer", "nope", "--zooms", "10"], env)
    assert missing.exit_code == 1 and "nope" in missing.output


def test_seed_builds_missing_overviews_first_and_the_server_hits_the_seeded_tiles(city, tile_settings):
    import psycopg

    settings = tile_settings(tile_overview_min_features=10, tile_overview_auto_build=False)
    env = {"GIS_DATABASE_URL": city, "GIS_DATA_DIR": str(settings.data_dir),
           "GIS_TILE_OVERVIEW_MIN_FEATURES": "10"}
    res = run_cli(["tiles", "seed", "--layer", "roads", "--zooms", "10-11", "--bbox", BBOX], env)
    assert res.exit_code == 0, res.output
    assert "overview tables first" in res.output
    with psycopg.connect(city) as conn:
        zooms = [r[0] for r in conn.execute(
            "SELECT zoom FROM tiles.overviews WHERE layer_id = 'roads' ORDER BY zoom")]
    assert zooms == [8, 10, 11, 12, 13, 14, 16]
    # The seeded tile was rendered from the overview, under the key the server uses.
    assert serve_one(settings, 11) == (1, 0)
