"""TileService coordination (no database needed): one render per tile, errors, cancellation."""

from __future__ import annotations

import asyncio
import gzip

import morecantile
import pytest

from gis_platform.config import Settings
from tile_server.service import TileService
from tile_server.sources import MVT_MEDIA_TYPE

WM = morecantile.tms.get("WebMercatorQuad")
TILE = morecantile.Tile(1, 1, 2)


class CountingSource:
    """A TileSource whose renders are slow and counted."""

    id = "counting"
    media_type = MVT_MEDIA_TYPE
    cacheable = True
    live = False

    def __init__(self, payload: bytes = b"\x1a\x05hello", delay: float = 0.05, fail: bool = False):
        self.payload, self.delay, self.fail, self.renders = payload, delay, fail, 0

    def cache_parts(self, grid=None, tile=None) -> str:
        return "counting@1"

    def tilejson(self, grid, base_url, query=""):
        return {}

    async def get_tile(self, grid, tile):
        self.renders += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("render failed")
        return self.payload


@pytest.fixture
def service(tmp_path):
    return TileService(Settings(data_dir=tmp_path, _env_file=None), db=None)


def test_concurrent_requests_for_one_tile_render_it_once(service):
    src = CountingSource()

    async def go():
        results = await asyncio.gather(*(service.tile(src, WM, TILE) for _ in range(10)))
        await service.drain()
        return results

    results = asyncio.run(go())
    assert src.renders == 1
    assert {r.etag for r in results} == {results[0].etag}
    assert gzip.decompress(results[0].body) == src.payload and results[0].encoding == "gzip"


def test_a_failed_render_fails_every_waiter_and_is_not_cached(service):
    src = CountingSource(fail=True)

    async def go():
        return await asyncio.gather(*(service.tile(src, WM, TILE) for _ in range(3)),
                                    return_exceptions=True)

    results = asyncio.run(go())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert src.renders == 1
    src.fail = False
    asyncio.run(service.tile(src, WM, TILE))
    assert src.renders == 2


def test_waiters_render_themselves_when_the_first_request_is_cancelled(service):
    src = CountingSource(delay=0.2)

    async def go():
        first = asyncio.create_task(service.tile(src, WM, TILE))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(service.tile(src, WM, TILE))
        await asyncio.sleep(0.01)
        first.cancel()
        return await second

    result = asyncio.run(go())
    assert gzip.decompress(result.body) == src.payload
    assert src.renders == 2


def test_each_access_key_gets_its_own_cache_entry_and_etag(service):
    src = CountingSource(delay=0)
    a = asyncio.run(service.tile(src, WM, TILE, access_key="public"))
    b = asyncio.run(service.tile(src, WM, TILE, access_key="internal,public,restricted"))
    assert a.etag != b.etag and src.renders == 2


def test_tile_connections_run_without_parallel_workers_unless_configured(db_url, tmp_path):
    """Tile statements are short and many: by default their connections plan no parallel
    workers (PostgreSQL's default is 2), and the setting raises it."""
    from gis_platform.db.tiles import TilePool

    async def setting(**kw) -> bytes:
        reader = TilePool(db_url, Settings(data_dir=tmp_path, _env_file=None, **kw))
        await reader.open()
        try:
            return await reader.fetch_bytes(
                "SELECT convert_to(current_setting('max_parallel_workers_per_gather'), 'UTF8') "
                "|| convert_to(' ' || current_setting('statement_timeout'), 'UTF8')", {})
        finally:
            await reader.close()

    assert asyncio.run(setting(statement_timeout_ms=4000)) == b"0 4s"
    assert asyncio.run(setting(tile_parallel_workers=3)).startswith(b"3 ")
