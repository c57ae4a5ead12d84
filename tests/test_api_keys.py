"""API keys: valid, garbled, unknown, revoked and expired tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gis_platform.apikeys import create_api_key, forget_cached_keys, revoke_api_key
from gis_platform.errors import InvalidParameter


def test_key_is_stored_hashed_never_in_clear(db_url, conn):
    token = create_api_key(db_url, "planner-kim", ["planner"])
    secret = token.split("_", 2)[2]
    stored = conn.execute("SELECT secret_hash FROM gis_meta.api_keys").fetchone()[0]
    assert secret not in stored and stored.startswith("$argon2")


def test_unknown_role_is_refused(db_url):
    with pytest.raises(InvalidParameter):
        create_api_key(db_url, "x", ["superuser"])


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer nonsense"},
    {"Authorization": "Basic abc"},
    {"Authorization": "Bearer gis_000000000000_wrongsecret"},
    {"X-API-Key": "gis__"},
])
def test_garbled_or_unknown_keys_get_401(client, header):
    r = client.get("/layers", headers=header)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "bearer" in r.headers.get("www-authenticate", "").lower()


def test_valid_key_is_accepted_and_revocation_applies(client, db_url):
    token = create_api_key(db_url, "planner-lee", ["planner"])
    assert client.get("/layers", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/layers", headers={"X-API-Key": token}).status_code == 200
    revoke_api_key(db_url, token.split("_")[1])
    forget_cached_keys()
    r = client.get("/layers", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_expired_key_gets_401(client, db_url):
    token = create_api_key(db_url, "temp", ["planner"],
                           expires_at=datetime.now(UTC) - timedelta(minutes=1))
    r = client.get("/layers", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
