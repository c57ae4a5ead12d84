"""The low-severity findings of the second security round, each with a test: spreadsheet
formulas in CSV exports, revocation everywhere at once, row-scoped counts and extents, a
bounded PNG cache, rate limits on by default, and timing that does not tell key ids."""

from __future__ import annotations

import csv
import io
import statistics
import time

import geopandas as gpd
import psycopg
import shapely

from gis_platform.apikeys import create_api_key
from tests.conftest import start_server

from .conftest import SecurityWorld


def test_csv_exports_neutralise_spreadsheet_formulas(world: SecurityWorld):
    from layers.ingest import ingest_geodataframe

    values = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "plain", "\tTAB"]
    gdf = gpd.GeoDataFrame({"note": values, "n": [-5, 1, 2, 3, 4, 5]},
                           geometry=shapely.points([[126.9 + i * 1e-3, 37.5] for i in range(6)]),
                           crs="EPSG:4326")
    ingest_geodataframe(world.db_url, gdf, "notes", metadata={"access_level": "public"})
    with world.client() as c:
        deadline = time.monotonic() + 5          # the server hears of the new layer at once
        while c.get("/collections/notes").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        body = c.get("/collections/notes/export", params={"format": "csv"}).content
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [r["note"] for r in rows] == ["'" + v if v != "plain" else v for v in values]
    assert [r["n"] for r in rows] == ["-5", "1", "2", "3", "4", "5"]       # numbers untouched


def test_a_revocation_reaches_every_worker_at_once(world: SecurityWorld):
    token = create_api_key(world.db_url, "soon-gone", ["planner"])
    key_id = token.split("_")[1]
    with world.server.client(headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/collections/facilities/items", params={"limit": "1"}).status_code == 200
        # Another worker revokes it: the row changes, and without the notification this
        # worker would go on trusting its cached verification.
        with psycopg.connect(world.db_url, autocommit=True) as conn:
            conn.execute("UPDATE gis_meta.api_keys SET revoked_at = now() WHERE id = %s", (key_id,))
        assert c.get("/collections/facilities/items", params={"limit": "1"}).status_code == 200
        with psycopg.connect(world.db_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify('gis_catalog', 'api_keys')")
        deadline = time.monotonic() + 2
        while c.get("/collections/facilities/items", params={"limit": "1"}).status_code != 401:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.05)


def test_row_scoped_keys_see_the_count_and_extent_of_their_rows_only(world: SecurityWorld):
    kt = world.facilities[world.facilities.owner == "KT"]
    kt_box = [float(v) for v in kt.total_bounds]
    with world.client("operator") as c:                  # owners: KT
        col = c.get("/collections/facilities").json()
        rec = c.get("/layers/facilities").json()
        tj = c.get("/collections/facilities/tiles/WebMercatorQuad/tilejson.json").json()
        listed = {x["id"]: x for x in c.get("/collections").json()["collections"]}
    assert col["numberOfFeatures"] == rec["feature_count"] == len(kt)
    assert listed["facilities"]["numberOfFeatures"] == len(kt)
    for got in (col["extent"]["spatial"]["bbox"][0], rec["extent"]):
        assert all(abs(a - b) < 1e-6 for a, b in zip(got, kt_box)), (got, kt_box)
    assert all(abs(a - b) < 1e-3 for a, b in zip(tj["bounds"], kt_box))
    with world.client("planner") as c:
        assert c.get("/collections/facilities").json()["numberOfFeatures"] == len(world.facilities)


def test_the_map_png_cache_is_bounded(tmp_path):
    from policy_maps.service import cached

    for i in range(40):
        cached(tmp_path, f"m{i}.png", lambda: b"x" * 100_000, max_bytes=1_000_000)
        time.sleep(0.001)
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 1_000_000
    assert (tmp_path / "m39.png").exists() and not (tmp_path / "m0.png").exists()


def test_anonymous_rate_limits_are_on_by_default(make_settings):
    from gis_platform.config import Settings

    defaults = Settings(_env_file=None)
    assert defaults.security.rate_limit_per_ip > 0
    srv = start_server(make_settings())
    try:
        with srv.client() as c:
            burst = int(defaults.security.rate_limit_per_ip * defaults.security.rate_limit_burst_seconds)
            # the bucket refills while the requests are made (a loaded machine makes them
            # slowly): ask until refused, up to three bursts' worth
            codes = []
            while 429 not in codes and len(codes) < 3 * burst:
                codes.append(c.get("/conformance").status_code)
        assert codes[:burst // 2] == [200] * (burst // 2)
        assert 429 in codes
    finally:
        srv.stop()


def test_an_unknown_key_id_takes_as_long_as_a_wrong_secret(world: SecurityWorld):
    real_id = world.tokens["planner"].split("_")[1]

    def median_ms(token: str) -> float:
        times = []
        with world.server.client(headers={"Authorization": f"Bearer {token}"}) as c:
            for i in range(9):
                t0 = time.perf_counter()
                assert c.get("/collections/parks", params={"n": i}).status_code == 401
                times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    wrong_secret = median_ms(f"gis_{real_id}_wrongsecretwrongsecret")
    unknown_id = median_ms("gis_000000000000_wrongsecretwrongsecret")
    # Both verify an argon2 hash: the unknown id is not an order of magnitude faster.
    assert unknown_id > 0.5 * wrong_secret, (unknown_id, wrong_secret)
