"""A burst of requests with a key nobody has verified yet costs one argon2 verification.

A map view fires a dozen tile requests at once; each used to verify the same key (~20 ms of
argon2 each, on the event loop).  The server runs in this process, so the hasher can be
counted.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gis_platform import apikeys
from gis_platform.apikeys import create_api_key


class CountingHasher:
    def __init__(self, inner) -> None:
        self.inner, self.calls, self.threads = inner, 0, set()
        self._lock = threading.Lock()

    def __getattr__(self, name):           # hash() etc.: the real hasher's
        return getattr(self.inner, name)

    def verify(self, hashed: str, secret: str) -> bool:
        with self._lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
        return self.inner.verify(hashed, secret)


@pytest.fixture
def counting(monkeypatch):
    hasher = CountingHasher(apikeys._hasher)
    monkeypatch.setattr(apikeys, "_hasher", hasher)
    return hasher


def burst(world, token: str, n: int = 12) -> list[int]:
    barrier = threading.Barrier(n)

    def one(_):
        with world.server.client(headers={"Authorization": f"Bearer {token}"}) as c:
            barrier.wait()
            return c.get("/collections/facilities").status_code
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_a_burst_with_a_new_key_verifies_it_once_off_the_event_loop(world, counting):
    token = create_api_key(world.db_url, "burst", ["planner"])
    assert burst(world, token) == [200] * 12
    assert counting.calls == 1
    # argon2 ran in a worker thread, not on the server's event loop thread
    assert world.server.thread.name not in counting.threads


def test_a_burst_with_a_wrong_secret_is_401_for_every_request(world, counting):
    token = create_api_key(world.db_url, "burst-wrong", ["planner"])
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert burst(world, wrong) == [401] * 12
    assert 1 <= counting.calls <= 12        # never cached: a wrong secret is checked again
    # and the right one still works afterwards
    assert burst(world, token, 3) == [200] * 3
