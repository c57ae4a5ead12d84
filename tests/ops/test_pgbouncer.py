"""The platform behind Debian's pgbouncer in transaction mode (#19): pooled connections carry
no startup options and prepare nothing, statement budgets are SET LOCAL, and LISTEN and the
background leaders keep a session of their own (GIS_SESSION_DATABASE_URL)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time

import geopandas as gpd
import psycopg
import pytest
import shapely
from morecantile import tms as morecantile_tms

from gis_platform.apikeys import create_api_key
from layers.ingest import ingest_geodataframe
from tests.conftest import _CLUSTER, _make_world_traversable_tmp, free_port, owner_url, start_server
from tests.tiles.conftest import tile_ids, wait_for

PGBOUNCER = "/usr/sbin/pgbouncer"          # Debian's (make setup installs it)
WM = morecantile_tms.get("WebMercatorQuad")
TILE = WM.tile(126.9702, 37.5502, 15)
PATH = f"/collections/mains/tiles/WebMercatorQuad/{TILE.z}/{TILE.x}/{TILE.y}.mvt"


def mains(n: int) -> gpd.GeoDataFrame:
    lines = [shapely.LineString([(126.97, 37.55 + i * 0.0002), (126.9705, 37.55 + i * 0.0002)])
             for i in range(n)]
    return gpd.GeoDataFrame({"kind": ["water"] * n, "depth_m": [1.0] * n}, geometry=lines, crs="EPSG:4326")


@pytest.fixture
def bouncer(db_url):
    """pgbouncer on loopback in transaction mode, in front of the test cluster, for the
    platform's login; run as the cluster's OS user (pgbouncer refuses root)."""
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    # the role's own statement timeout (startup options cannot pass the pooler), before any
    # server connection is opened
    with psycopg.connect(owner_url(db_url), autocommit=True) as conn:
        conn.execute(f'ALTER ROLE gis_platform_app IN DATABASE "{info["dbname"]}" '
                     "SET statement_timeout = '30s'")
    root = _make_world_traversable_tmp("gis-pgbouncer-")
    port = free_port()
    (root / "userlist.txt").write_text(f'"{info["user"]}" "{info["password"]}"\n')
    (root / "pgbouncer.ini").write_text(f"""
[databases]
* = host=127.0.0.1 port={info["port"]}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root}/userlist.txt
admin_users = {info["user"]}
pool_mode = transaction
default_pool_size = 4
max_client_conn = 400
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
""")
    user = pwd.getpwnam(_CLUSTER[0].settings.database.pg_os_user) if os.geteuid() == 0 else None
    kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    if user:
        for p in root.iterdir():
            os.chown(p, user.pw_uid, user.pw_gid)
        os.chown(root, user.pw_uid, user.pw_gid)
    proc = subprocess.Popen([PGBOUNCER, str(root / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kw)
    url = psycopg.conninfo.make_conninfo(db_url, port=str(port))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((root / "pgbouncer.log").read_text()[-2000:]) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def stats(pooler_url: str, dbname: str) -> int:
    """Transactions pgbouncer has passed to the test database."""
    admin = psycopg.conninfo.make_conninfo(pooler_url, dbname="pgbouncer")
    with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
        cur = conn.execute("SHOW STATS")
        cols = [d.name for d in cur.description]
        for row in cur.fetchall():
            r = dict(zip(cols, row))
            if r["database"] == dbname:
                return int(r["total_xact_count"])
    return 0


def test_the_platform_behind_pgbouncer_in_transaction_mode(bouncer, db_url, make_settings):
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    ingest_geodataframe(bouncer, mains(5), "mains", metadata={"access_level": "public"})
    admin = create_api_key(db_url, "a", ["admin"])
    srv = start_server(make_settings(database_url=bouncer, session_database_url=db_url,
                                     transaction_pooler=True, rate_limit_per_ip=0,
                                     anonymous_statement_timeout_ms=4000))
    try:
        before = stats(bouncer, dbname)
        with srv.client() as c, srv.client(headers={"Authorization": f"Bearer {admin}"}) as a:
            # many times the same statements: nothing prepared on one server connection
            # is looked for on another
            for i in range(30):
                assert tile_ids(c.get(PATH + f"?n={i}")) == {1, 2, 3, 4, 5}
                r = c.get("/collections/mains/items", params={"filter": "depth_m > 0.5", "limit": 2,
                                                               "offset": i % 3})
                assert r.status_code == 200, r.text
            # an edit (a write in one transaction), heard through LISTEN on the session URL
            assert a.patch("/layers/mains", json={"editable": True}).status_code == 200
            etag = a.get("/collections/mains/items/1").headers["etag"]
            assert a.patch("/collections/mains/items/1", json={"geometry": {
                "type": "LineString", "coordinates": [[127.01, 37.58], [127.011, 37.58]]}},
                headers={"If-Match": etag}).status_code == 204
            wait_for(lambda: 1 not in tile_ids(c.get(PATH)), 10)
            assert c.get("/ready").status_code == 200
        assert stats(bouncer, dbname) - before > 20            # the requests went through it
        # the anonymous budget is SET LOCAL: no server connection keeps it
        with psycopg.connect(bouncer, autocommit=True, prepare_threshold=None) as conn:
            for _ in range(8):
                assert conn.execute("SHOW statement_timeout").fetchone()[0] == "30s"
    finally:
        srv.stop()


def test_settings_name_the_session_url():
    from gis_platform.config import Settings

    s = Settings(_env_file=None, session_database_url="postgresql://x/y", transaction_pooler=True)
    assert s.database.session_url == "postgresql://x/y" and s.database.transaction_pooler
