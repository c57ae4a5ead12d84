"""API keys: creation, revocation and verification.

A token looks like ``gis_<id>_<secret>``.  Only an argon2 hash of the secret is stored.
Verifying argon2 is deliberately slow, so a verified token is remembered in memory (keyed by
a SHA-256 of the token) for a short TTL; revocation and expiry still apply within that TTL
because the cached entry carries ``expires_at`` and the cache is cleared on revocation in
this process (other processes: at most ``CACHE_TTL`` seconds later).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timezone

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.types.json import Jsonb

from gis_platform.errors import InvalidParameter, Unauthorized
from gis_platform.security import Principal

ROLES = ("citizen", "staff", "planner", "operator", "admin")
CACHE_TTL = 30.0
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_cache: dict[str, tuple[float, Principal, datetime | None]] = {}


def create_api_key(conninfo: str, name: str, roles: list[str], *, scopes: dict | None = None,
                   expires_at: datetime | None = None) -> str:
    """Create a key and return its token (shown once; only its hash is stored)."""
    bad = sorted(set(roles) - set(ROLES))
    if not roles or bad:
        raise InvalidParameter(f"Unknown roles {bad}; choose from {list(ROLES)}.")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gis_meta.api_keys (id, name, secret_hash, roles, scopes, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (key_id, name, _hasher.hash(secret), list(roles), Jsonb(scopes or {}), expires_at))
    return f"gis_{key_id}_{secret}"


def revoke_api_key(conninfo: str, key_id: str) -> bool:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute("UPDATE gis_meta.api_keys SET revoked_at = now() WHERE id = %s "
                           "AND revoked_at IS NULL", (key_id,))
        done = cur.rowcount > 0
    _cache.clear()
    return done


def list_api_keys(conninfo: str) -> list[dict]:
    with psycopg.connect(conninfo) as conn:
        cur = conn.execute("SELECT id, name, roles, scopes, created_at, expires_at, revoked_at, "
                           "last_used_at FROM gis_meta.api_keys ORDER BY created_at")
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def forget_cached_keys() -> None:
    _cache.clear()


def _parse(token: str) -> tuple[str, str]:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "gis" or not parts[1] or not parts[2]:
        raise Unauthorized("The API key is malformed; expected a token like gis_<id>_<secret>.")
    return parts[1], parts[2]


async def verify_token(db, token: str) -> Principal:
    """The principal of a bearer token; Unauthorized for unknown, revoked or expired keys."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = datetime.now(timezone.utc)
    hit = _cache.get(digest)
    if hit and hit[0] > time.monotonic() and (hit[2] is None or hit[2] > now):
        return hit[1]
    key_id, secret = _parse(token)
    row = await db.fetchone(
        "SELECT id, name, secret_hash, roles, scopes, expires_at, revoked_at "
        "FROM gis_meta.api_keys WHERE id = %s", (key_id,), read_only=False)
    if row is None:
        raise Unauthorized("Unknown API key.")
    try:
        _hasher.verify(row["secret_hash"], secret)
    except (VerificationError, InvalidHashError) as exc:
        raise Unauthorized("Unknown API key.") from exc
    if row["revoked_at"] is not None:
        raise Unauthorized("This API key has been revoked.")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        raise Unauthorized("This API key has expired.")
    principal = Principal(id=f"key:{row['id']}:{row['name']}", roles=frozenset(row["roles"]),
                          scopes=row["scopes"] or {})
    _cache[digest] = (time.monotonic() + CACHE_TTL, principal, row["expires_at"])
    return principal
