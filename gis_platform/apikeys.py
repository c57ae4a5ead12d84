"""API keys: creation, revocation and verification.

A token looks like ``gis_<id>_<secret>``.  Only an argon2 hash of the secret is stored.
Keys are managed with ``gis-platform keys create|list|revoke`` or, by an admin, over HTTP:
``GET /admin/keys``, ``POST /admin/keys``, ``DELETE /admin/keys/{id}`` (each one audited).
Verifying argon2 is deliberately slow, so a verified token is remembered in memory (keyed by
a SHA-256 of the token) for a short TTL; revocation and expiry still apply within that TTL
because the cached entry carries ``expires_at`` and the cache is cleared on revocation in
this process (other processes: at most ``CACHE_TTL`` seconds later).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Path, Request, Response
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from gis_platform.errors import InvalidParameter, Unauthorized
from gis_platform.security import Principal, PrincipalDep, require_admin
from gis_platform.singleflight import SingleFlight

ROLES = ("citizen", "staff", "planner", "operator", "admin")
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


# --- the admin HTTP API ------------------------------------------------------------------------
router = APIRouter(prefix="/admin/keys", tags=["admin"])
_Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=500)]


class KeyScopes(BaseModel):
    """What a key may see beyond its roles' levels: only ever narrower."""

    layers: _Names | None = None
    owners: _Names | None = None
    kinds: _Names | None = None
    districts: _Names | None = None

    model_config = {"extra": "forbid"}


class KeyCreate(BaseModel):
    """``POST /admin/keys``: a new key; the token is in the answer, once."""

    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1, max_length=5)
    scopes: KeyScopes | None = None
    expires_days: float | None = Field(default=None, gt=0, le=3650)

    model_config = {"extra": "forbid"}


def _key_doc(k: dict) -> dict:
    return {"id": k["id"], "name": k["name"], "roles": list(k["roles"]), "scopes": k["scopes"] or {},
            "created_at": k["created_at"], "expires_at": k["expires_at"], "revoked_at": k["revoked_at"],
            "last_used_at": k["last_used_at"]}


@router.get("", summary="API keys (never their secrets); admin only")
async def admin_list_keys(request: Request, principal: PrincipalDep) -> dict:
    import asyncio

    require_admin(principal)
    keys = await asyncio.to_thread(list_api_keys, request.app.state.conninfo)
    return {"keys": [_key_doc(k) for k in keys]}


@router.post("", status_code=201, summary="Create an API key; admin only (the token is shown once)")
async def admin_create_key(body: KeyCreate, request: Request, principal: PrincipalDep) -> dict:
    import asyncio
    from datetime import timedelta

    from gis_platform.audit import record_write

    record_write(principal)
    require_admin(principal)
    expires = (datetime.now(UTC) + timedelta(days=body.expires_days)) if body.expires_days else None
    scopes = body.scopes.model_dump(exclude_none=True) if body.scopes else None
    token = await asyncio.to_thread(create_api_key, request.app.state.conninfo, body.name, body.roles,
                                    scopes=scopes, expires_at=expires)
    return {"id": token.split("_")[1], "token": token, "name": body.name, "roles": body.roles,
            "scopes": scopes or {}, "expires_at": expires}


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key; admin only")
async def admin_revoke_key(key_id: Annotated[str, Path(max_length=64)], request: Request,
                           principal: PrincipalDep) -> Response:
    import asyncio

    from gis_platform.audit import record_write
    from gis_platform.errors import NotFound

    record_write(principal)
    require_admin(principal)
    if not await asyncio.to_thread(revoke_api_key, request.app.state.conninfo, key_id):
        raise NotFound(f"No active key '{key_id[:64]}'.")
    return Response(status_code=204)
