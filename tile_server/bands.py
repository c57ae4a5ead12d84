"""Zoom bands and the attributes each band ships: what a vector tile of a layer carries at a
zoom (TileJSON, the tile SQL and the overview tables all ask here).

*overview* (z < ``overview_below_zoom``): a few attributes (names and classes first), the
geometry simplified; *mid* (up to ``detail_from_zoom``): the layer's mid attributes, full
geometry; *detail*: every attribute.  See :mod:`tile_server.vector_sql`.
"""

from __future__ import annotations

from layers.catalog import Layer
from tile_server.sources import TileTuning

# Attribute names kept first at overview zooms (substring match, in this order).
_OVERVIEW_HINTS = ("name", "kind", "class", "type", "category", "code")
# PostgreSQL types ST_AsMVT encodes natively; anything else is sent as its text form.
_NATIVE = {"text", "bigint", "integer", "smallint", "double precision", "real", "boolean",
           "numeric"}


def zoom_band(z: int, tuning: TileTuning) -> str:
    """``overview`` below ``tuning.overview_below_zoom``, ``mid`` below
    ``tuning.detail_from_zoom``, else ``detail``."""
    if z < tuning.overview_below_zoom:
        return "overview"
    return "mid" if z < tuning.detail_from_zoom else "detail"


def is_point_layer(layer: Layer) -> bool:
    return "point" in (layer.geometry_type or "").lower()


def overview_attributes(layer: Layer, limit: int, key: str = "overview_attributes") -> list[str]:
    """The few attributes overview (or, with ``key="mid_attributes"``, mid-band) tiles keep.

    A layer may name them in its catalog style (``default_style.overview_attributes`` /
    ``mid_attributes``); otherwise names that look like labels or classes (name, kind,
    class, type...) come first, then the first catalogued ones - leaving out the columns
    known to be (nearly) unique, such as a published relation's key: ids no map styles by,
    which would keep every feature of an overview apart.
    """
    names = [a.name for a in layer.attributes if not a.name.startswith("__")]
    style = layer.default_style or {}
    chosen = [n for n in style.get(key, []) if n in names] \
        if isinstance(style.get(key), list) else []
    if not chosen:
        unique = {a.name for a in layer.attributes if a.near_unique}
        names = [n for n in names if n not in unique]
        for hint in _OVERVIEW_HINTS:
            chosen += [n for n in names if hint in n.lower() and n not in chosen]
        chosen += [n for n in names if n not in chosen]
    return chosen[:max(0, limit)]


def band_attributes(layer: Layer, band: str, tuning: TileTuning) -> list[str]:
    """Attribute names a tile of ``band`` carries for ``layer`` (TileJSON lists the same)."""
    if band == "overview":
        return overview_attributes(layer, tuning.overview_attributes)
    if band == "mid":
        return overview_attributes(layer, tuning.mid_attributes, "mid_attributes")
    return [a.name for a in layer.attributes if not a.name.startswith("__")]
