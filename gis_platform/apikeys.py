"""API keys: creation, revocation and verification.

A token looks like ``gis_<id>_<secret>``.  Only an argon2 hash of the secret is stored.
Keys are managed with ``gis-platform keys create|list|revoke`` or, by an admin, over HTTP:
``GET /admin/keys``, ``POST /admin/keys``, ``DELETE /admin/keys/{id}`` (each one audited).
Verifying argon2 is deliberately slow, so a verified token is remembered in memory (keyed by
a SHA-256 of the token) for a short TTL; revocation and expiry still apply within that TTL
because the cached entry carries ``expires_at`` and a revocation clears the cache of every
worker at once (``NOTIFY gis_catalog, 'api_keys'``, heard by each worker's catalog listener).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.types.json import Jsonb

from gis_platform.db.connections import connect
from gis_platform.errors import InvalidParameter, Unauthorized
from gis_platform.principal import ROLES, Principal
from gis_platform.singleflight import SingleFlight

CACHE_TTL = 30.0
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_cache: dict[str, tuple[float, Principal, datetime | None]] = {}
_verifying = SingleFlight()       # token digest -> the verification under way


def create_api_key(conninfo: str, name: str, roles: list[str], *, scopes: dict | None = None,
                   expires_at: datetime | None = None) -> str:
    """Create a key and return its token (shown once; only its hash is stored)."""
    bad = sorted(set(roles) - set(ROLES))
    if not roles or bad:
        raise InvalidParameter(f"Unknown roles {bad}; choose from {list(ROLES)}.")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    with connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gis_meta.api_keys (id, name, secret_hash, roles, scopes, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (key_id, name, _hasher.hash(secret), list(roles), Jsonb(scopes or {}), expires_at))
    return f"gis_{key_id}_{secret}"


#: The catalog channel payload that tells every worker to forget its verified keys.
KEYS_CHANGED = "api_keys"


def revoke_api_key(conninfo: str, key_id: str) -> bool:
    """Revoke a key everywhere at once: the update and a ``NOTIFY gis_catalog, 'api_keys'``
    commit together, and every worker's catalog listener clears its key cache on it."""
    with connect(conninfo) as conn, conn.transaction():
        cur = conn.execute("UPDATE gis_meta.api_keys SET revoked_at = now() WHERE id = %s "
                           "AND revoked_at IS NULL", (key_id,))
        done = cur.rowcount > 0
        conn.execute("SELECT pg_notify('gis_catalog', %s)", (KEYS_CHANGED,))
    _cache.clear()
    return done


def list_api_keys(conninfo: str) -> list[dict]:
    with connect(conninfo) as conn:
        cur = conn.execute("SELECT id, name, roles, scopes, created_at, expires_at, revoked_at, "
                           "last_used_at FROM gis_meta.api_keys ORDER BY created_at")
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def forget_cached_keys() -> None:
    _cache.clear()


async def on_events(events: frozenset[tuple[str, str]]) -> None:
    """A key was revoked (by any worker): verify every key again."""
    if any(payload in (KEYS_CHANGED, "*") for _, payload in events):
        _cache.clear()


def key_id_of(token: str) -> str | None:
    """The id part of a token (for the audit log; never the secret), if it has one."""
    parts = token.split("_", 2)
    if len(parts) == 3 and parts[0] == "gis" and 0 < len(parts[1]) <= 32 and parts[1].isalnum():
        return parts[1]
    return None


# Verified against when the key id is unknown, so an unknown id costs the same argon2 time
# as a wrong secret: response timing does not tell whether a key id exists.
@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def _parse(token: str) -> tuple[str, str]:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "gis" or not parts[1] or not parts[2]:
        raise Unauthorized("The API key is malformed; expected a token like gis_<id>_<secret>.")
    return parts[1], parts[2]


async def verify_token(db, token: str) -> Principal:
    """The principal of a bearer token; Unauthorized for unknown, revoked or expired keys.

    A map view sends a dozen tile requests at once with the same key: while one of them
    verifies it, the others wait for that answer (single flight per token and event loop)
    instead of each spending ~20 ms of argon2 - which also runs in a thread, so the event
    loop keeps serving other requests meanwhile.
    """
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = datetime.now(UTC)
    hit = _cache.get(digest)
    if hit and hit[0] > time.monotonic() and (hit[2] is None or hit[2] > now):
        return hit[1]
    return await _verifying.run(digest, lambda: _verify(db, token, digest, now))


async def _verify(db, token: str, digest: str, now: datetime) -> Principal:
    key_id, secret = _parse(token)
    row = await db.fetchone(
        "SELECT id, name, secret_hash, roles, scopes, expires_at, revoked_at "
        "FROM gis_meta.api_keys WHERE id = %s", (key_id,), read_only=False)
    if row is None:
        try:
            await asyncio.to_thread(_hasher.verify, _dummy_hash(), secret)
        except (VerificationError, InvalidHashError):
            pass
        raise Unauthorized("Unknown API key.")
    try:
        await asyncio.to_thread(_hasher.verify, row["secret_hash"], secret)
    except (VerificationError, InvalidHashError) as exc:
        raise Unauthorized("Unknown API key.") from exc
    if row["revoked_at"] is not None:
        raise Unauthorized("This API key has been revoked.")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        raise Unauthorized("This API key has expired.")
    principal = Principal(id=f"key:{row['id']}:{row['name']}", roles=frozenset(row["roles"]),
                          scopes=row["scopes"] or {})
    _cache[digest] = (time.monotonic() + CACHE_TTL, principal, row["expires_at"])
    # At most once per key per CACHE_TTL per process (verified tokens are cached).
    await db.fetchval("UPDATE gis_meta.api_keys SET last_used_at = now() WHERE id = %s RETURNING 1",
                      (row["id"],), read_only=False)
    return principal
