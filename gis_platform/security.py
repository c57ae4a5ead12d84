"""Who is calling, and what they may see: the one access-policy choke point.

Every output path (catalog, items, tiles, composite tiles, exports, statistics, maps) asks
:func:`can_read` / :func:`readable_levels` about a layer's ``access_level``.  Roles:

* ``public`` (anonymous) sees ``public`` layers;
* ``planner``, ``operator`` and ``admin`` also see ``internal`` and ``restricted`` ones
  (operators scoped further by the security issue);
* writes need ``planner`` or ``admin``, or ``allow_anonymous_writes`` in development.

The identity itself (API keys) is supplied by the security issue; until then every caller
is anonymous and only the CLI (which runs with the database credentials) sees everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gis_platform.errors import Forbidden, Unauthorized

LEVELS = ("public", "internal", "restricted")


@dataclass(frozen=True)
class Principal:
    """The caller: an id for the audit log and a set of roles."""

    id: str = "anonymous"
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"public"}))
    scopes: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def authenticated(self) -> bool:
        return self.id != "anonymous"

    @property
    def access_key(self) -> str:
        """A short token of what this caller may see, for cache keys."""
        return ",".join(sorted(readable_levels(self)))


ANONYMOUS = Principal()
SYSTEM = Principal(id="system", roles=frozenset({"admin"}))


def readable_levels(principal: Principal) -> set[str]:
    """Access levels this principal may read."""
    if principal.roles & {"admin", "planner"}:
        return {"public", "internal", "restricted"}
    if "operator" in principal.roles:
        return {"public", "internal", "restricted"}
    if "citizen" in principal.roles or "staff" in principal.roles:
        return {"public", "internal"} if "staff" in principal.roles else {"public"}
    return {"public"}


def can_read(principal: Principal, access_level: str) -> bool:
    return access_level in readable_levels(principal)


def row_filter(principal: Principal, layer) -> tuple[str, dict] | None:
    """Rows of ``layer`` this caller may see, as a SQL condition with named parameters.

    ``None`` means every row (the usual case).  Facility operators are scoped to the owners /
    kinds they operate; every reader of a layer's rows (items, exports, statistics, tiles,
    dig-check) ANDs this condition into its WHERE clause and keys its caches on it.
    Column names in the condition come from the catalog schema only.
    """
    return None


def can_write(principal: Principal, settings) -> bool:
    return bool(principal.roles & {"admin", "planner"}) or settings.allow_anonymous_writes


def require_write(principal: Principal, settings) -> None:
    if not can_write(principal, settings):
        raise Forbidden("Changing layers needs the planner role. (Operators of a development "
                        "instance can set GIS_ALLOW_ANONYMOUS_WRITES=true.)")


def bearer_token(request: Request) -> str | None:
    """The API key of a request: ``Authorization: Bearer <token>`` or ``X-API-Key``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use 'Authorization: Bearer <api key>'.")
        return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


async def get_principal(request: Request) -> Principal:
    """Resolve the caller once per request: anonymous, or the owner of a valid API key.

    A garbled, unknown, revoked or expired key is a 401 (never silently anonymous), so a
    client with a broken key notices instead of getting a public-only view.
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        principal = ANONYMOUS
    else:
        from gis_platform.apikeys import verify_token

        principal = await verify_token(request.app.state.db, token)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
