"""The layer catalog (``gis_meta.layers``): records, metadata patches, deletion.

The catalog is the only source of identifiers: table and column names used in SQL come from
a :class:`Layer` record, never from a request.  :mod:`layers.registry` keeps every record in
memory for the server.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, PrivateAttr, field_validator

from gis_platform.access import Resource
from gis_platform.errors import Conflict, InvalidParameter, LayerNotFound
from layers.changes import EMPTY, ChangeLog
from layers.relation import Relation, RowSource
from layers.selection import parse as parse_selection

log = logging.getLogger("layers.catalog")

LAYER_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DATA_SCHEMA = "gis_data"

AccessLevel = Literal["public", "internal", "restricted"]


class Attribute(BaseModel):
    """One attribute column of a vector layer."""

    name: str
    type: str                     # PostgreSQL type: text, bigint, double precision, ...
    source_name: str | None = None
    unit: str | None = None
    description: str | None = None
    #: Distinct values, as PostgreSQL's statistics estimate them (``pg_stats.n_distinct``:
    #: a count, or minus the fraction of the rows when it grows with them; -1: unique).
    #: Tiles at low zooms leave out near-unique columns (ids): they make every feature
    #: different, so nothing can be merged, and no map styles by them.
    distinct: float | None = None

    @property
    def near_unique(self) -> bool:
        return self.distinct is not None and -1.0 <= self.distinct <= -0.5


class Generation(BaseModel):
    """Rows an ingest replaced on an editable layer, kept: they were the layer from
    ``valid_from`` until ``valid_to`` (``gis_meta.layer_loads``, migration 0010)."""

    change_set: int
    table: str                      # in gis_data
    valid_from: datetime
    valid_to: datetime
    attributes: list[Attribute] = Field(default_factory=list)


class Layer(BaseModel):
    """A catalog record."""

    id: str
    title: str
    title_ko: str | None = None
    description: str = ""
    description_ko: str | None = None
    keywords: list[str] = Field(default_factory=list)
    source: str | None = None
    licence: str | None = None
    attribution: str | None = None
    kind: Literal["vector", "raster"]
    geometry_type: str | None = None
    storage_srid: int = 4326
    source_crs: str | None = None
    table_name: str | None = None
    raster_path: str | None = None
    extent: list[float] | None = None
    feature_count: int = 0
    schema_: list[Attribute] = Field(default_factory=list, alias="schema")
    raster_info: dict[str, Any] | None = None
    access_level: AccessLevel = "internal"      # new layers are private until published
    minzoom: int = 0
    maxzoom: int = 22
    default_style: dict[str, Any] | None = None
    time_column: str | None = None
    data_version: int = 1
    #: A relation published in place (None: ingested into gis_data.<table_name>).
    relation: Relation | None = None
    #: Takes feature writes (OGC API Features Part 4), each version kept.
    editable: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: When the current rows were loaded (the current generation began).
    loaded_at: datetime | None = None
    #: Earlier rows an ingest replaced, kept (editable layers), oldest first.
    generations: list[Generation] = Field(default_factory=list)

    model_config = {"populate_by_name": True}

    #: Row changes since ``data_version`` (published relations, edits); set by the registry.
    _changes: ChangeLog = PrivateAttr(default=EMPTY)

    @property
    def changes(self) -> ChangeLog:
        return self._changes

    def with_changes(self, log: ChangeLog) -> Layer:
        """A copy carrying ``log`` (the registry's view of the layer's recent changes)."""
        out = self.model_copy()
        out._changes = log
        return out

    @property
    def current_extent(self) -> list[float] | None:
        """The extent including where rows changed since it was measured (None: unknown)."""
        if not len(self._changes):
            return self.extent
        grown = self._changes.extent()
        if grown is None or self.extent is None:
            return None
        e = self.extent
        return [min(e[0], grown[0]), min(e[1], grown[1]), max(e[2], grown[2]), max(e[3], grown[3])]

    @property
    def version_tag(self) -> str:
        """The data version including every row change since it: what a figure computed from
        all the layer's rows (a count, an extent) is keyed on."""
        sig = self._changes.signature_all
        return f"{self.data_version}+{sig}" if sig else str(self.data_version)

    @property
    def attributes(self) -> list[Attribute]:
        return self.schema_

    def attribute(self, name: str) -> Attribute | None:
        for attr in self.schema_:
            if attr.name == name:
                return attr
        return None

    @property
    def resource(self) -> Resource:
        """What the access decision rules on (level, row columns)."""
        return Resource.of_layer(self)

    @property
    def published(self) -> bool:
        """Served in place from a relation the platform does not own."""
        return self.relation is not None

    @property
    def has_rows(self) -> bool:
        """A vector layer with rows to query (an ingested table or a published relation)."""
        return self.kind == "vector" and (bool(self.table_name) or self.relation is not None)

    @property
    def rows(self) -> RowSource:
        """The SQL pieces of this layer's rows (:class:`layers.relation.RowSource`)."""
        if self.relation is not None:
            rel = self.relation
            table = None if rel.is_function else sql.Identifier(rel.schema_name, rel.name)
            return RowSource(table, rel, self.storage_srid)
        if not self.table_name:
            raise LayerNotFound(f"Layer '{self.id}' has no vector table.")
        return RowSource(sql.Identifier(DATA_SCHEMA, self.table_name), None, self.storage_srid)

    def table(self) -> sql.Composable:
        """The layer's table (or published relation) as a safe SQL identifier."""
        return self.rows.table()

    def public_dict(self) -> dict[str, Any]:
        """The record as shown over HTTP (no storage internals)."""
        doc = self.model_dump(by_alias=True, exclude={"table_name", "raster_path", "relation",
                                                      "generations"})
        return doc


class LayerUpdate(BaseModel):
    """Editable metadata (PATCH)."""

    title: str | None = None
    title_ko: str | None = None
    description: str | None = None
    description_ko: str | None = None
    keywords: list[str] | None = None
    source: str | None = None
    licence: str | None = None
    attribution: str | None = None
    access_level: AccessLevel | None = None
    minzoom: int | None = Field(default=None, ge=0, le=24)
    maxzoom: int | None = Field(default=None, ge=0, le=24)
    default_style: dict[str, Any] | None = None
    units: dict[str, str] | None = Field(default=None, description="attribute name -> unit")
    editable: bool | None = Field(default=None, description="Take feature writes (OGC API "
                                  "Features Part 4); every version is kept.")

    model_config = {"extra": "forbid"}

    @field_validator("keywords")
    @classmethod
    def _kw(cls, v):
        return [k.strip() for k in v if k.strip()] if v is not None else v


def validate_layer_id(layer_id: str) -> str:
    """A layer id is a slug: lower-case letter first, then letters, digits, underscores."""
    if not LAYER_ID_RE.match(layer_id or ""):
        raise InvalidParameter(
            f"Invalid layer id {layer_id!r}: use 1-63 lower-case letters, digits and underscores, "
            "starting with a letter (e.g. 'gas_mains_2024').")
    return layer_id


def slugify(name: str) -> str:
    """A layer id derived from a file or layer name."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = "layer_" + slug
    return slug[:63].rstrip("_")


_COLUMNS = [f for f in Layer.model_fields if f not in ("schema_", "generations")] + ["schema"]
_GENERATIONS = sql.SQL(
    "(SELECT coalesce(jsonb_agg(jsonb_build_object('change_set', g.change_set, 'table', "
    "g.archived_table, 'valid_from', g.valid_from, 'valid_to', g.at, 'attributes', "
    "coalesce(g.archived_schema, '[]')) ORDER BY g.at), '[]') FROM gis_meta.layer_loads g "
    "WHERE g.layer_id = layers.id AND g.archived_table IS NOT NULL) AS generations")
SELECT_LAYERS = sql.SQL("SELECT {}, {} FROM gis_meta.layers").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS), _GENERATIONS)


def row_to_layer(row: dict) -> Layer:
    return Layer.model_validate(row)


# --- synchronous access (CLI, ingest threads) ------------------------------------------
def get_layer(conn: psycopg.Connection, layer_id: str, *, for_update: bool = False) -> Layer | None:
    q = SELECT_LAYERS + sql.SQL(" WHERE id = %s") + (sql.SQL(" FOR UPDATE") if for_update else sql.SQL(""))
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q, (layer_id,)).fetchone()
    return row_to_layer(row) if row else None


def list_layers(conn: psycopg.Connection) -> list[Layer]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(SELECT_LAYERS + sql.SQL(" ORDER BY id")).fetchall()
    return [row_to_layer(r) for r in rows]


def update_layer(conn: psycopg.Connection, layer_id: str, patch: LayerUpdate) -> Layer:
    """Apply a metadata patch. Metadata changes that alter rendering bump the data version."""
    changes = patch.model_dump(exclude_unset=True)
    units = changes.pop("units", None)
    with conn.transaction():
        layer = get_layer(conn, layer_id, for_update=True)
        if layer is None:
            raise LayerNotFound(f"No layer '{layer_id}'.")
        minz = changes.get("minzoom", layer.minzoom)
        maxz = changes.get("maxzoom", layer.maxzoom)
        if minz > maxz:
            raise InvalidParameter(f"minzoom ({minz}) must not exceed maxzoom ({maxz}).")
        if units:
            schema = [a.model_dump() for a in layer.attributes]
            known = {a["name"] for a in schema}
            unknown = sorted(set(units) - known)
            if unknown:
                raise InvalidParameter(f"Unknown attributes for units: {unknown}; known: {sorted(known)}")
            for a in schema:
                if a["name"] in units:
                    a["unit"] = units[a["name"]]
            changes["schema"] = psycopg.types.json.Jsonb(schema)
        if "default_style" in changes and changes["default_style"] is not None:
            parse_selection(changes["default_style"], [(a.name, a.type) for a in layer.attributes])
            changes["default_style"] = psycopg.types.json.Jsonb(changes["default_style"])
        if not changes:
            return layer
        sets = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes]
        # access level, zoom range and style change what tiles contain: new data version.
        bump = bool({"access_level", "minzoom", "maxzoom", "default_style"} & set(changes))
        sets.append(sql.SQL("updated_at = now()"))
        if bump:
            sets.append(sql.SQL("data_version = nextval('gis_meta.data_version_seq')"))
        conn.execute(sql.SQL("UPDATE gis_meta.layers SET {} WHERE id = %s").format(
            sql.SQL(", ").join(sets)), [*changes.values(), layer_id])
        return get_layer(conn, layer_id)


def delete_layer(conn: psycopg.Connection, layer_id: str) -> Layer:
    """Drop a layer: its table (or raster file reference) and its catalog record."""
    with conn.transaction():
        layer = get_layer(conn, layer_id, for_update=True)
        if layer is None:
            raise LayerNotFound(f"No layer '{layer_id}'.")
        refuse_if_view(conn, layer, "deleted")
        if layer.table_name:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(layer.table()))
        for g in layer.generations:          # rows earlier ingests replaced (history)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(DATA_SCHEMA, g.table)))
        conn.execute("DELETE FROM gis_meta.layers WHERE id = %s", (layer_id,))
    return layer


def refuse_if_view(conn: psycopg.Connection, layer: Layer, action: str) -> None:
    """A layer backed by a view (e.g. ``active_works``, maintained from the permits) is
    derived data: it cannot be deleted, replaced or appended to through the catalog.  Nor
    can a relation published in place: another system owns its rows."""
    if layer.relation is not None and action != "deleted":
        raise Conflict(f"Layer '{layer.id}' is published in place from {layer.relation.qualified}; "
                       f"ingests never write into it, so it cannot be {action}. Change "
                       "the source relation, or unpublish the layer and ingest a copy under "
                       "another id.")
    if not layer.table_name:
        return
    row = conn.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = %s AND c.relname = %s",
                       (DATA_SCHEMA, layer.table_name)).fetchone()
    if row and row[0] in ("v", "m"):
        raise Conflict(f"Layer '{layer.id}' is a view maintained by the platform from other "
                       f"data; it cannot be {action}. Change its source data instead.")


def ensure_new_id(conn: psycopg.Connection, layer_id: str) -> None:
    if get_layer(conn, layer_id) is not None:
        raise Conflict(f"A layer '{layer_id}' already exists. Use mode 'replace' to overwrite it "
                       "or 'append' to add to it, or choose another id.")
