"""The one access decision: may this principal do this to that layer, indicator or permit?

Every read and write of platform data asks :func:`authorize` (or, for a pure question with
no side effect, :func:`decide`).  It answers with a :class:`Decision`: allowed or not, the
status a refusal takes, and - for readers and writers of rows - the :class:`RowFilter` of
the rows the caller may touch.  :func:`authorize` also puts the decision on the audit record
(every decision on non-public data and every write attempt, allowed or denied) and raises
the refusal, so a route cannot forget either.

Resources (:class:`Resource`) are what the decision is about: a catalog layer, an
indicator (aggregated from layers: its ``sources``), the permit register, or the personal
data of permit applicants.  The rules, in order:

*Seeing it at all* (every action): the principal's roles must read the resource's access
level (:mod:`gis_platform.principal`), and a key with a ``layers`` scope sees only the
non-public resources it names (an indicator: all the layers it was computed from).  A
resource the caller may not see is refused exactly like a missing one (404), so no answer
tells a hidden thing exists.

*Rows* (``read``, ``write_rows``): a key with row scopes (``owners``, ``kinds``,
``districts``) reads only the rows whose ``owner`` / ``kind`` / ``district_code`` is one of
the listed values, on non-public resources.  A resource without the scoped column yields no
rows (fail closed); a resource without rows (a raster, an aggregate indicator) is refused.
A scope that is present but empty grants nothing.

*Writes*: ``write`` (replace, append, change or delete a whole layer or map), ``write_rows``
(change rows: a permit's status, a layer's features) and ``create`` (a new layer id) need a
writing role (401 for anonymous callers, 403 otherwise) - except that an ``operator`` key
limited to some rows may ``write_rows`` of a layer, inside those rows.  A ``layers`` scope limits every write to the
resources it names, public ones included; a row-scoped key may write rows inside its scope
only, never a whole layer, and may not create layers.  A ``create`` is checked against the
key's scope before the id is looked up, so the answer never reveals whether a hidden layer
has that id.

Admins are never narrowed; public data is readable by everyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import orjson
from psycopg import sql

from gis_platform import audit
from gis_platform.errors import Forbidden, NotFound, PlatformError, Unauthorized
from gis_platform.principal import Principal, can_read_level
from gis_platform.sqlfrag import Frag

Action = Literal["read", "describe", "write", "write_rows", "create"]
WRITE_ACTIONS = frozenset({"write", "write_rows", "create"})

#: Row scopes and the column each one filters on.
SCOPE_COLUMNS = {"owners": "owner", "kinds": "kind", "districts": "district_code"}


@dataclass(frozen=True)
class Resource:
    """Something access is decided on.

    ``columns``: the row attributes (for row scopes); ``has_rows`` False for rasters and
    aggregates; ``sources``: the layer ids an aggregate was computed from.
    """

    kind: Literal["layer", "indicator", "permits", "applicants", "map"]
    id: str | None
    access_level: str = "public"
    columns: frozenset[str] = frozenset()
    has_rows: bool = True
    sources: tuple[str, ...] = ()
    #: True when its very existence is not for everyone (a layer, an indicator): a caller
    #: who may not see it gets the 404 of a missing one.  False for things every caller
    #: knows exist (the applicants' data of permits): a refusal is then a 401/403.
    hidden_when_denied: bool = True

    @classmethod
    def of_layer(cls, layer) -> Resource:
        """A catalog layer (anything with ``id``, ``access_level``, ``kind``, ``attributes``)."""
        return cls("layer", layer.id, layer.access_level,
                   frozenset(a.name for a in layer.attributes), layer.kind == "vector")

    @classmethod
    def new_layer(cls, layer_id: str | None) -> Resource:
        """A layer id about to be created (or an upload whose id is not known yet)."""
        return cls("layer", layer_id, "internal")

    @property
    def label(self) -> str:
        """How the audit log names it: a layer by its id, anything else ``kind:id``."""
        if self.kind == "layer":
            return self.id or ""
        return self.kind if self.id is None else f"{self.kind}:{self.id}"


#: The public register of road-works permits, and the applicants' personal data.
PERMITS = Resource("permits", None, "public", frozenset({"district_code"}),
                   hidden_when_denied=False)
APPLICANTS = Resource("applicants", None, "restricted", frozenset({"district_code"}),
                      hidden_when_denied=False)


@dataclass(frozen=True)
class RowFilter:
    """The rows a scoped caller may touch: every ``(column, values)`` term must hold.

    Built from the key's scopes, never from SQL text: :meth:`frag` and :meth:`named` compose
    it (identifiers quoted, values as parameters) and :attr:`key` names it for cache keys
    (canonical JSON, so values containing commas cannot collide).
    """

    terms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    nothing: bool = False

    @property
    def key(self) -> str:
        if self.nothing:
            return "none"
        return orjson.dumps([[c, list(v)] for c, v in self.terms]).decode()

    def _column(self, column: str, alias: str | None) -> sql.Composable:
        return sql.Identifier(alias, column) if alias else sql.Identifier(column)

    def frag(self, alias: str | None = None) -> Frag:
        """The condition with positional parameters."""
        if self.nothing:
            return Frag(sql.SQL("FALSE"))
        parts = [Frag(sql.SQL("{}::text = ANY(%s)").format(self._column(c, alias)), [list(v)])
                 for c, v in self.terms]
        return Frag.join(parts, " AND ") if parts else Frag(sql.SQL("TRUE"))

    def named(self, alias: str | None, prefix: str) -> tuple[sql.Composable, dict]:
        """The condition with named parameters ``%(<prefix><column>)s`` and their values."""
        if self.nothing:
            return sql.SQL("FALSE"), {}
        parts, params = [], {}
        for c, v in self.terms:
            name = f"{prefix}{len(params)}"
            parts.append(sql.SQL("{}::text = ANY({})").format(self._column(c, alias),
                                                             sql.Placeholder(name)))
            params[name] = list(v)
        return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")), params


NO_ROWS = RowFilter(nothing=True)


@dataclass(frozen=True)
class Decision:
    """The answer: allowed (with the caller's row filter, None = every row) or refused."""

    allowed: bool
    rows: RowFilter | None = None
    status: int = 200
    reason: str = ""
    extra: dict = field(default_factory=dict)


def _allow(rows: RowFilter | None = None) -> Decision:
    return Decision(True, rows)


def _deny(status: int, reason: str) -> Decision:
    return Decision(False, None, status, reason)


def _scopes(principal: Principal) -> dict:
    return principal.scopes or {}


def _row_scopes(principal: Principal) -> dict[str, list[str]]:
    scopes = _scopes(principal)
    return {name: [str(v) for v in (scopes.get(name) or [])] for name in SCOPE_COLUMNS
            if name in scopes}


def _layer_scope(principal: Principal) -> list[str] | None:
    scopes = _scopes(principal)
    return [str(v) for v in (scopes.get("layers") or [])] if "layers" in scopes else None


def row_filter_for(principal: Principal, res: Resource) -> RowFilter | None:
    """The row filter of a (visible) resource for this caller; None when every row is."""
    if res.access_level == "public" or principal.is_admin:
        return None
    scoped = _row_scopes(principal)
    if not scoped:
        return None
    terms = []
    for name, values in sorted(scoped.items()):
        column = SCOPE_COLUMNS[name]
        if column not in res.columns or not values:
            return NO_ROWS
        terms.append((column, tuple(sorted(set(values)))))
    return RowFilter(tuple(terms))


def _scope_ids(res: Resource) -> list[str]:
    """What a ``layers`` scope must name for ``res``: an aggregate or a map, every layer it is
    built from; anything else, itself."""
    if res.kind in ("indicator", "map"):
        return list(res.sources)
    return [res.id or res.kind]


def _visible(principal: Principal, res: Resource) -> Decision | None:
    """None when the caller may see ``res`` at all, else the (404) refusal."""
    if not can_read_level(principal, res.access_level):
        status = 404 if res.hidden_when_denied else 401 if not principal.authenticated else 403
        return _deny(status, f"the {res.access_level} data of {res.label or res.kind} is not "
                             f"readable with roles {', '.join(sorted(principal.roles))}")
    if res.access_level == "public" or principal.is_admin:
        return None
    allowed = _layer_scope(principal)
    if allowed is None:
        return None
    needed = _scope_ids(res)
    if not needed or any(n not in allowed for n in needed):
        return _deny(404 if res.hidden_when_denied else 403, "outside this API key's layer scope")
    return None


def decide(principal: Principal, action: Action, res: Resource, *,
           anonymous_writes: bool = False) -> Decision:
    """The decision alone (no audit, no exception).  See the module docstring for the rules."""
    if action == "create":
        return _decide_create(principal, res, anonymous_writes)
    hidden = _visible(principal, res)
    if hidden is not None:
        return hidden
    if action in ("read", "describe"):
        if res.kind == "applicants":
            # Applicants' personal data is for the road authority's permit handlers only.
            role = _write_role(principal, res, False)
            if role is not None:
                return role
        rows = row_filter_for(principal, res)
        if rows is not None and not res.has_rows:
            return _deny(404, "the key is limited to rows; this resource has none to filter")
        return _allow(rows)
    # write / write_rows
    role = _write_role(principal, res, anonymous_writes)
    if role is not None and action == "write_rows" and res.kind == "layer" \
            and "operator" in principal.roles and _row_scopes(principal):
        # A utility operator's key, limited to its own rows, may edit those features.
        role = None
    if role is not None:
        return role
    allowed = _layer_scope(principal)
    if allowed is not None and not principal.is_admin and \
            any(n not in allowed for n in _scope_ids(res) or [res.kind]):
        return _deny(403, f"this API key may only change {', '.join(allowed) or 'nothing'}")
    rows = None if principal.is_admin else _scoped_rows(principal, res)
    if rows is not None:
        if action == "write" or rows.nothing or not res.has_rows:
            return _deny(403, "this API key is limited to some rows (" + _describe_rows(principal)
                         + "); it cannot change the resource as a whole")
        return _allow(rows)
    return _allow()


def _scoped_rows(principal: Principal, res: Resource) -> RowFilter | None:
    """For writes the row scopes apply whatever the access level (public data included)."""
    scoped = _row_scopes(principal)
    if not scoped:
        return None
    return row_filter_for(principal, Resource(res.kind, res.id, "restricted", res.columns,
                                              res.has_rows, res.sources))


def _describe_rows(principal: Principal) -> str:
    return "; ".join(f"{k}={','.join(v) or '(none)'}" for k, v in sorted(_row_scopes(principal).items()))


def _write_role(principal: Principal, res: Resource, anonymous_writes: bool) -> Decision | None:
    if principal.can_write:
        return None
    if anonymous_writes and not principal.authenticated and res.kind in ("layer", "map"):
        return None
    what = {"permits": "Changing a permit", "applicants": "Reading applicants' data",
            "map": "Saving and publishing maps"}.get(res.kind, "Changing layers")
    if not principal.authenticated:
        return _deny(401, f"{what} needs an API key with the planner or admin role "
                          "(Authorization: Bearer ...)")
    return _deny(403, f"{what} needs the planner or admin role")


def _decide_create(principal: Principal, res: Resource, anonymous_writes: bool) -> Decision:
    role = _write_role(principal, res, anonymous_writes)
    if role is not None:
        return role
    if principal.is_admin:
        return _allow()
    if _row_scopes(principal):
        return _deny(403, "this API key is limited to some rows (" + _describe_rows(principal)
                     + "); it cannot create layers")
    allowed = _layer_scope(principal)
    if allowed is not None and res.id not in allowed:
        return _deny(403, f"this API key may only create or change {', '.join(allowed) or 'nothing'}")
    return _allow()


def authorize(principal: Principal, action: Action, res: Resource, *,
              anonymous_writes: bool = False, hidden: PlatformError | None = None,
              rows_supported: bool = True) -> Decision:
    """Decide, put the decision on the audit record, and raise if it is a refusal.

    A 404 refusal raises ``hidden`` (the same error a missing resource gives, e.g.
    ``LayerNotFound``); 401 and 403 raise :class:`Unauthorized` / :class:`Forbidden` with
    the reason.  Returns the decision (its ``rows`` for readers and writers of rows).
    ``rows_supported=False``: the caller cannot apply a row filter, so a caller limited to
    rows is refused (404) rather than shown every row.
    """
    decision = decide(principal, action, res, anonymous_writes=anonymous_writes)
    if decision.allowed and decision.rows is not None and not rows_supported:
        decision = _deny(404, "the key is limited to rows and this route cannot filter them")
    audit.record_decision(principal, action, res.label, res.access_level, decision.allowed,
                          decision.reason)
    if decision.allowed:
        return decision
    if decision.status == 404:
        raise hidden or NotFound(f"No {res.kind} {res.id!r}." if res.id else f"No {res.kind}.")
    if decision.status == 401:
        raise Unauthorized(decision.reason[:1].upper() + decision.reason[1:] + ".")
    raise Forbidden(decision.reason[:1].upper() + decision.reason[1:] + ".")


def require_writer(principal: Principal, *, anonymous_writes: bool = False,
                   what: str = "layer") -> None:
    """Before reading a write request's body: the caller must hold a writing role and must
    not be limited to rows (whole-layer writes).  Audited like every write attempt."""
    res = Resource.new_layer(None) if what == "layer" else Resource(what, None)  # type: ignore[arg-type]
    decision = _write_role(principal, res, anonymous_writes)
    if decision is None and _row_scopes(principal) and not principal.is_admin:
        decision = _deny(403, "this API key is limited to some rows (" + _describe_rows(principal)
                         + "); it cannot upload or replace whole layers")
    if decision is None:
        return
    audit.record_decision(principal, "write", res.label, res.access_level, False, decision.reason)
    if decision.status == 401:
        raise Unauthorized(decision.reason[:1].upper() + decision.reason[1:] + ".")
    raise Forbidden(decision.reason[:1].upper() + decision.reason[1:] + ".")


def require_admin(principal: Principal) -> None:
    """Admin-only routes (keys, audit): 401 without a key, 403 with a non-admin key."""
    if not principal.authenticated:
        raise Unauthorized("This needs an administrator's API key (Authorization: Bearer ...).")
    if not principal.is_admin:
        raise Forbidden("This needs the admin role.")
