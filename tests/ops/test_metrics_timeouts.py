"""Prometheus /metrics and the request timeout, against a real server and database."""

from __future__ import annotations

import socket
import time

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_server


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_need_an_admin_key_unless_made_public(client, db_url, make_settings):
    from gis_platform.apikeys import create_api_key

    assert client.get("/metrics").status_code == 401
    staff = create_api_key(db_url, "staff", ["staff"])
    assert client.get("/metrics", headers={"Authorization": f"Bearer {staff}"}).status_code == 403
    srv = start_server(make_settings(metrics_public=True))
    try:
        with srv.client() as c:
            assert c.get("/metrics").status_code == 200
    finally:
        srv.stop()


def test_metrics_count_requests_by_family_and_db_time(client, db_url):
    from gis_platform.apikeys import create_api_key

    admin = {"Authorization": f"Bearer {create_api_key(db_url, 'prometheus', ['admin'])}"}
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/collections").status_code == 200
    assert client.get("/no/such/thing").status_code == 404
    r = client.get("/metrics", headers=admin)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    assert _value(s, "gis_http_requests_total", family="ops", method="GET", status="2xx") >= 4
    assert _value(s, "gis_http_requests_total", family="features", method="GET", status="2xx") >= 1
    assert _value(s, "gis_http_requests_total", family="other", method="GET", status="4xx") >= 1
    assert _value(s, "gis_http_request_duration_seconds_count", family="ops") >= 4
    # /ready and /collections used the pool: the DB time histogram saw them
    assert _value(s, "gis_db_query_seconds_count") >= 1
    assert _value(s, "gis_db_pool_connections", pool="gis-rw") >= 1


def test_metrics_can_be_switched_off(make_settings):
    srv = start_server(make_settings(metrics_enabled=False))
    try:
        with srv.client() as c:
            assert c.get("/metrics").status_code == 404
    finally:
        srv.stop()


def _raw_request(url: str, head: bytes, body_part: bytes, wait: float) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body_part)
        time.sleep(wait)
        chunks = []
        sock.settimeout(10)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunks[-1]:
                break
        return b"".join(chunks)


def test_request_that_stalls_gets_503_after_the_timeout(make_settings):
    """A client that stops sending its body mid-way does not hold a worker forever."""
    srv = start_server(make_settings(request_timeout_s=0.5, allow_anonymous_writes=True,
                                     metrics_public=True))
    try:
        head = (b"POST /layers/upload HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: multipart/form-data; boundary=XyZ\r\n"
                b"Content-Length: 100000\r\n\r\n")
        started = time.monotonic()
        raw = _raw_request(srv.url, head, b"--XyZ\r\n", wait=1.5)
        status_line, _, rest = raw.partition(b"\r\n")
        assert b" 503 " in status_line, raw[:200]
        body = orjson.loads(rest.split(b"\r\n\r\n", 1)[1])
        assert body["title"] == "Request timed out" and "0.5 s" in body["detail"]
        assert time.monotonic() - started < 5
        # the server is fine afterwards
        with srv.client() as c:
            assert c.get("/health").status_code == 200
            s = _samples(c.get("/metrics").text)
            assert _value(s, "gis_http_requests_total", family="catalog", method="POST",
                          status="5xx") == 1
    finally:
        srv.stop()


def test_fast_requests_are_not_affected_by_the_timeout(make_settings):
    srv = start_server(make_settings(request_timeout_s=0.5))
    try:
        with srv.client() as c:
            for _ in range(5):
                assert c.get("/ready").status_code == 200
    finally:
        srv.stop()
