"""Health, readiness, problem+json errors and reconnecting after a database restart."""

from __future__ import annotations

import shutil
import time

import psycopg

from gis_platform.config import Settings
from gis_platform.db.embedded import EmbeddedPostgres

from .conftest import _make_world_traversable_tmp, owner_url, start_server


def test_health_is_ok(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers.get("x-request-id")


def test_ready_reports_database_and_migrations(client):
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready" and body["postgis"].startswith("3.")
    assert 1 in body["migrations"]


def test_ready_fails_when_migrations_are_pending(server, db_url):
    with psycopg.connect(owner_url(db_url), autocommit=True) as conn:
        conn.execute("DELETE FROM gis_meta.schema_migrations WHERE version = 1")
    with server.client() as c:
        r = c.get("/ready")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Pending migrations" in r.json()["detail"]


def test_unknown_route_is_problem_json(client):
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 404 and body["title"] and "/no/such/thing" in body["detail"]


def test_unknown_layer_is_problem_json_without_internals(client):
    r = client.get("/layers/does_not_exist")
    assert r.status_code == 404
    body = r.json()
    assert body["type"].endswith("layer-not-found")
    assert "Traceback" not in r.text and "SELECT" not in r.text


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/health" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_large_responses_are_gzipped(client):
    r = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"


def test_cors_origins_come_from_settings(make_settings):
    srv = start_server(make_settings(cors_origins=["https://maps.seoul.example"]))
    try:
        with srv.client() as c:
            r = c.get("/health", headers={"Origin": "https://maps.seoul.example"})
            assert r.headers.get("access-control-allow-origin") == "https://maps.seoul.example"
            # any other origin: anonymous public reads only (#20), never writes or keys
            r = c.get("/health", headers={"Origin": "https://evil.example"})
            assert r.headers.get("access-control-allow-origin") == "*"
            pre = {"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization"}
            r = c.options("/layers/x", headers={"Origin": "https://evil.example", **pre})
            assert "access-control-allow-origin" not in r.headers
            r = c.options("/layers/x", headers={"Origin": "https://maps.seoul.example", **pre})
            assert r.headers.get("access-control-allow-origin") == "https://maps.seoul.example"
    finally:
        srv.stop()


def test_server_survives_a_database_restart():
    """A request during the outage gets 503; the next one after the restart works."""
    root = _make_world_traversable_tmp("gis-restart-")
    settings = Settings(data_dir=root, _env_file=None, pool_timeout=2.0, pool_min_size=2)
    emb = EmbeddedPostgres(settings)
    emb.start()
    srv = start_server(settings)  # no database_url: the app uses the embedded cluster
    try:
        with srv.client() as c:
            assert c.get("/ready").status_code == 200
            emb.stop()
            during = c.get("/ready")
            assert during.status_code == 503
            assert during.headers["content-type"].startswith("application/problem+json")
            assert c.get("/health").status_code == 200  # liveness is not readiness
            emb.start()
            deadline = time.monotonic() + 20
            status = None
            while time.monotonic() < deadline:
                status = c.get("/ready").status_code
                if status == 200:
                    break
                time.sleep(0.2)
            assert status == 200
            assert c.get("/layers").status_code == 200
    finally:
        srv.stop()
        emb.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_vendored_maplibre_is_served_as_javascript_module(client):
    r = client.get("/static/vendor/maplibre-gl/maplibre-gl.mjs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    r = client.get("/static/vendor/leaflet/leaflet.js")
    assert r.status_code == 200 and "Leaflet" in r.text[:2000]
