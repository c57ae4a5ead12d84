"""The embedded cluster, migrations and the missing-PostGIS message."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from gis_platform.config import Settings
from gis_platform.db import migrations
from gis_platform.db.embedded import EmbeddedPostgres, PgInstall, find_postgres, require_postgis
from gis_platform.errors import ConfigurationError

from .conftest import _make_world_traversable_tmp, owner_url


@pytest.fixture(scope="module")
def own_cluster():
    """A cluster of its own, so restarts do not disturb the other tests."""
    root = _make_world_traversable_tmp("gis-own-")
    emb = EmbeddedPostgres(Settings(data_dir=root, _env_file=None))
    yield emb
    emb.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_embedded_cluster_starts_with_postgis_on_loopback(own_cluster: EmbeddedPostgres):
    url = own_cluster.start()
    assert "@127.0.0.1:" in url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3.")
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        assert listen == "127.0.0.1"
        assert conn.execute("SELECT current_setting('is_superuser')").fetchone()[0] == "on"
    st = own_cluster.status()
    assert st["running"] and st["initialized"]


def test_second_start_reuses_the_cluster_and_its_data(own_cluster: EmbeddedPostgres):
    url = own_cluster.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS keepme (v int)")
        conn.execute("INSERT INTO keepme VALUES (42)")
    own_cluster.stop()
    assert own_cluster.status()["running"] is False
    url2 = own_cluster.start()
    assert url2 == url  # same port, same password: the cluster was reused, not re-created
    with psycopg.connect(url2) as conn:
        assert conn.execute("SELECT sum(v) FROM keepme").fetchone()[0] >= 42


def test_cluster_memory_is_sized_to_the_machine_at_each_start(own_cluster: EmbeddedPostgres):
    from gis_platform.db.embedded import available_memory_bytes

    def shared_buffers_mb(url: str) -> int:
        with psycopg.connect(url) as conn:
            return int(conn.execute("SELECT setting::bigint * current_setting('block_size')::int "
                                    "/ 1048576 FROM pg_settings WHERE name = 'shared_buffers'"
                                    ).fetchone()[0])

    own_cluster.stop()
    url = own_cluster.start()
    mem_mb = available_memory_bytes() // (1024 * 1024)
    assert shared_buffers_mb(url) == max(128, min(4096, mem_mb // 4))
    # The setting wins, and it applies to an existing cluster at its next start.
    own_cluster.stop()
    sized = EmbeddedPostgres(own_cluster.settings.with_(pg_shared_buffers_mb=48))
    try:
        assert shared_buffers_mb(sized.start()) == 48
    finally:
        sized.stop()
    own_cluster.start()


def test_cluster_starts_with_its_own_configuration_when_the_sized_memory_cannot_be_mapped(
        own_cluster: EmbeddedPostgres, monkeypatch):
    from gis_platform.db import embedded

    # Far more shared memory than this host can map (as on a strict-overcommit host).
    monkeypatch.setattr(embedded, "memory_options", lambda settings: "-c shared_buffers=4TB")
    own_cluster.stop()
    url = own_cluster.start()
    assert "shared memory" in own_cluster._log_tail()       # the first attempt failed...
    with psycopg.connect(url) as conn:                       # ...the second one serves
        assert conn.execute("SHOW shared_buffers").fetchone()[0] != "4TB"
    monkeypatch.undo()
    own_cluster.stop()
    own_cluster.start()


def test_cluster_recovers_after_unclean_shutdown(own_cluster: EmbeddedPostgres):
    url = own_cluster.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS crashme (v int)")
        conn.execute("INSERT INTO crashme VALUES (7)")
    own_cluster.kill()  # SIGKILL the postmaster: stale postmaster.pid, WAL to replay
    assert (Path(own_cluster.pgdata) / "postmaster.pid").exists()
    url2 = own_cluster.start()
    with psycopg.connect(url2) as conn:
        assert conn.execute("SELECT count(*) FROM crashme WHERE v = 7").fetchone()[0] >= 1


def test_stop_is_clean_and_idempotent(own_cluster: EmbeddedPostgres):
    own_cluster.start()
    assert own_cluster.stop() is True
    assert own_cluster.stop() is False
    assert not (Path(own_cluster.pgdata) / "postmaster.pid").exists()


def test_missing_postgis_names_the_package_to_install(tmp_path: Path):
    real = find_postgres()
    fake_share = tmp_path / "share"
    (fake_share / "extension").mkdir(parents=True)
    install = PgInstall(bin_dir=real.bin_dir, share_dir=fake_share, version=real.version)
    with pytest.raises(ConfigurationError) as err:
        require_postgis(install)
    assert f"postgresql-{real.version}-postgis-3" in err.value.detail
    assert "apt-get install" in err.value.detail


def test_missing_postgresql_names_the_packages_to_install(tmp_path: Path):
    with pytest.raises(ConfigurationError) as err:
        find_postgres(tmp_path)  # a bin dir with no initdb/pg_ctl
    assert "apt-get install" in err.value.detail and "postgis" in err.value.detail


def test_migrations_apply_once_and_are_recorded(admin_url: str):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "migtest"')
        conn.execute('CREATE DATABASE "migtest"')
    url = psycopg.conninfo.make_conninfo(admin_url, dbname="migtest")
    first = migrations.migrate(url)
    assert [m.version for m in first] == [m.version for m in migrations.available_migrations()]
    assert migrations.migrate(url) == []  # idempotent
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('gis_meta.layers')").fetchone()[0] is not None
        assert conn.execute("SELECT to_regclass('gis_meta.audit_log')").fetchone()[0] is not None
        recorded = conn.execute("SELECT count(*) FROM gis_meta.schema_migrations").fetchone()[0]
        assert recorded == len(first)
        assert migrations.pending(conn) == []


def test_edited_migration_is_refused(db_url: str):
    with psycopg.connect(owner_url(db_url), autocommit=True) as conn:
        conn.execute("UPDATE gis_meta.schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(ConfigurationError, match="changed after it was applied"):
        migrations.migrate(owner_url(db_url))


def test_the_server_login_cannot_touch_the_migration_history(db_url: str):
    with psycopg.connect(db_url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE gis_meta.schema_migrations SET checksum = 'x' WHERE version = 1")


def test_audit_log_is_append_only(conn: psycopg.Connection, db_url: str):
    # Even the owner cannot change a row: the trigger refuses.
    with psycopg.connect(owner_url(db_url), autocommit=True) as owner:
        owner.execute("INSERT INTO gis_meta.audit_log (action, endpoint) VALUES ('read', '/x')")
        with pytest.raises(psycopg.errors.RaiseException):
            owner.execute("UPDATE gis_meta.audit_log SET action = 'write'")
        with pytest.raises(psycopg.errors.RaiseException):
            owner.execute("DELETE FROM gis_meta.audit_log")
    # The server's login may append and read, nothing else.
    conn.execute("INSERT INTO gis_meta.audit_log (action, endpoint) VALUES ('read', '/y')")
    assert conn.execute("SELECT count(*) FROM gis_meta.audit_log").fetchone()[0] == 2
    for stmt in ("UPDATE gis_meta.audit_log SET action = 'write'", "DELETE FROM gis_meta.audit_log",
                 "TRUNCATE gis_meta.audit_log",
                 "ALTER TABLE gis_meta.audit_log DISABLE TRIGGER audit_log_no_update",
                 "SET session_replication_role = replica"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(stmt)
