"""Who is calling: the principal, its roles, and the access levels each role may read.

Roles and access levels (:data:`ROLE_LEVELS`):

==============  ========  ==========  ============  ===================================
role            public    internal    restricted    notes
==============  ========  ==========  ============  ===================================
(anonymous)     read      -           -             ``public`` pseudo-role
citizen         read      -           -             a registered member of the public
staff           read      read        -             city staff
planner         read      read        read          may write layers, maps and permits
operator        read      read        read          rows limited by owner/kind scopes
admin           read      read        read          may write; keys and audit admin
==============  ========  ==========  ============  ===================================

What a principal may do with a given layer, indicator or permit is decided in one place,
:func:`gis_platform.access.decide`; this module only describes the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
ROLES = ("citizen", "staff", "planner", "operator", "admin")
#: Roles that may change layers, policy maps and permits.
WRITE_ROLES = frozenset({"planner", "admin"})


@dataclass(frozen=True)
class Principal:
    """The caller: an id for the audit log, a set of roles and optional scopes.

    ``scopes`` (from the API key) only ever *narrow* what the roles allow; see
    :mod:`gis_platform.access` for how each one applies.
    """

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
    def can_write(self) -> bool:
        return bool(self.roles & WRITE_ROLES)

    @property
    def access_key(self) -> str:
        """A short token of which access levels this caller may see, for cache keys.

        It does not capture scopes: a cache of layer *rows* must add the row filter's
        ``key`` (:class:`gis_platform.access.RowFilter`).
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


def can_read_level(principal: Principal, access_level: str) -> bool:
    """May this principal read data of ``access_level`` (before any scope)?"""
    return access_level in readable_levels(principal)
