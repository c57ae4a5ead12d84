"""Administration over HTTP (admin role only): API keys and the audit log.

``GET/POST /admin/keys``, ``DELETE /admin/keys/{id}``; ``GET /admin/audit``,
``GET /admin/audit/digest``.  Every key change is audited like any write.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from gis_platform import apikeys, audit
from gis_platform.access import require_admin
from gis_platform.db.connections import connect
from gis_platform.errors import NotFound
from gis_platform.security import PrincipalDep

log = logging.getLogger("gis_platform.admin")

keys_router = APIRouter(prefix="/admin/keys", tags=["admin"])
audit_router = APIRouter(prefix="/admin/audit", tags=["admin"])
_Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=500)]


class KeyScopes(BaseModel):
    """What a key may see beyond its roles' levels: only ever narrower.  A scope that is
    given but empty grants nothing."""

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


def _admin_write(principal) -> None:
    audit.record_decision(principal, "write", "api_keys", "restricted", principal.is_admin,
                          "" if principal.is_admin else "keys need the admin role")
    require_admin(principal)


@keys_router.get("", summary="API keys (never their secrets); admin only")
async def admin_list_keys(request: Request, principal: PrincipalDep) -> dict:
    require_admin(principal)
    keys = await asyncio.to_thread(apikeys.list_api_keys, request.app.state.conninfo)
    return {"keys": [_key_doc(k) for k in keys]}


@keys_router.post("", status_code=201, summary="Create an API key; admin only (the token is shown once)")
async def admin_create_key(body: KeyCreate, request: Request, principal: PrincipalDep) -> dict:
    _admin_write(principal)
    expires = (datetime.now(UTC) + timedelta(days=body.expires_days)) if body.expires_days else None
    scopes = body.scopes.model_dump(exclude_none=True) if body.scopes else None
    token = await asyncio.to_thread(apikeys.create_api_key, request.app.state.conninfo, body.name,
                                    body.roles, scopes=scopes, expires_at=expires)
    return {"id": token.split("_")[1], "token": token, "name": body.name, "roles": body.roles,
            "scopes": scopes or {}, "expires_at": expires}


@keys_router.delete("/{key_id}", status_code=204, summary="Revoke an API key everywhere; admin only")
async def admin_revoke_key(key_id: Annotated[str, Path(max_length=64)], request: Request,
                           principal: PrincipalDep) -> Response:
    _admin_write(principal)
    if not await asyncio.to_thread(apikeys.revoke_api_key, request.app.state.conninfo, key_id):
        raise NotFound(f"No active key '{key_id[:64]}'.")
    return Response(status_code=204)


def _since(value: str | None, name: str) -> datetime | None:
    return audit.now_minus(value, name) if value and value.strip() else None


async def _flush(request: Request) -> None:
    """Search sees this worker's queued rows too (others flush within audit_flush_seconds)."""
    writer = getattr(request.app.state, "audit_writer", None)
    if writer is not None:
        try:
            await writer.flush()
        except Exception:  # noqa: BLE001 - the periodic task retries; search what is there
            log.warning("audit flush before search failed")


@audit_router.get("", summary="Search the audit log (newest first); admin only")
async def admin_search(
    request: Request, principal: PrincipalDep,
    actor: Annotated[str | None, Query(alias="principal", max_length=300,
                                       description="Actor id, e.g. key:ab12cd34ef56 or anonymous")] = None,
    layer: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[Literal["read", "describe", "write", "write_rows", "create", "authenticate"] | None,
                      Query()] = None,
    since: Annotated[str | None, Query(max_length=40, description="30m, 2h, 7d or ISO 8601")] = None,
    until: Annotated[str | None, Query(max_length=40, description="30m, 2h, 7d or ISO 8601")] = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict:
    require_admin(principal)
    lo, hi = _since(since, "since"), _since(until, "until")
    await _flush(request)

    def run():
        with connect(request.app.state.conninfo) as conn:
            return audit.search(conn, principal=actor, layer=layer, action=action, since=lo,
                                until=hi, status=status, limit=limit)

    rows = await asyncio.to_thread(run)
    return {"entries": rows, "count": len(rows)}


@audit_router.get("/digest", summary="Principals with unusual restricted-read volume in the last hour")
async def admin_digest(
    request: Request, principal: PrincipalDep,
    factor: Annotated[float, Query(gt=0, le=1e6)] = 5.0,
    min_reads: Annotated[int, Query(alias="min-reads", ge=1, le=10**9)] = 100,
) -> dict:
    require_admin(principal)
    await _flush(request)

    def run():
        with connect(request.app.state.conninfo) as conn:
            return audit.digest(conn, factor=factor, min_reads=min_reads)

    flagged = await asyncio.to_thread(run)
    return {"factor": factor, "min_reads": min_reads, "flagged": flagged}
