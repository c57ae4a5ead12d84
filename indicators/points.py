"""Aggregating point files far larger than memory into area units, on Dask.

Seoul's night-bus study counted 3 billion night-time call records per ~1,250 hexagons.  Such
files are never loaded into PostGIS: :func:`aggregate_points` reads them (Parquet or CSV, any
number of files, in blocks) on a Dask cluster - a local one on this machine by default, or
the one a ``scheduler`` address names, with the same code - assigns each point to the cells
of an area unit and sums per cell, and only the per-cell results come back (one row per
cell).  Memory stays bounded by the block size times the workers, whatever the row count.

The cells are the area unit's own polygons, read once from PostGIS in lon/lat, and a point
belongs to every cell it intersects (shapely's STRtree, GEOS's predicate): the same rule as
the PostGIS aggregation (:func:`indicators.hexgrid.aggregate`, ``ST_Intersects``), so both
give the same counts - a test compares them on a sample.  A time column restricts the points
to some hours of the day (``hours=(22, 5)``: 22:00-04:59, across midnight).

:func:`store_point_indicator` stores the result as an indicator (``internal`` until someone
publishes it), with counts under ``min_count`` suppressed (stored as no value), so a cell
with two calls does not tell on two people.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import psycopg
import shapely

from gis_platform.errors import InvalidParameter
from indicators.store import Indicator, get_area_unit, load_values, unit_layer, upsert_indicator

Measure = Literal["count", "sum", "density"]
_TREES: dict[int, tuple[shapely.STRtree, int]] = {}


# --- the cells ----------------------------------------------------------------------------------
def unit_cells(conn: psycopg.Connection, unit_id: str) -> pd.DataFrame:
    """The area unit's cells: ``code``, ``wkb`` (lon/lat) and ``area_km2`` (metric)."""
    unit = get_area_unit(conn, unit_id)
    layer = unit_layer(conn, unit)
    rows = conn.execute(psycopg.sql.SQL(
        "SELECT {code}::text, ST_AsBinary({g4326}), ST_Area(ST_Transform({g}, 5179)) / 1e6 "
        "FROM {t} AS s ORDER BY 1").format(
        code=psycopg.sql.Identifier("s", unit.code_column), g4326=layer.rows.geom_in(4326, "s"),
        g=layer.rows.geom("s"), t=layer.table())).fetchall()
    if not rows:
        raise InvalidParameter(f"Area unit {unit_id!r} has no cells.")
    return pd.DataFrame({"code": [r[0] for r in rows], "wkb": [bytes(r[1]) for r in rows],
                         "area_km2": [float(r[2]) for r in rows]})


def _tree(wkb: tuple[bytes, ...]) -> tuple[shapely.STRtree, int]:
    """The cells' search tree, built once per worker process."""
    key = hash(wkb)
    hit = _TREES.get(key)
    if hit is None:
        geoms = shapely.from_wkb(list(wkb))
        shapely.prepare(geoms)
        hit = _TREES[key] = (shapely.STRtree(geoms), len(geoms))
    return hit


# --- one block of points ------------------------------------------------------------------------
def _in_hours(hour: np.ndarray, hours: tuple[int, int]) -> np.ndarray:
    start, end = hours
    return (hour >= start) & (hour < end) if start <= end else (hour >= start) | (hour < end)


def count_block(frame: pd.DataFrame, wkb: tuple[bytes, ...], lon: str, lat: str,
                value: str | None, time_column: str | None, hours: tuple[int, int] | None
                ) -> pd.DataFrame:
    """Per cell: points of this block in it, the sum of their ``value``; plus the block's
    rows read and used (row -1).  Points outside every cell count nowhere."""
    tree, n = _tree(wkb)
    x = pd.to_numeric(frame[lon], errors="coerce").to_numpy(dtype="float64")
    y = pd.to_numeric(frame[lat], errors="coerce").to_numpy(dtype="float64")
    keep = np.isfinite(x) & np.isfinite(y)
    if time_column is not None and hours is not None:
        t = frame[time_column]
        if not pd.api.types.is_datetime64_any_dtype(t):
            t = pd.to_datetime(t, errors="coerce", utc=False, format="ISO8601")
        hour = t.dt.hour.to_numpy(dtype="float64", na_value=np.nan)
        keep &= np.isfinite(hour) & _in_hours(np.nan_to_num(hour, nan=-1), hours)
    idx = np.flatnonzero(keep)
    pts = shapely.points(x[idx], y[idx])
    hit_point, hit_cell = tree.query(pts, predicate="intersects")
    counts = np.bincount(hit_cell, minlength=n).astype("int64")
    if value is not None:
        v = pd.to_numeric(frame[value], errors="coerce").to_numpy(dtype="float64")[idx]
        sums = np.bincount(hit_cell, weights=np.nan_to_num(v[hit_point]), minlength=n)
    else:
        sums = counts.astype("float64")
    out = pd.DataFrame({"cell": np.arange(n, dtype="int64"), "count": counts, "sum": sums})
    totals = pd.DataFrame({"cell": [-1], "count": [len(frame)], "sum": [float(len(idx))]})
    return pd.concat([out, totals], ignore_index=True)


# --- the whole files ----------------------------------------------------------------------------
def _paths(sources: list[str]) -> tuple[list[str], str]:
    files: list[str] = []
    for s in sources:
        found = sorted(glob.glob(s)) if any(c in s for c in "*?[") else [s]
        for f in found:
            p = Path(f)
            files += sorted(str(q) for q in p.rglob("*") if q.is_file()) if p.is_dir() else [str(p)]
    if not files:
        unreadable = [s for s in sources if not os.access(Path(s.split("*")[0]).parent or ".", os.R_OK | os.X_OK)]
        hint = (f" (this process, user {os.geteuid()}, cannot read {unreadable[0]}: the command "
                "runs as the platform's service user; put the files where it can read them)"
                if unreadable else "")
        raise InvalidParameter(f"No point files found in {sources}{hint}.")
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise InvalidParameter(f"No such file: {missing[0]}")
    kinds = {Path(f).suffix.lower() for f in files}
    if kinds <= {".parquet", ".pq"}:
        return files, "parquet"
    if kinds <= {".csv", ".tsv", ".txt"}:
        return files, "csv"
    raise InvalidParameter(f"Point files must be all Parquet or all CSV; got {sorted(kinds)}.")


def aggregate_points(cells: pd.DataFrame, sources: list[str], *, lon: str = "lon", lat: str = "lat",
                     value: str | None = None, time_column: str | None = None,
                     hours: tuple[int, int] | None = None, scheduler: str | None = None,
                     workers: int | None = None, blocksize: str = "64MB",
                     memory_limit: str = "2GB") -> tuple[pd.DataFrame, dict]:
    """Count (and sum ``value``) the points of ``sources`` per cell of ``cells`` on Dask.

    ``scheduler``: a Dask scheduler address (``tcp://host:8786``); None: a local cluster of
    ``workers`` processes (default: the CPUs), each limited to ``memory_limit``.  Returns the
    per-cell frame (``code``, ``count``, ``sum``) and what was read (rows read and used)."""
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    files, kind = _paths(sources)
    cols = [lon, lat, *([value] if value else []), *([time_column] if time_column else [])]
    if hours is not None and not all(0 <= h <= 24 for h in hours):
        raise InvalidParameter("hours are two whole hours of the day, e.g. 22-5 (22:00 to 04:59).")
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, memory_limit=memory_limit, dashboard_address=None)
        client = Client(cluster)
    try:
        try:
            if kind == "parquet":
                frame = dd.read_parquet(files, blocksize=blocksize)
            else:
                frame = dd.read_csv(files, blocksize=blocksize, assume_missing=True,
                                    sep="\t" if files[0].endswith(".tsv") else ",")
        except (ValueError, KeyError, OSError) as exc:
            raise InvalidParameter(f"The point files cannot be read as {kind}: {str(exc)[:300]}") from None
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise InvalidParameter(f"The point files have no column {missing}; they have "
                                   f"{list(frame.columns)[:20]}.")
        frame = frame[cols]
        wkb = dask.delayed(tuple(cells["wkb"]), pure=True)
        meta = pd.DataFrame({"cell": pd.Series(dtype="int64"), "count": pd.Series(dtype="int64"),
                             "sum": pd.Series(dtype="float64")})
        per_block = frame.map_partitions(count_block, wkb, lon, lat, value, time_column, hours, meta=meta)
        try:
            # a tree reduction of small per-block frames (one row per cell): no shuffle
            totals = per_block.groupby("cell").sum(split_out=1).compute()
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidParameter(f"The point files could not be aggregated: {str(exc)[:300]}") from None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    read = totals.loc[-1] if -1 in totals.index else pd.Series({"count": 0, "sum": 0.0})
    totals = totals.drop(index=-1, errors="ignore").reindex(range(len(cells)), fill_value=0)
    out = pd.DataFrame({"code": cells["code"].to_numpy(), "count": totals["count"].to_numpy(),
                        "sum": totals["sum"].to_numpy(), "area_km2": cells["area_km2"].to_numpy()})
    return out, {"files": len(files), "rows_read": int(read["count"]), "rows_used": int(read["sum"])}


def indicator_values(per_cell: pd.DataFrame, measure: Measure, min_count: int = 0) -> pd.Series:
    """The indicator's value per cell; cells with fewer than ``min_count`` points (but some)
    get no value (suppressed), empty cells 0."""
    if measure == "count":
        v = per_cell["count"].astype("float64")
    elif measure == "sum":
        v = per_cell["sum"].astype("float64")
    else:
        v = per_cell["count"] / per_cell["area_km2"].where(per_cell["area_km2"] > 0)
    small = (per_cell["count"] > 0) & (per_cell["count"] < int(min_count))
    return v.mask(small)


def store_point_indicator(conn: psycopg.Connection, ind: Indicator, unit_id: str, per_cell: pd.DataFrame,
                          measure: Measure, year: int, *, min_count: int, method: dict) -> dict:
    """Store the per-cell result as indicator ``ind`` for ``year`` (new indicators are internal)."""
    ind = ind.model_copy(update={"method": {"aggregate": measure, "engine": "dask", "min_count": min_count,
                                            "unit": unit_id, **method}})
    upsert_indicator(conn, ind)
    values = indicator_values(per_cell, measure, min_count)
    frame = pd.DataFrame({"area_code": per_cell["code"], "year": int(year),
                          "value": values.where(np.isfinite(values))})
    rep = load_values(conn, ind.id, unit_id, frame)
    rep["suppressed"] = int(((per_cell["count"] > 0) & (per_cell["count"] < int(min_count))).sum())
    return rep


def parse_hours(text: str | None) -> tuple[int, int] | None:
    """``"22-5"`` -> (22, 5)."""
    if not text:
        return None
    try:
        a, b = (int(p) for p in text.split("-"))
    except ValueError:
        raise InvalidParameter(f"--hours is START-END in whole hours, e.g. 22-5; got {text!r}.") from None
    if not (0 <= a <= 23 and 0 <= b <= 24) or a == b:
        raise InvalidParameter(f"--hours {text!r}: hours run from 0 to 24, and start differs from end.")
    return a, b


