"""Published relations change under other systems' writes: the platform notices, serves the
new rows at once in features, and never a stale cached tile - while tiles away from a
change keep their cache entries."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest
from morecantile import tms as morecantile_tms

from layers.publish import publish
from tests.conftest import owner_url
from tests.publish.conftest import PubWorld, make_world
from tests.tiles.conftest import tile_ids as ids_in
from tests.tiles.conftest import wait_for

WM = morecantile_tms.get("WebMercatorQuad")
MAINS = '"City Data"."Water Mains"'
# Main 45 (row 2, column 4) and a tile holding it; a far tile with mains in it, away from any change.
MOVED = 45
NEAR = WM.tile(126.95 + 4 * 0.0035 + 0.001, 37.54 + 2 * 0.005, 16)
FAR = WM.tile(126.95 + 18 * 0.0035 + 0.001, 37.54 + 9 * 0.005, 16)
# Where main 45 moves to: an empty spot east of the grid.
NEW_LON, NEW_LAT = 127.05, 37.58
DEST = WM.tile(NEW_LON + 0.001, NEW_LAT, 16)


def tile_path(layer: str, t) -> str:
    return f"/collections/{layer}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt"


def editor(world: PubWorld) -> psycopg.Connection:
    """Another system's login: it may change the table, and nothing of the platform's."""
    with world.owner() as conn:
        conn.execute("DO $$ BEGIN CREATE ROLE city_editor LOGIN PASSWORD 'edit'; "
                     "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        conn.execute('GRANT USAGE ON SCHEMA "City Data", utility TO city_editor')
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {MAINS}, utility.valves "
                     "TO city_editor")
    url = psycopg.conninfo.make_conninfo(owner_url(world.db_url), user="city_editor", password="edit")
    return psycopg.connect(url, autocommit=True)


def move_main(conn: psycopg.Connection, main_id: int = MOVED) -> None:
    conn.execute(f"UPDATE {MAINS} SET the_geom = ST_Transform(ST_SetSRID(ST_MakeLine("
                 "ST_MakePoint(%s, %s), ST_MakePoint(%s, %s)), 4326), 5186) WHERE \"MainID\" = %s",
                 (NEW_LON, NEW_LAT, NEW_LON + 0.002, NEW_LAT, main_id))


def publish_with_triggers(world: PubWorld, relation: str, layer_id: str, **kw) -> list:
    """As the command line does: the app login publishes, the owner's login (which may)
    adds the change triggers."""
    with psycopg.connect(world.db_url, autocommit=True) as app, world.owner() as owner:
        done = publish(app, relation, layer_id=layer_id, access_level="public", trigger_conn=owner, **kw)
    with world.client(None) as c:
        wait_for(lambda: c.get(f"/collections/{layer_id}").status_code == 200)
    return done


def test_a_trigger_tracked_change_refreshes_only_the_tiles_it_touches(fresh_world: PubWorld):
    w = fresh_world
    (p,) = publish_with_triggers(w, MAINS, "water_mains")
    assert p.tracking == "trigger" and p.triggers_on == [MAINS]
    with w.client(None) as c:
        near, far, dest = (c.get(tile_path("water_mains", t)) for t in (NEAR, FAR, DEST))
        assert MOVED in ids_in(near) and ids_in(far) and not ids_in(dest)
        with editor(w) as ed:
            move_main(ed)
        # Features read the relation itself: the new geometry at once.
        f = c.get(f"/collections/water_mains/items/{MOVED}").json()
        assert f["geometry"]["coordinates"][0] == pytest.approx([NEW_LON, NEW_LAT], abs=1e-7)
        # The change reaches every worker by NOTIFY; then the touched tiles have new ETags.
        wait_for(lambda: c.get(tile_path("water_mains", NEAR)).headers["etag"] != near.headers["etag"])
        assert MOVED not in ids_in(c.get(tile_path("water_mains", NEAR)))
        assert ids_in(c.get(tile_path("water_mains", DEST))) == {MOVED}
        # Away from the change: same ETag, and a revalidation is a 304.
        again = c.get(tile_path("water_mains", FAR), headers={"If-None-Match": far.headers["etag"]})
        assert again.status_code == 304
    with w.owner() as conn:
        rows = conn.execute("SELECT extent, source FROM gis_meta.layer_changes WHERE layer_id = "
                            "'water_mains'").fetchall()
    (extent, source), = rows
    assert source == "trigger"
    # the extent covers the old and the new position, and not the far tile
    assert extent[0] <= 126.95 + 4 * 0.0035 and extent[2] >= NEW_LON + 0.002
    assert extent[1] <= 37.55 and extent[3] >= NEW_LAT


def test_a_polled_relation_is_fresh_within_seconds(fresh_world: PubWorld):
    w = fresh_world
    (p,) = w.publish({"relation": MAINS, "id": "water_mains", "access_level": "public"})["published"]
    assert p["tracking"] == "poll"
    with w.client(None) as c:
        before = c.get(tile_path("water_mains", NEAR))
        assert MOVED in ids_in(before)
        time.sleep(1.5)                      # the watcher's baseline signal
        with editor(w) as ed:
            t0 = time.monotonic()
            move_main(ed)
        wait_for(lambda: c.get(tile_path("water_mains", NEAR)).headers["etag"] != before.headers["etag"])
        elapsed = time.monotonic() - t0
        assert MOVED not in ids_in(c.get(tile_path("water_mains", NEAR)))
    # poll every 0.5 s + PostgreSQL publishing the session's statistics (<= 1 s after commit)
    assert elapsed < 5.0
    with w.owner() as conn:
        assert conn.execute("SELECT source FROM gis_meta.layer_changes WHERE layer_id = 'water_mains'"
                            ).fetchall() == [("poll",)]


def test_a_view_changes_with_its_base_table_and_a_matview_with_its_refresh(fresh_world: PubWorld):
    w = fresh_world
    (v,) = publish_with_triggers(w, "utility.big_mains", "big_mains", id_column="MainID")
    assert v.tracking == "trigger" and v.triggers_on == [MAINS]      # the base table's trigger
    w.publish({"relation": "utility.mains_mv", "access_level": "public"})
    with w.client(None) as c:
        assert MOVED not in ids_in(c.get(tile_path("big_mains", DEST)))
        time.sleep(1.5)
        with w.owner() as conn:
            conn.execute(f'UPDATE {MAINS} SET size = 500 WHERE "MainID" = %s', (MOVED,))
            move_main(conn)
        wait_for(lambda: ids_in(c.get(tile_path("big_mains", DEST))) == {MOVED})
        # the materialized view changes only when refreshed (polled: its file node)
        assert not ids_in(c.get(tile_path("mains_mv", DEST)))
        with w.owner() as conn:
            conn.execute("REFRESH MATERIALIZED VIEW utility.mains_mv")
        wait_for(lambda: ids_in(c.get(tile_path("mains_mv", DEST))) == {MOVED})


def test_unpublish_leaves_the_relation_as_it_was(fresh_world: PubWorld):
    w = fresh_world
    with w.owner() as conn:
        before = conn.execute(f"SELECT count(*), md5(string_agg(\"MainID\"::text || ST_AsEWKB(the_geom)::text, ',' "
                              f"ORDER BY \"MainID\")) FROM {MAINS}").fetchone()
    publish_with_triggers(w, MAINS, "water_mains")
    with w.owner() as conn:
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                            (MAINS,)).fetchone()[0] == 4
    with w.client() as c:
        assert c.delete("/layers/water_mains").status_code == 204
        assert c.get("/layers/water_mains").status_code == 404
    with w.owner() as conn:
        after = conn.execute(f"SELECT count(*), md5(string_agg(\"MainID\"::text || ST_AsEWKB(the_geom)::text, ',' "
                             f"ORDER BY \"MainID\")) FROM {MAINS}").fetchone()
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT "
                                "tgisinternal", (MAINS,)).fetchone()[0]
    assert after == before
    # The app login cannot drop the owner's triggers: they stay, inert (no layer reads the
    # table: they return at once). The command line's unpublish, with the owner's login,
    # removes them (test_the_command_line_publishes_and_unpublishes).
    assert triggers == 4
    with w.owner() as conn:
        conn.execute(f'UPDATE {MAINS} SET size = size WHERE "MainID" = 1')
        assert conn.execute("SELECT count(*) FROM gis_meta.layer_changes").fetchone()[0] == 0


def test_a_changed_schema_is_read_again(fresh_world: PubWorld):
    w = fresh_world
    w.publish({"relation": "utility.valves", "access_level": "public"})
    with w.client(None) as c:
        time.sleep(1.5)
        with w.owner() as conn:
            conn.execute("ALTER TABLE utility.valves ADD COLUMN pressure_kpa real DEFAULT 350")
        q = wait_for(lambda: "pressure_kpa" in (r := c.get("/collections/valves/queryables").json())["properties"]
                     and r)
        assert q["properties"]["pressure_kpa"]["type"] == "number"
        f = c.get("/collections/valves/items?limit=1").json()["features"][0]
        assert f["properties"]["pressure_kpa"] == 350
        with w.owner() as conn:
            conn.execute("ALTER TABLE utility.valves DROP COLUMN kind")
        # until the catalog is read again a request may get a 503 (never a 500)
        statuses = set()

        def settled():
            r = c.get("/collections/valves/items?limit=1")
            statuses.add(r.status_code)
            return r.status_code == 200 and "kind" not in r.json()["features"][0]["properties"]
        wait_for(settled)
        assert statuses <= {200, 503}


def test_watched_schemas_publish_new_relations_as_internal(db_url, data_dir):
    w = make_world(db_url, data_dir, publish_schemas="disc", publish_discover_seconds=1)
    try:
        with w.owner() as conn:
            conn.execute("CREATE SCHEMA disc; GRANT USAGE ON SCHEMA disc TO gis_platform_app; "
                         "ALTER DEFAULT PRIVILEGES IN SCHEMA disc GRANT SELECT ON TABLES TO gis_platform_app; "
                         "CREATE TABLE disc.bus_stops (stop_id int PRIMARY KEY, name text, "
                         "pt geometry(Point, 4326)); INSERT INTO disc.bus_stops VALUES "
                         "(1, 'A', ST_SetSRID(ST_MakePoint(126.98, 37.57), 4326))")
        with w.client() as admin, w.client(None) as anon:
            doc = wait_for(lambda: (r := admin.get("/layers/bus_stops")).status_code == 200 and r.json())
            assert doc["access_level"] == "internal"
            assert anon.get("/collections/bus_stops").status_code == 404
            assert admin.get("/collections/bus_stops/items").json()["numberMatched"] == 1
            # unpublished by a person: not discovered again
            assert admin.delete("/layers/bus_stops").status_code == 204
            time.sleep(2.5)
            assert admin.get("/layers/bus_stops").status_code == 404
            # a discovered relation that is dropped leaves the catalog
            with w.owner() as conn:
                conn.execute("CREATE TABLE disc.bike_racks (id int PRIMARY KEY, pt geometry(Point, 4326))")
            wait_for(lambda: admin.get("/layers/bike_racks").status_code == 200)
            with w.owner() as conn:
                conn.execute("DROP TABLE disc.bike_racks")
            wait_for(lambda: admin.get("/layers/bike_racks").status_code == 404)
    finally:
        w.server.stop()


def _cli(args: list[str], world: PubWorld, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIS_DATABASE_URL": world.db_url,
           "GIS_ADMIN_DATABASE_URL": owner_url(world.db_url), "GIS_DATA_DIR": str(data_dir),
           "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "gis_platform.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_line_publishes_and_unpublishes(fresh_world: PubWorld, data_dir):
    w = fresh_world
    res = _cli(["layers", "publish", MAINS, "--id", "mains_cli", "--access", "public"], w, data_dir)
    assert res.returncode == 0, res.stderr
    assert "published mains_cli" in res.stderr and "changes: trigger" in res.stderr
    res = _cli(["layers", "publish", "--schema", "utility", "--all"], w, data_dir)
    assert res.returncode == 0, res.stderr
    for name in ("valves", "parcels", "big_mains", "mains_mv", "readings", "mains_deeper_than"):
        assert f"published {name} " in res.stderr, (name, res.stderr)
    res = _cli(["layers", "unpublish", "mains_cli"], w, data_dir)
    assert res.returncode == 0 and "is unchanged" in res.stderr
    with w.owner() as conn:
        # the view big_mains (published by --all) still watches the table: its triggers stay
        n = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT "
                         "tgisinternal", (MAINS,)).fetchone()[0]
    assert n == 4
    res = _cli(["layers", "unpublish", "big_mains"], w, data_dir)
    res = _cli(["layers", "unpublish", "mains_deeper_than"], w, data_dir)
    with w.owner() as conn:
        n = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT "
                         "tgisinternal", (MAINS,)).fetchone()[0]
    assert n == 0
    bad = _cli(["layers", "publish", "utility.nothing"], w, data_dir)
    assert bad.returncode == 1 and "No table, view or function" in bad.stderr


def test_overviews_of_a_published_relation_never_serve_a_change_they_miss(db_url, data_dir):
    w = make_world(db_url, data_dir, tile_overview_min_features=100, tile_overview_patch_quiet_s=3,
                   tile_overview_rebuild_quiet_s=3, tile_overview_rebuild_max_stale_s=6)
    near14 = WM.tile(126.95 + 4 * 0.0035 + 0.001, 37.54 + 2 * 0.005, 14)
    try:
        publish_with_triggers(w, MAINS, "water_mains")

        def overview_tables():
            with w.owner() as conn:
                return conn.execute("SELECT zoom, table_name, snapshot::text FROM tiles.overviews "
                                    "WHERE layer_id = 'water_mains' ORDER BY zoom").fetchall()
        first = wait_for(lambda: len(t := overview_tables()) == 7 and t, 60)
        with w.client(None) as c:
            from_overview = wait_for(lambda: (r := c.get(tile_path("water_mains", near14)))
                                     and MOVED in ids_in(r) and r)
            with editor(w) as ed:
                move_main(ed)
            # The z14 level misses the change: the tile over it reads the table at once...
            fresh = wait_for(lambda: (r := c.get(tile_path("water_mains", near14))).headers["etag"]
                             != from_overview.headers["etag"] and r, 5)
            assert MOVED not in ids_in(fresh)
            assert overview_tables() == first          # (not rebuilt yet: 3 s of quiet first)
            # ...and once the changes have settled, the levels are updated in place where the
            # row changed (the same tables, a newer snapshot), in the background
            rebuilt = wait_for(lambda: (t := overview_tables()) != first and len(t) == 7 and t, 60)
            assert [(z, name) for z, name, _ in rebuilt] == [(z, name) for z, name, _ in first]
            after = wait_for(lambda: (r := c.get(tile_path("water_mains", near14))).headers["etag"]
                             != fresh.headers["etag"] and r, 10)
            assert MOVED not in ids_in(after) and ids_in(after) == ids_in(fresh)
            assert ids_in(c.get(tile_path("water_mains", DEST))) == {MOVED}
    finally:
        w.server.stop()
