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

from gis_platform.errors import Forbidden

LEVELS = ("public", "internal", "restricted")


@dataclass(frozen=True)
class Principal:
    """The caller: an id for the audit log and a set of roles."""

    id: str = "anonymous"
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"public"}))

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


def can_write(principal: Principal, settings) -> bool:
    return bool(principal.roles & {"admin", "planner"}) or settings.allow_anonymous_writes


def require_write(principal: Principal, settings) -> None:
    if not can_write(principal, settings):
        raise Forbidden("Changing layers needs the planner role. (Operators of a development "
                        "instance can set GIS_ALLOW_ANONYMOUS_WRITES=true.)")


async def get_principal(request: Request) -> Principal:
    """Resolve the caller. API keys arrive with the security issue; today: anonymous."""
    return getattr(request.state, "principal", ANONYMOUS)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
