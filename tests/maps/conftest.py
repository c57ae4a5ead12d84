"""Fixtures of the policy-map tests: the real demo city (small) with its indicators and
published maps, in a database of its own, served by a live server; and a planner key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gis_platform.config import Settings
from tests.conftest import LiveServer, scratch_database, start_server


@dataclass
class MapWorld:
    db_url: str
    server: LiveServer
    planner_token: str
    counts: dict

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.server.client(headers=headers)


@pytest.fixture(scope="session")
def map_world(admin_url: str, template_db: str, tmp_path_factory) -> Iterator[MapWorld]:
    from gis_platform.apikeys import create_api_key
    from gis_platform.demo import load_demo

    with scratch_database(admin_url, template_db, "maps_") as db_url:
        data_dir: Path = tmp_path_factory.mktemp("maps-data")
        settings = Settings(database_url=db_url, data_dir=data_dir, _env_file=None, pool_timeout=3.0)
        counts = load_demo(settings, db_url, scale="small", only_if_empty=True)
        token = create_api_key(db_url, "planner-maps", ["planner"])
        server = start_server(settings)
        try:
            yield MapWorld(db_url, server, token, counts)
        finally:
            server.stop()


@pytest.fixture
def anon(map_world: MapWorld) -> Iterator[httpx.Client]:
    with map_world.client() as c:
        yield c


@pytest.fixture
def planner(map_world: MapWorld) -> Iterator[httpx.Client]:
    with map_world.client(map_world.planner_token) as c:
        yield c
