"""Benchmark the feature API against TiPg and the raw SQL floor, on the same database.

    .venv/bin/python bench/features/run.py --scratch --generate 300000
    .venv/bin/python bench/features/run.py --db-url postgresql://... --layer gas_mains

Workloads (sequential requests from one client, after a warm-up):

* ``bbox-S/M/L`` — ``/items`` with a bbox holding ~10, ~100 and ~1,000 features
  (``limit=1000``), the boxes picked from the data so each size is real;
* ``cql2`` — a CQL2 attribute filter (``<text column> = '<most common value>' AND <numeric
  column> >= <median>``, ``limit=1000``) where TiPg gets the same CQL2 text; repeated as
  is (our server counts a condition once per data version) and made new on every request
  (``cql2 new each``: ``AND fid <> -i``, so every ``numberMatched`` is counted afresh);
* ``export-100k`` — 100,000 features as GeoJSON (ours: ``/export`` streamed; TiPg:
  ``/items?limit=100000``), with the server's peak RSS sampled during the download;
* ``sql floor`` — the same page query in PostGIS (count + features built with
  ``ST_AsGeoJSON`` and aggregated into one text) over psycopg, no HTTP.

Every timed request goes through :class:`bench.rawhttp.RawHTTP` (a keep-alive HTTP/1.1
client costing tens of microseconds; httpx cost ~0.5-1 ms of client CPU per request on the
cores the servers share).  The ceiling printed below the table is the same client against a
one-function ASGI app on uvicorn, and against our ``/health``: what HTTP alone costs here.

Prints p50/p95 (ms), features/s and the ratios ours/TiPg and ours/floor.  TiPg runs from
its own virtualenv (``--tipg-venv``, default ``.venv-bench-tipg``); without it the TiPg
column is left empty.  Nothing here is a test: it measures and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
TIPG_MAX = 100_000      # TiPg builds the whole response in memory: cap its export
sys.path.insert(0, str(ROOT))
from bench.rawhttp import RawHTTP  # the shared benchmark client (after the sys.path line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


# --- data ------------------------------------------------------------------------------------
def generate_lines(db_url: str, layer_id: str, n: int, seed: int = 1) -> None:
    """``n`` synthetic gas-main-like lines over Seoul, ingested through the platform."""
    import datetime as dt

    import geopandas as gpd
    import numpy as np
    import shapely

    from layers.ingest import ingest_geodataframe

    rng = np.random.default_rng(seed)
    start = np.column_stack([rng.uniform(126.80, 127.18, n), rng.uniform(37.43, 37.69, n)])
    steps = rng.normal(0, 0.0015, (n, 2, 2)).cumsum(axis=1)
    coords = np.concatenate([start[:, None, :], start[:, None, :] + steps], axis=1)
    base = dt.date(1980, 1, 1)
    gdf = gpd.GeoDataFrame({
        "material": rng.choice(["PE", "steel", "cast_iron", "ductile_iron"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "diameter_mm": rng.choice([50, 100, 150, 200, 300, 600], n).astype("int64"),
        "pressure": rng.choice(["low", "medium", "high"], n),
        "installed": [base + dt.timedelta(days=int(d)) for d in rng.integers(0, 15_000, n)],
    }, geometry=shapely.linestrings(coords), crs="EPSG:4326")
    t0 = time.perf_counter()
    ingest_geodataframe(db_url, gdf, layer_id, metadata={"licence": "synthetic benchmark data",
                                                         "time_column": "installed"})
    print(f"generated and ingested {n:,} lines in {time.perf_counter() - t0:.1f} s")


def layer_info(db_url: str, layer_id: str) -> dict:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT table_name, schema, extent, feature_count FROM gis_meta.layers "
                           "WHERE id = %s", (layer_id,)).fetchone()
    if not row:
        raise SystemExit(f"no layer {layer_id!r} in the catalog")
    return {"table": row[0], "schema": row[1], "extent": row[2], "count": row[3]}


def pick_boxes(db_url: str, table: str, extent: list[float], targets=(10, 100, 1000)) -> dict[int, tuple]:
    """Square boxes around the extent's centre whose counts are close to each target."""
    from psycopg import sql

    cx, cy = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
    out = {}
    with psycopg.connect(db_url) as conn:
        for target in targets:
            lo, hi = 1e-5, max(extent[2] - extent[0], extent[3] - extent[1])
            for _ in range(30):
                half = (lo + hi) / 2
                box = (cx - half, cy - half, cx + half, cy + half)
                n = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE ST_Intersects(geom, ST_MakeEnvelope(%s,%s,%s,%s,4326))")
                                 .format(sql.Identifier("gis_data", table)), box).fetchone()[0]
                if abs(n - target) <= max(2, target // 10):
                    break
                lo, hi = (half, hi) if n < target else (lo, half)
            out[target] = box
            print(f"  box for ~{target}: {n} features")
    return out


# --- servers ---------------------------------------------------------------------------------
class Server:
    def __init__(self, name: str, cmd: list[str], env: dict, url: str, ready_path: str) -> None:
        self.name, self.url = name, url
        self.port = int(url.rsplit(":", 1)[1])
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_http(url + ready_path)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{name} did not start: {self.proc.stderr.read()[-2000:]!r}") from None

    def rss_kb(self) -> int:
        """Resident memory of the server process and its children (kB)."""
        total = 0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(k) for k in kids] + [g for k in kids for g in _children(int(k))]


def start_ours(db_url: str) -> Server:
    port = free_port()
    env = {"GIS_DATABASE_URL": db_url, "GIS_LOG_LEVEL": "warning", "GIS_FEATURES_MAX_LIMIT": "100000",
           "GIS_STATEMENT_TIMEOUT_MS": "120000"}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "gis_platform.app:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return Server("ours", cmd, env, f"http://127.0.0.1:{port}", "/collections")


def start_trivial() -> Server:
    """A one-function ASGI app on uvicorn (:func:`bench.rawhttp.trivial_app`): the ceiling."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "rawhttp:trivial_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return Server("trivial", cmd, {}, f"http://127.0.0.1:{port}", "/")


def start_tipg(db_url: str, venv: Path) -> Server | None:
    uvicorn = venv / "bin" / "uvicorn"
    if not uvicorn.exists() or subprocess.run([str(venv / "bin" / "python"), "-c", "import tipg"],
                                              capture_output=True, check=False).returncode:
        print(f"(TiPg not installed in {venv}: skipping its column)")
        return None
    port = free_port()
    env = {"DATABASE_URL": psycopg.conninfo.make_conninfo(db_url), "TIPG_DB_SCHEMAS": '["gis_data"]',
           "TIPG_MAX_FEATURES_PER_QUERY": str(TIPG_MAX), "TIPG_DEBUG": "FALSE"}
    # TiPg wants a URL, not a conninfo string.
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    env["DATABASE_URL"] = (f"postgresql://{info.get('user', '')}:{info.get('password', '')}@"
                           f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}")
    cmd = [str(uvicorn), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
           "--no-access-log"]
    return Server("tipg", cmd, env, f"http://127.0.0.1:{port}", "/collections")


# --- measuring -------------------------------------------------------------------------------
def timed(fn, n: int, warmup: int = 3) -> tuple[list[float], int]:
    for _ in range(warmup):
        fn()
    times, feats = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        feats = fn()
        times.append(time.perf_counter() - t0)
    return times, feats


def pct(times: list[float], p: float) -> float:
    s = sorted(times)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] * 1000


def timed_http(loop: asyncio.AbstractEventLoop, port: int, path: str, params, encoding: str,
               n: int, warmup: int = 3) -> tuple[list[float], int]:
    """Time ``n`` GETs of ``path?params`` with :class:`RawHTTP` (one kept-alive connection).

    Only request and response are timed: the body is read as sent; gunzipping (for both
    servers alike) and counting the features happen after the clock stops, without parsing
    the JSON (the client's work is not the server's).  ``params`` may be a function of the
    request's index: a workload whose every request is new to the server.
    """
    client = RawHTTP("127.0.0.1", port, {"Accept-Encoding": encoding, "Accept": "application/geo+json"})

    def target_of(i: int) -> str:
        p = params(i) if callable(params) else params
        return path + ("?" + urlencode(p, quote_via=quote) if p else "")

    async def run() -> tuple[list[float], int]:
        times = []
        for i in range(warmup + n):
            target = target_of(i)
            t0 = time.perf_counter()
            reply = await client.fetch(target)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            if reply.status != 200:
                raise RuntimeError(f"GET {target} -> {reply.status}: {reply.decoded()[:300]!r}")
        return times, reply.decoded().count(b'"type":"Feature"')

    try:
        return loop.run_until_complete(run())
    finally:
        client.close()


def sql_floor(db_url: str, table: str, where: str, params: list, limit: int,
              columns: list[str] | None = None):
    """The page query done by PostGIS alone: count + GeoJSON features aggregated to one text.

    ``columns``: the layer's attribute columns (default: those of the synthetic layer).
    """
    from psycopg import sql

    columns = columns or ["material", "diameter_mm", "pressure", "installed"]
    props = sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(c)) for c in columns)
    conn = psycopg.connect(db_url, autocommit=True)
    stmt = sql.SQL(
        "SELECT (SELECT count(*) FROM {t} WHERE " + where + "), "
        "(SELECT '[' || string_agg(f, ',') || ']' FROM (SELECT '{{\"type\":\"Feature\",\"id\":' || fid || "
        "',\"geometry\":' || ST_AsGeoJSON(geom, 7) || ',\"properties\":' || "
        "json_build_object({props})::text || '}}' AS f FROM {t} WHERE " + where + " ORDER BY fid LIMIT %s) p)"
    ).format(t=sql.Identifier("gis_data", table), props=props)

    def run() -> int:
        n, text = conn.execute(stmt, [*params, *params, limit]).fetchone()
        return min(n, limit) if text else 0
    return run


def export_run(client: httpx.Client, server: Server, url: str, params: dict) -> tuple[float, int, int, int]:
    """Download, counting bytes; sample the server's RSS meanwhile. Returns (s, bytes, base, peak)."""
    base = server.rss_kb()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss_kb())
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    size = 0
    with client.stream("GET", url, params=params, timeout=600, headers={"Accept-Encoding": "identity"}) as r:
        r.raise_for_status()
        for chunk in r.iter_raw():
            size += len(chunk)
    secs = time.perf_counter() - t0
    stop.set()
    th.join()
    return secs, size, base, peak[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", help="a PostGIS database migrated by the platform")
    ap.add_argument("--layer", default="bench_lines", help="layer id to query")
    ap.add_argument("--scratch", action="store_true", help="run a throwaway embedded PostGIS")
    ap.add_argument("--generate", type=int, default=0, help="first ingest N synthetic lines as --layer")
    ap.add_argument("--runs", type=int, default=40, help="timed requests per workload")
    ap.add_argument("--export-rows", type=int, default=100_000)
    ap.add_argument("--tipg-venv", type=Path, default=ROOT / ".venv-bench-tipg")
    args = ap.parse_args()

    emb = None
    scratch_dir = None
    if args.scratch:
        from gis_platform.config import Settings
        from gis_platform.db import migrations
        from gis_platform.db.embedded import EmbeddedPostgres

        scratch_dir = Path(tempfile.mkdtemp(prefix="gis-bench-"))
        os.chmod(scratch_dir, 0o755)
        emb = EmbeddedPostgres(Settings(data_dir=scratch_dir, database_url=None, _env_file=None))
        emb.start()
        args.db_url = emb.url()
        migrations.migrate(args.db_url)
        args.generate = args.generate or 300_000
    if not args.db_url:
        raise SystemExit("give --db-url or --scratch")
    servers: list[Server] = []
    loop = None
    try:
        if args.generate:
            generate_lines(args.db_url, args.layer, args.generate)
        info = layer_info(args.db_url, args.layer)
        print(f"layer {args.layer}: {info['count']:,} features, table gis_data.{info['table']}")
        boxes = pick_boxes(args.db_url, info["table"], info["extent"])
        ours = start_ours(args.db_url)
        servers.append(ours)
        tipg = start_tipg(args.db_url, args.tipg_venv)
        if tipg:
            servers.append(tipg)
        tipg_id = f"gis_data.{info['table']}"
        cols = {a["name"]: a["type"] for a in info["schema"]}
        text_col = next((c for c, t in cols.items() if t == "text"), None)
        num_col = next((c for c, t in cols.items() if t in ("bigint", "integer", "double precision")), None)
        with psycopg.connect(args.db_url) as conn:
            from psycopg import sql

            common = conn.execute(sql.SQL("SELECT {c} FROM {t} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").format(
                c=sql.Identifier(text_col), t=sql.Identifier("gis_data", info["table"]))).fetchone()[0]
            median = conn.execute(sql.SQL("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY {c}) FROM {t}").format(
                c=sql.Identifier(num_col), t=sql.Identifier("gis_data", info["table"]))).fetchone()[0]
        cql = f"{text_col} = '{common}' AND {num_col} >= {median}"

        results = []
        client = httpx.Client(timeout=120)      # exports only; every timed request goes by RawHTTP
        loop = asyncio.new_event_loop()
        floor_where = ("geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) AND "
                       "ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))")
        floor_cql = (sql.SQL("{} = %s AND {} >= %s").format(sql.Identifier(text_col), sql.Identifier(num_col))
                     .as_string(None))
        workloads = [(f"bbox ~{t}", {"bbox": ",".join(f"{v:.6f}" for v in box), "limit": 1000},
                      sql_floor(args.db_url, info["table"], floor_where, [*box, *box], 1000, list(cols)))
                     for t, box in boxes.items()]
        cql_floor = sql_floor(args.db_url, info["table"], floor_cql, [common, median], 1000, list(cols))
        workloads.append(("cql2 attr", {"filter": cql, "filter-lang": "cql2-text", "limit": 1000},
                          cql_floor))
        # The same filter made new on every request (an extra "fid <> i" that excludes one
        # id at most): what the first page of a filter costs, numberMatched counted afresh.
        # The repeated workload above reuses its count (the server remembers the count of a
        # condition per data version, as a client paging through it would).
        fresh = itertools.count(1)          # never the same condition twice, in any pass
        workloads.append(("cql2 new each", lambda _i: {"filter": f"{cql} AND fid <> {-next(fresh)}",
                                                       "filter-lang": "cql2-text", "limit": 1000},
                          cql_floor))
        for name, params, floor in workloads:
            for encoding in ("identity", "gzip"):
                row = {"name": f"{name} {encoding[:4]}"}
                row["ours"] = timed_http(loop, ours.port, f"/collections/{args.layer}/items", params,
                                         encoding, args.runs)
                if tipg:
                    row["tipg"] = timed_http(loop, tipg.port, f"/collections/{tipg_id}/items", params,
                                             encoding, args.runs)
                row["floor"] = timed(floor, args.runs)
                results.append(row)
        # What HTTP alone costs on this box: the same client against a one-function ASGI app
        # on uvicorn, and against our /health (the whole middleware stack, no database).
        trivial = start_trivial()
        servers.append(trivial)
        ceiling = [("trivial ASGI app on uvicorn", timed_http(loop, trivial.port, "/", {}, "identity",
                                                              args.runs * 5)),
                   ("ours GET /health", timed_http(loop, ours.port, "/health", {}, "identity",
                                                   args.runs * 5))]

        print(f"\nCQL2 filter: {cql}")
        print(f"{'workload':<16} {'feats':>6} | {'ours p50':>9} {'p95':>7} {'feat/s':>9} | {'tipg p50':>9} {'p95':>7} |"
              f" {'floor p50':>9} | {'ours/tipg':>9} {'ours/floor':>10}")
        for row in results:
            o_t, n = row["ours"]
            f_t, _ = row["floor"]
            o50, o95, f50 = pct(o_t, 50), pct(o_t, 95), pct(f_t, 50)
            line = f"{row['name']:<16} {n:>6} | {o50:>9.2f} {o95:>7.2f} {n / (o50 / 1000):>9.0f} | "
            if "tipg" in row:
                t_t, tn = row["tipg"]
                t50, t95 = pct(t_t, 50), pct(t_t, 95)
                line += f"{t50:>9.2f} {t95:>7.2f} | {f50:>9.2f} | {o50 / t50:>9.2f} {o50 / f50:>10.2f}"
                if tn != n:
                    line += f"  (tipg returned {tn})"
            else:
                line += f"{'-':>9} {'-':>7} | {f50:>9.2f} | {'-':>9} {o50 / f50:>10.2f}"
            print(line)
        print("\nceiling (same client, no database): "
              + "; ".join(f"{name} p50 {pct(t, 50):.2f} ms, p95 {pct(t, 95):.2f} ms" for name, (t, _) in ceiling))

        print("\nexports (identity encoding; each format warmed up once, so library loading is not counted)")
        url = f"{ours.url}/collections/{args.layer}/export"
        for fmt in ("geojson", "csv", "fgb", "gpkg"):
            export_run(client, ours, url, {"format": fmt, "limit": 1000})
            for rows in (args.export_rows // 10, args.export_rows):
                secs, size, base, peak = export_run(client, ours, url, {"format": fmt, "limit": rows})
                print(f"  ours {fmt:>7} {rows:>9,}: {secs:6.2f} s, {size / 1e6:7.1f} MB, {rows / secs:>9,.0f} feat/s, "
                      f"server RSS {base / 1024:.0f} -> peak {peak / 1024:.0f} MB (+{(peak - base) / 1024:.0f})")
        if tipg:
            url = f"{tipg.url}/collections/{tipg_id}/items"
            export_run(client, tipg, url, {"limit": 1000})
            rows = min(args.export_rows, TIPG_MAX)
            secs, size, base, peak = export_run(client, tipg, url, {"limit": rows})
            print(f"  tipg geojson {rows:>9,}: {secs:6.2f} s, {size / 1e6:7.1f} MB, "
                  f"{rows / secs:>9,.0f} feat/s, server RSS {base / 1024:.0f} -> peak {peak / 1024:.0f} MB "
                  f"(+{(peak - base) / 1024:.0f})")
    finally:
        if loop is not None:
            loop.close()
        for s in servers:
            s.stop()
        if emb is not None:
            emb.stop()
            shutil.rmtree(scratch_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
