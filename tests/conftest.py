"""Test fixtures: one real embedded PostGIS per session, a fresh database per test.

The cluster is started once (in a temporary directory) with the platform's own
:class:`EmbeddedPostgres`.  A template database is migrated once; each test that needs a
database gets ``CREATE DATABASE ... TEMPLATE`` of it, so tests are isolated and never touch
a developer's own data.  If PostgreSQL/PostGIS cannot be started the session fails: a
missing database is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn

from gis_platform.config import Settings
from gis_platform.db import migrations
from gis_platform.db.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
ARTIFACTS = ROOT / "test-artifacts"


def pytest_sessionstart(session) -> None:
    # Without `make assets` every page test would fail on its own; say it once, plainly.
    from gis_platform.assets import missing_vendor_assets

    missing = missing_vendor_assets()
    if missing:
        pytest.exit(f"front-end assets missing ({', '.join(missing)}): run `make assets` "
                    "(or `make test`, which does)", returncode=2)


def _make_world_traversable_tmp(prefix: str) -> Path:
    # The cluster may run as the 'postgres' OS user (when tests run as root): it must be able
    # to enter the directory, which pytest's own 0700 tmp dirs forbid.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="session")
def pg_root() -> Iterator[Path]:
    path = _make_world_traversable_tmp("gis-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_settings(pg_root: Path) -> Settings:
    return Settings(data_dir=pg_root, database_url=None, _env_file=None)


_CLUSTER: list[EmbeddedPostgres] = []


@pytest.fixture(scope="session")
def cluster(cluster_settings: Settings) -> Iterator[EmbeddedPostgres]:
    emb = EmbeddedPostgres(cluster_settings)
    emb.start()
    _CLUSTER.append(emb)
    yield emb
    _CLUSTER.remove(emb)
    emb.stop()


def app_url(url: str) -> str:
    """The least-privilege login (``gis_platform_app``) on the database of ``url``."""
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    return _CLUSTER[0].app_url(dbname)


def owner_url(url: str) -> str:
    """The cluster owner (superuser) on the database of ``url``: test set-up that the
    platform's own login may not do (ALTER SYSTEM, pausing replay, inspecting roles...)."""
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    return psycopg.conninfo.make_conninfo(_CLUSTER[0].url(), dbname=dbname)


@pytest.fixture(scope="session")
def admin_url(cluster: EmbeddedPostgres) -> str:
    return cluster.url()


def _url_for(admin_url: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> str:
    name = "gis_template_test"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _url_for(admin_url, name)
    migrations.migrate(url)
    return name


@contextlib.contextmanager
def scratch_database(admin_url: str, template_db: str, prefix: str = "t_") -> Iterator[str]:
    """A fresh, migrated database of its own (a copy of the template), dropped afterwards.

    Yields the URL of the platform's least-privilege login on it, the one the server uses
    (``owner_url(url)`` gives the owner's)."""
    name = prefix + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        yield app_url(_url_for(admin_url, name))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    with scratch_database(admin_url, template_db) as url:
        yield url


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    """A real uvicorn server on a loopback port, running the platform app in a thread."""

    url: str
    settings: Settings
    app: object
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(settings: Settings) -> LiveServer:
    from gis_platform.app import create_app

    port = free_port()
    app = create_app(settings, configure_logs=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", settings, app, server, thread)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the platform's service user can reach (CLI subprocesses run as root
    become it), removed afterwards."""
    base = _make_world_traversable_tmp("gis-data-")
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_settings(db_url: str, data_dir: Path):
    def _make(**overrides) -> Settings:
        base = dict(database_url=db_url, admin_database_url=owner_url(db_url),
                    data_dir=data_dir, _env_file=None, pool_timeout=3.0)
        base.update(overrides)
        return Settings(**base)
    return _make


@pytest.fixture
def server(make_settings) -> Iterator[LiveServer]:
    """The platform on a real HTTP port, over this test's own database."""
    srv = start_server(make_settings())
    yield srv
    srv.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
