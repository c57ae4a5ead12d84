"""Point files aggregated on Dask (#19): the same counts as PostGIS, night hours, suppression
of small counts, the command line - without loading the points into the database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest

from indicators.hexgrid import aggregate, create_hex_grid
from indicators.points import aggregate_points, parse_hours, unit_cells
from layers.ingest import ingest_geodataframe
from tests.conftest import _make_world_traversable_tmp
from tests.indicators.test_hexgrid_and_aggregation import square_city  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def calls(db_url, square_city):  # noqa: F811
    """60,000 calls over the square city and around it, in two Parquet files and a CSV."""
    create_hex_grid(db_url, "hex_test", clip_layer_id="blocks", radius_m=500, unit_id="hex_test")
    w, s, e, n = square_city.to_crs(4326).total_bounds
    rng = np.random.default_rng(3)
    k = 60_000
    frame = pd.DataFrame({
        "lon": rng.uniform(w - 0.005, e + 0.005, k), "lat": rng.uniform(s - 0.005, n + 0.005, k),
        "ts": np.datetime64("2026-12-01T00:00:00") + rng.integers(0, 31 * 86400, k).astype("timedelta64[s]"),
        "fare": np.round(rng.uniform(3000, 30000, k), -2)})
    # where the platform's service user (the command drops to it when run as root) can read
    tmp_path = _make_world_traversable_tmp("gis-calls-")
    files = tmp_path / "calls"
    files.mkdir()
    frame.iloc[:30_000].to_parquet(files / "a.parquet")
    frame.iloc[30_000:].to_parquet(files / "b.parquet")
    frame.to_csv(tmp_path / "calls.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S")
    for p in (tmp_path, files, *files.iterdir(), tmp_path / "calls.csv"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    yield frame, files, tmp_path / "calls.csv"
    shutil.rmtree(tmp_path, ignore_errors=True)


def postgis_counts(db_url: str, frame: pd.DataFrame, layer: str) -> dict[str, float]:
    """The PostGIS method: the points loaded as a layer, joined to the cells."""
    gdf = gpd.GeoDataFrame(frame[["fare"]], geometry=gpd.points_from_xy(frame.lon, frame.lat), crs=4326)
    ingest_geodataframe(db_url, gdf, layer, metadata={"access_level": "internal"})
    with psycopg.connect(db_url) as conn:
        return {code: float(v) for code, v in aggregate(conn, "hex_test", layer, "count")[0]}


def test_dask_counts_agree_with_postgis_and_hours_filter(db_url, calls):
    frame, files, csv = calls
    with psycopg.connect(db_url) as conn:
        cells = unit_cells(conn, "hex_test")
    per_cell, read = aggregate_points(cells, [str(files)], workers=2, memory_limit="1GB")
    assert read == {"files": 2, "rows_read": 60_000, "rows_used": 60_000}
    expected = postgis_counts(db_url, frame, "calls_all")
    got = dict(zip(per_cell["code"], per_cell["count"].astype(float)))
    assert got == expected and sum(got.values()) > 30_000
    # night hours (22:00-04:59) from a CSV, against PostGIS on the same night calls
    night_hours = frame.ts.dt.hour
    night = frame[(night_hours >= 22) | (night_hours < 5)]
    per_cell, read = aggregate_points(cells, [str(csv)], time_column="ts", hours=(22, 5), workers=2,
                                      memory_limit="1GB", blocksize="1MB")
    assert read["rows_read"] == 60_000 and read["rows_used"] == len(night)
    assert dict(zip(per_cell["code"], per_cell["count"].astype(float))) == \
        postgis_counts(db_url, night, "calls_night")
    # sums of a value column
    per_cell, _ = aggregate_points(cells, [str(files / "a.parquet")], value="fare", workers=1)
    assert per_cell["sum"].sum() == pytest.approx(
        frame.iloc[:30_000].fare[per_cell_points(cells, frame.iloc[:30_000])].sum())


def per_cell_points(cells: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Indices of the points in some cell, once per cell they are in (shapely, in-process)."""
    import shapely

    tree = shapely.STRtree(shapely.from_wkb(list(cells["wkb"])))
    hit, _ = tree.query(shapely.points(frame.lon.to_numpy(), frame.lat.to_numpy()), predicate="intersects")
    return hit


def test_the_command_stores_an_internal_indicator_with_small_counts_suppressed(db_url, calls, data_dir):
    frame, files, _ = calls
    env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir)}
    argv = [sys.executable, "-m", "gis_platform.cli", "indicators", "aggregate", "--indicator", "night_calls",
            "--unit", "hex_test", "--points", str(files / "*.parquet"), "--year", "2026",
            "--time-column", "ts", "--hours", "22-5", "--min-count", "150", "--workers", "2",
            "--name-en", "Night-time calls"]
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows read" in out.stdout + out.stderr
    with psycopg.connect(db_url) as conn:
        level = conn.execute("SELECT access_level FROM gis_meta.indicators WHERE id = 'night_calls'").fetchone()[0]
        values = conn.execute("SELECT area_code, value FROM gis_meta.indicator_values "
                              "WHERE indicator_id = 'night_calls'").fetchall()
    assert level == "internal"                 # new things are private until published
    hours = frame.ts.dt.hour
    night = frame[(hours >= 22) | (hours < 5)]
    with psycopg.connect(db_url) as conn:
        cells = unit_cells(conn, "hex_test")
    counts = np.bincount(_cell_of(cells, night), minlength=len(cells))
    want = {code: (None if 0 < c < 150 else float(c)) for code, c in zip(cells["code"], counts)}
    assert dict(values) == want and any(v is None for v in want.values())
    # bad input: a clear error, nothing stored
    bad = subprocess.run([*argv[:11], "--year", "2026", "--lon", "x"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "no column ['x']" in (bad.stdout + bad.stderr)


def _cell_of(cells: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    import shapely

    tree = shapely.STRtree(shapely.from_wkb(list(cells["wkb"])))
    _, cell = tree.query(shapely.points(frame.lon.to_numpy(), frame.lat.to_numpy()), predicate="intersects")
    return cell


def test_hours_are_parsed_with_clear_errors():
    assert parse_hours("22-5") == (22, 5) and parse_hours(None) is None
    for bad in ("22", "x-5", "5-5", "25-3"):
        with pytest.raises(Exception, match="hours"):
            parse_hours(bad)


def test_the_same_code_on_a_separate_dask_cluster(db_url, calls):
    """A scheduler and two workers as their own processes (as on other hosts), on loopback:
    --scheduler tcp://... gives the same counts as the local cluster."""
    import socket
    import time

    frame, files, _ = calls
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    try:
        time.sleep(1.5)
        for _ in range(2):
            procs.append(subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1",
                                           "--memory-limit", "1GB", "--no-dashboard"], env=env, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        with psycopg.connect(db_url) as conn:
            cells = unit_cells(conn, "hex_test")
        remote, read = aggregate_points(cells, [str(files)], scheduler=address)
        local, _ = aggregate_points(cells, [str(files)], workers=1)
        assert read["rows_read"] == 60_000
        assert remote["count"].tolist() == local["count"].tolist() and remote["count"].sum() > 30_000
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
