"""Recovery cases at CI size: a full cache disk, and the database dying mid-ingest.

(A database restart under a live server, a killed worker and the statement timeout are
covered in tests/test_platform_api.py, tests/ops/test_workers.py and
tests/features/test_timeout.py; bench/ops/faults.py runs all of them under load.)
"""

from __future__ import annotations

import gzip
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import httpx
import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely

from gis_platform.config import Settings
from gis_platform.db import migrations
from gis_platform.db.embedded import EmbeddedPostgres
from layers.ingest import ingest_geodataframe
from tests.conftest import _make_world_traversable_tmp, free_port

ROOT = Path(__file__).resolve().parents[2]


def _points(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    return gpd.GeoDataFrame({"name": np.char.add("p", np.arange(n).astype(str)),
                             "value": rng.random(n)},
                            geometry=shapely.points(rng.uniform(126.9, 127.05, n),
                                                    rng.uniform(37.5, 37.6, n)), crs="EPSG:4326")


def _no_file_writes():
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))   # every non-empty file write: EFBIG


def test_full_cache_disk_degrades_to_uncached_tiles_not_errors(data_dir, db_url, tmp_path):
    ingest_geodataframe(db_url, _points(3000), "pts", mode="create", metadata={"access_level": "public"})
    port = free_port()
    env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir),
           "GIS_PORT": str(port), "GIS_LOG_LEVEL": "error"}
    proc = subprocess.Popen([sys.executable, "-m", "gis_platform.cli", "serve"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_no_file_writes)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        # z14 tiles over the points: every one served, intact, twice (second from memory)
        tiles = [(14, x, y) for x in range(13974, 13980) for y in range(6344, 6350)]
        decoded = 0
        for _ in range(2):
            for z, x, y in tiles:
                r = httpx.get(f"{url}/collections/pts/tiles/WebMercatorQuad/{z}/{x}/{y}",
                              timeout=10)
                assert r.status_code in (200, 204), r.text
                if r.status_code == 200:
                    raw = r.content
                    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
                    assert mapbox_vector_tile.decode(raw)["pts"]["features"]
                    decoded += 1
        assert decoded >= 10
        cache = tmp_path / "data" / "tile-cache"
        assert not any(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def crashable_cluster():
    root = _make_world_traversable_tmp("gis-crash-")
    emb = EmbeddedPostgres(Settings(data_dir=root, _env_file=None))
    url = emb.start()
    migrations.migrate(url)
    yield emb, url
    emb.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_database_crash_mid_ingest_leaves_the_layer_as_it_was(crashable_cluster):
    emb, url = crashable_cluster
    ingest_geodataframe(url, _points(500), "pts", mode="create", metadata={"access_level": "public"})
    with psycopg.connect(url) as c:
        before = c.execute("SELECT data_version, feature_count FROM gis_meta.layers "
                           "WHERE id = 'pts'").fetchone()
    big = _points(800_000, seed=2)
    outcome = {}

    def ingest():
        try:
            ingest_geodataframe(url, big, "pts", mode="replace", metadata={"access_level": "public"})
            outcome["done"] = True
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    t = threading.Thread(target=ingest)
    t.start()
    time.sleep(1.0)
    emb.kill()                      # SIGKILL: no shutdown, no checkpoint
    t.join(timeout=120)
    emb.start()
    with psycopg.connect(url) as c:
        after = c.execute("SELECT data_version, feature_count FROM gis_meta.layers "
                          "WHERE id = 'pts'").fetchone()
        rows = c.execute("SELECT count(*) FROM gis_data.pts").fetchone()[0]
    if outcome.get("done"):       # the ingest won the race: then it is complete
        assert after[1] == rows == 800_000 and after[0] > before[0]
    else:                          # otherwise nothing of it is visible
        assert "error" in outcome
        assert after == before and rows == 500
        # and a new ingest works straight away
        ingest_geodataframe(url, _points(700), "pts", mode="replace", metadata={"access_level": "public"})
        with psycopg.connect(url) as c:
            assert c.execute("SELECT count(*) FROM gis_data.pts").fetchone()[0] == 700
