"""Who is calling, and what they may see: the one access-policy choke point.

Every output path (catalog, items, tiles, composite tiles, exports, statistics, maps) asks
:func:`can_read_layer` (through ``Registry.readable`` / ``Registry.visible``) whether a
caller may see a layer, and :func:`row_filter` which of its rows.

Roles and access levels (the matrix; :data:`ROLE_LEVELS`):

==============  ========  ==========  ============  ===================================
role            public    internal    restricted    notes
==============  ========  ==========  ============  ===================================
(anonymous)     read      -           -             ``public`` pseudo-role
citizen         read      -           -             a registered member of the public
staff           read      read        -             city staff
planner         read      read        read          may write layers
operator        read      read        read          rows limited by owner/kind scopes
admin           read      read        read          may write; keys and audit admin
==============  ========  ==========  ============  ===================================

Scopes (``Principal.scopes``, from the API key) only ever *narrow* what the roles allow,
and never apply to admins or to public layers:

* ``{"layers": [...]}`` - non-public layers outside the list are invisible;
* ``{"owners": [...]}``, ``{"kinds": [...]}``, ``{"districts": [...]}`` - rows of non-public
  layers are limited to those values of the ``owner`` / ``kind`` / ``district_code``
  columns (:func:`row_filter`).  A non-public layer without such a column yields no rows
  for a scoped caller (fail closed).

A layer the caller may not read answers exactly like a missing one, everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gis_platform.errors import Forbidden, Unauthorized

LEVELS = ("public", "internal", "restricted")

#: Access levels each role may read (a principal reads the union over its roles).
ROLE_LEVELS: dict[str, frozenset[str]] = {
    "public": frozenset({"public"}),
    "citizen": frozenset({"public"}),
    "staff": frozenset({"public", "internal"}),
    "planner": frozenset(LEVELS),
    "operator": frozenset(LEVELS),
    "admin": frozenset(LEVELS),
}
WRITE_ROLES = frozenset({"planner", "admin"})

#: Row scopes and the catalog column each one filters on.
SCOPE_COLUMNS = {"owners": "owner", "kinds": "kind", "districts": "district_code"}
_SAFE_COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Principal:
    """The caller: an id for the audit log, a set of roles and optional scopes."""

    id: str = "anonymous"
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"public"}))
    scopes: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def authenticated(self) -> bool:
        return self.id != "anonymous"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def access_key(self) -> str:
        """A short token of which access levels this caller may see, for cache keys.

        It does not capture row scopes: a cache of layer *rows* must add
        :func:`row_filter_key` for the layer.
        """
        return ",".join(sorted(readable_levels(self)))


ANONYMOUS = Principal()
SYSTEM = Principal(id="system", roles=frozenset({"admin"}))


def readable_levels(principal: Principal) -> set[str]:
    """Access levels this principal may read (the union over its roles)."""
    levels: set[str] = {"public"}
    for role in principal.roles:
        levels |= ROLE_LEVELS.get(role, frozenset())
    return levels


def can_read(principal: Principal, access_level: str) -> bool:
    """May this principal read layers of ``access_level`` (ignoring layer scopes)?"""
    return access_level in readable_levels(principal)


def can_read_layer(principal: Principal, layer) -> bool:
    """The full layer rule: the access level, then the key's ``layers`` scope."""
    if not can_read(principal, layer.access_level):
        return False
    if layer.access_level == "public" or principal.is_admin:
        return True
    allowed = (principal.scopes or {}).get("layers")
    return not allowed or layer.id in allowed


def _row_scopes(principal: Principal) -> dict[str, list]:
    scopes = principal.scopes or {}
    return {name: list(scopes[name]) for name in SCOPE_COLUMNS if scopes.get(name)}


def row_filter(principal: Principal, layer, *, alias: str | None = None) -> tuple[str, dict] | None:
    """Rows of ``layer`` this caller may see, as a SQL condition with named parameters.

    Contract (for every reader of a layer's rows: items, exports, statistics, tiles,
    composite tiles, dig-check):

    * Returns ``None`` when every row is visible (the usual case: no row scopes, an admin,
      or a public layer), else ``(sql_text, params)``: ``sql_text`` is a boolean condition
      with psycopg *named* placeholders (``%(rf_owners)s``) and ``params`` the dict of their
      values.  AND it into the WHERE clause of the statement that reads the layer's table
      and merge ``params`` into the statement's parameters (psycopg cannot mix named and
      positional placeholders; :func:`layers.features.row_filter_frag` converts it to a
      positional fragment).  Parameter names start with ``rf_`` and depend only on the
      principal, so the same condition on several layers of one statement (a composite
      tile) binds the same values.
    * Column names are checked against the layer's catalog schema and quoted; ``alias``
      qualifies them (``src."owner"``) for statements that alias the table.
    * A non-public layer lacking a scoped column gives ``("FALSE", {})``: no rows (fail
      closed).
    * Cache keys of anything built from the rows must include :func:`row_filter_key`.
    * A caller that applies the filter tells ``Registry.readable(..., filtered=True)``;
      without that, a layer with a row filter for this principal is refused (404).
    """
    if layer.access_level == "public" or principal.is_admin:
        return None
    scopes = _row_scopes(principal)
    if not scopes:
        return None
    prefix = f'"{alias}".' if alias and _SAFE_COLUMN.match(alias) else ""
    parts, params = [], {}
    for name, values in sorted(scopes.items()):
        column = SCOPE_COLUMNS[name]
        attr = layer.attribute(column) if hasattr(layer, "attribute") else None
        if attr is None or not _SAFE_COLUMN.match(column):
            return ("FALSE", {})
        parts.append(f'{prefix}"{column}"::text = ANY(%(rf_{name})s)')
        params[f"rf_{name}"] = [str(v) for v in values]
    return ("(" + " AND ".join(parts) + ")", params)


def row_filter_key(principal: Principal, layer) -> str:
    """A stable string naming the rows :func:`row_filter` lets through (for cache keys).

    ``""`` when every row is visible; otherwise derived from the scoped values only, so
    every caller with the same scopes shares cache entries.
    """
    flt = row_filter(principal, layer)
    if flt is None:
        return ""
    if flt[0] == "FALSE":
        return "none"
    return ";".join(f"{k}={','.join(sorted(v))}" for k, v in sorted(flt[1].items()))


def can_write(principal: Principal, settings) -> bool:
    return bool(principal.roles & WRITE_ROLES) or settings.allow_anonymous_writes


def require_write(principal: Principal, settings) -> None:
    """Refuse a write unless the caller may write; every attempt is on the audit record."""
    from gis_platform.audit import record_write

    allowed = can_write(principal, settings)
    record_write(principal)
    if not allowed:
        raise Forbidden("Changing layers needs the planner role. (Operators of a development "
                        "instance can set GIS_ALLOW_ANONYMOUS_WRITES=true.)")


def require_admin(principal: Principal) -> None:
    """Admin-only routes (keys, audit): 401 without a key, 403 with a non-admin key."""
    if not principal.authenticated:
        raise Unauthorized("This needs an administrator's API key (Authorization: Bearer ...).")
    if not principal.is_admin:
        raise Forbidden("This needs the admin role.")


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
