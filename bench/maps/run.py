"""Policy-map benchmark: build + render the city hexagon map and the neighbourhood map.

Usage: ``.venv/bin/python bench/maps/run.py [--db URL]`` — without ``--db`` it starts a
throw-away embedded PostGIS, loads the demo city (small) and its maps.  Measures, per map:
build (SQL + classification) seconds, folium HTML seconds and bytes, PNG seconds and bytes,
live page HTML bytes, and the live page's time to first full render in headless Chromium
(MapLibre ``idle`` after ``load``, measured in the page).  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
MAPS = ("bike-hex-500m", "bike-access-dong")


def timed(fn, n=3):
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    from gis_platform.config import Settings
    from gis_platform.db import migrations
    from gis_platform.principal import SYSTEM
    from policy_maps.build import MapAccess
    from policy_maps.render_folium import render_folium
    from policy_maps.render_png import render_png
    from policy_maps.service import load_map
    from tests.conftest import start_server

    ap = argparse.ArgumentParser()
    ap.add_argument("--db", help="PostGIS URL with the demo loaded (default: a fresh embedded one)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-maps-"))
    emb = None
    if args.db:
        url = args.db
    else:
        from gis_platform.db.embedded import EmbeddedPostgres
        from gis_platform.demo import load_demo

        tmp.chmod(0o755)
        emb = EmbeddedPostgres(Settings(data_dir=tmp, _env_file=None))
        emb.start()
        url = emb.url()
        migrations.migrate(url)
        t0 = time.perf_counter()
        load_demo(Settings(database_url=url, data_dir=tmp, _env_file=None), url, scale="small")
        print(f"demo load (layers + indicators + maps): {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = []
    server = start_server(Settings(database_url=url, data_dir=tmp / "srv", _env_file=None))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for mid in MAPS:
                build_s, (data, _) = timed(lambda: load_map(conn, mid, None, SYSTEM, MapAccess.system(conn)))
                html_s, html = timed(lambda: render_folium(data, conn, "ko"))
                png_s, png = timed(lambda: render_png(data, "ko"), n=2)
                import httpx

                page = httpx.get(f"{server.url}/maps/{mid}").content
                rows.append({"map": mid, "areas": len(data.fids), "build_s": build_s, "html_s": html_s,
                             "html_bytes": len(html.encode()), "png_s": png_s, "png_bytes": len(png),
                             "page_bytes": len(page), "render_ms": live_render_ms(server.url, mid)})
    finally:
        server.stop()
        if emb:
            emb.stop()
    print("| map | areas | build s | folium HTML s | HTML bytes | PNG s | PNG bytes | live page bytes (HTML) "
          "| live first full render ms (median of 3) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['map']} | {r['areas']} | {r['build_s']:.3f} | {r['html_s']:.3f} | {r['html_bytes']:,} | "
              f"{r['png_s']:.2f} | {r['png_bytes']:,} | {r['page_bytes']:,} | {r['render_ms']:.0f} |")


def live_render_ms(base: str, map_id: str) -> float:
    """Median time from navigation start to MapLibre's first idle after load (fresh profile)."""
    from playwright.sync_api import sync_playwright

    from tests.maps.test_maps_browser import CHROMIUM_ARGS

    out = []
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile, sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium",
                                                        args=CHROMIUM_ARGS, headless=True,
                                                        viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            page.goto(f"{base}/maps/{map_id}")
            page.wait_for_selector("html[data-map-state=ready]", state="attached", timeout=120_000)
            out.append(page.evaluate("performance.now()") if False else
                       page.evaluate("window.__policyMap.t0 + window.__policyMap.renderMs"))
            ctx.close()
    return statistics.median(out)


if __name__ == "__main__":
    main()
