"""A synthetic night-time call dataset of any size, for the aggregation benchmark (#19).

Like the taxi-call records of Seoul's night-bus study: one row per call, with where it was
made (``lon``, ``lat``, WGS 84) and when (``ts``, a timestamp in December 2026, more calls at
night), and a ``fare`` to sum.  Points cluster around 60 hotspots spread over Seoul (nightlife,
stations) over a uniform background; 3 % fall outside the city, as real GPS fixes do.

    .venv/bin/python bench/aggregate/generate.py --rows 100000000 --out /data/calls --format parquet

Written in files of ``--file-rows`` rows (row groups of 1,000,000), each from its own seeded
generator: the same arguments give the same files, and any size is written in bounded memory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

WEST, SOUTH, EAST, NORTH = 126.76, 37.41, 127.19, 37.72      # Seoul and a margin
HOTSPOTS = 60
START = np.datetime64("2026-12-01T00:00:00")


def _hotspots(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(126.84, 127.12, HOTSPOTS), rng.uniform(37.46, 37.66, HOTSPOTS)])
    weights = rng.pareto(1.5, HOTSPOTS) + 0.2
    return centres, weights / weights.sum()


def chunk(n: int, seed: int, centres: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """``n`` calls from generator ``seed``."""
    rng = np.random.default_rng(seed)
    spot = rng.random(n) < 0.8
    k = int(spot.sum())
    which = rng.choice(HOTSPOTS, size=k, p=weights)
    lon = rng.uniform(WEST, EAST, n)
    lat = rng.uniform(SOUTH, NORTH, n)
    lon[spot] = centres[which, 0] + rng.normal(0, 0.012, k)
    lat[spot] = centres[which, 1] + rng.normal(0, 0.009, k)
    # more calls at night: hour of day drawn from a profile peaking at 01:00
    profile = np.array([9, 10, 8, 6, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 8], float)
    hour = rng.choice(24, size=n, p=profile / profile.sum())
    day = rng.integers(0, 31, n)
    seconds = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    ts = START + seconds.astype("timedelta64[s]")
    fare = np.round(rng.gamma(2.0, 6000.0, n), -2)
    return pd.DataFrame({"lon": lon, "lat": lat, "ts": ts, "fare": fare})


def generate(out: Path, rows: int, fmt: str = "parquet", *, seed: int = 7,
             file_rows: int = 10_000_000) -> list[Path]:
    """Write ``rows`` calls into ``out`` (files of ``file_rows``); returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    centres, weights = _hotspots(seed)
    files = []
    for i, start in enumerate(range(0, rows, file_rows)):
        n = min(file_rows, rows - start)
        path = out / f"calls-{i:05d}.{fmt}"
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            with pq.ParquetWriter(path, pa.schema([("lon", pa.float64()), ("lat", pa.float64()),
                                                   ("ts", pa.timestamp("s")), ("fare", pa.float64())]),
                                  compression="zstd") as w:
                for j, s in enumerate(range(0, n, 1_000_000)):
                    part = chunk(min(1_000_000, n - s), seed * 1_000_003 + i * 1_009 + j, centres, weights)
                    w.write_table(pa.Table.from_pandas(part, preserve_index=False))
        else:
            for j, s in enumerate(range(0, n, 1_000_000)):
                part = chunk(min(1_000_000, n - s), seed * 1_000_003 + i * 1_009 + j, centres, weights)
                part.to_csv(path, mode="w" if j == 0 else "a", header=j == 0, index=False,
                            date_format="%Y-%m-%dT%H:%M:%S")
        files.append(path)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    ap.add_argument("--file-rows", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    t0 = time.perf_counter()
    files = generate(args.out, args.rows, args.format, seed=args.seed, file_rows=args.file_rows)
    size = sum(f.stat().st_size for f in files)
    print(f"{args.rows:,} calls in {len(files)} files, {size / 1e9:.2f} GB, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
