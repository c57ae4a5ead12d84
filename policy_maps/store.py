"""Versioned policy maps: drafts, published versions and who may see what.

Every save of a spec is a new immutable version recording the data versions it was built
from.  Publishing (a planner action) marks one version public; it refuses a map that uses
any layer or indicator the public may not read.  To the public a draft does not exist
(404, not 403), and only versions that were published are reachable by permalink.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gis_platform import access
from gis_platform.errors import NotFound, Unprocessable
from gis_platform.principal import ANONYMOUS, Principal
from indicators.store import get_area_unit, get_indicator
from layers.catalog import get_layer
from policy_maps.spec import MapSpec, parse_spec


class MapNotFound(NotFound):
    title, type_slug = "Map not found", "map-not-found"


class NotPublishable(Unprocessable):
    title, type_slug = "Map cannot be published", "map-not-publishable"


@dataclass
class MapVersion:
    id: str
    version: int
    spec: MapSpec
    data_versions: dict
    created_at: datetime
    created_by: str
    published_at: datetime | None
    published_version: int | None
    latest_version: int

    @property
    def is_published_version(self) -> bool:
        return self.published_version == self.version

    def summary(self) -> dict:
        return {"id": self.id, "version": self.version, "title": self.spec.title.model_dump(),
                "description": self.spec.description.model_dump() if self.spec.description else None,
                "indicator": self.spec.indicator, "area_unit": self.spec.area_unit,
                "tags": self.spec.tags, "published_version": self.published_version,
                "latest_version": self.latest_version, "status": "published" if self.published_version
                else "draft", "created_at": self.created_at, "published_at": self.published_at,
                "data_versions": self.data_versions}


def can_edit(principal: Principal) -> bool:
    """Planners and admins manage maps (drafts, publishing)."""
    return principal.can_write


def save_version(conn: psycopg.Connection, spec: MapSpec, data_versions: dict, actor: str) -> int:
    """Store ``spec`` as the next version of its map (creating the map as a draft)."""
    with conn.transaction():
        conn.execute("INSERT INTO gis_meta.policy_maps (id, created_by) VALUES (%s, %s) "
                     "ON CONFLICT (id) DO NOTHING", (spec.id, actor))
        version = conn.execute("UPDATE gis_meta.policy_maps SET latest_version = latest_version + 1, "
                               "updated_at = now() WHERE id = %s RETURNING latest_version",
                               (spec.id,)).fetchone()[0]
        conn.execute("INSERT INTO gis_meta.policy_map_versions (map_id, version, spec, data_versions, "
                     "created_by) VALUES (%s, %s, %s, %s, %s)",
                     (spec.id, version, Jsonb(spec.model_dump(mode="json", exclude_none=True)),
                      Jsonb(data_versions), actor))
    return version


_SELECT = ("SELECT v.map_id AS id, v.version, v.spec, v.data_versions, v.created_at, v.created_by, "
           "v.published_at, m.published_version, m.latest_version FROM gis_meta.policy_map_versions v "
           "JOIN gis_meta.policy_maps m ON m.id = v.map_id ")


def _row(row: dict) -> MapVersion:
    return MapVersion(spec=parse_spec(row.pop("spec")), **row)


def get_version(conn: psycopg.Connection, map_id: str, version: int | None,
                principal: Principal) -> MapVersion:
    """The version a caller may see: editors any (default latest); the public only published
    ones (default: the published version).  Anything else is a 404."""
    editor = can_edit(principal)
    if version is None:
        which = "m.latest_version" if editor else "m.published_version"
        q = _SELECT + f"WHERE v.map_id = %s AND v.version = {which}"
        params: tuple = (map_id,)
    else:
        q = _SELECT + "WHERE v.map_id = %s AND v.version = %s"
        params = (map_id, int(version))
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q, params).fetchone()
    # The public sees versions that were published, of maps that are still published.
    if row is None or (not editor and (row["published_at"] is None or row["published_version"] is None)):
        label = f"{map_id!r} version {version}" if version is not None else repr(map_id)
        raise MapNotFound(f"No map {label}.")
    return _row(row)


def list_maps(conn: psycopg.Connection, principal: Principal, query: str | None = None,
              include_drafts: bool = False) -> list[MapVersion]:
    """Maps a caller may list: published ones (their published version); editors asking for
    drafts get every map at its latest version."""
    drafts = include_drafts and can_edit(principal)
    which = "m.latest_version" if drafts else "m.published_version"
    q = _SELECT + f"WHERE v.version = {which}"
    params: list = []
    if query:
        q += " AND (v.spec::text ILIKE %s OR v.map_id ILIKE %s)"
        like = "%" + query.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        params += [like, like]
    q += " ORDER BY coalesce(m.published_at, m.updated_at) DESC, v.map_id"
    with conn.cursor(row_factory=dict_row) as cur:
        return [_row(r) for r in cur.execute(q, params).fetchall()]


def public_problems(conn: psycopg.Connection, spec: MapSpec) -> list[str]:
    """Why ``spec`` may not be public: non-public layers or indicator (empty = fine)."""

    problems = []
    ind = get_indicator(conn, spec.indicator)
    if not access.decide(ANONYMOUS, "read", ind.resource).allowed:
        problems.append(f"indicator {ind.id!r} is {ind.access_level} (computed from non-public data)")
    unit = get_area_unit(conn, spec.area_unit)
    layers = [(f"area layer {unit.layer_id!r}", unit.layer_id)] + \
        [(f"overlay layer {o.layer!r}", o.layer) for o in spec.overlays]
    for label, lid in layers:
        layer = get_layer(conn, lid)
        level = layer.access_level if layer else "missing"
        if layer is None or not access.decide(ANONYMOUS, "read", layer.resource).allowed:
            problems.append(f"{label} is {level}")
    return problems


def publish(conn: psycopg.Connection, map_id: str, version: int | None, principal: Principal) -> MapVersion:
    """Make ``version`` (default: the latest) the public one, if it only uses public data."""
    mv = get_version(conn, map_id, version, principal)
    problems = public_problems(conn, mv.spec)
    if problems:
        raise NotPublishable(
            f"Map {map_id!r} version {mv.version} cannot be published: a public map may only use "
            f"public layers and indicators, but {'; '.join(problems)}. Remove those overlays, or have "
            "the data owner make the layer public first.", problems=problems)
    with conn.transaction():
        conn.execute("UPDATE gis_meta.policy_map_versions SET published_at = coalesce(published_at, now()) "
                     "WHERE map_id = %s AND version = %s", (map_id, mv.version))
        conn.execute("UPDATE gis_meta.policy_maps SET published_version = %s, published_at = now(), "
                     "updated_at = now() WHERE id = %s", (mv.version, map_id))
    return get_version(conn, map_id, mv.version, principal)


def unpublish(conn: psycopg.Connection, map_id: str) -> None:
    conn.execute("UPDATE gis_meta.policy_maps SET published_version = NULL WHERE id = %s", (map_id,))
