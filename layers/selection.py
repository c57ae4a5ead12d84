"""Which features a map shows from which zoom: a layer's *selection by class*.

A city-wide view of every alley, or of every service pipe, is a grey blot that costs the
most bytes and time of any tile.  Cartography answers with selection: arterials from the
smallest scales, collectors from z11, local streets from z13, alleys from z14; trunk mains
before distribution pipes.  A layer states that in its catalog style
(``default_style.feature_minzoom``), in one of two forms::

    {"field": "road_class", "values": {"arterial": 0, "collector": 11, "local": 13}, "default": 14}
    {"field": "diameter_mm", "steps": [[300, 12], [150, 13]], "default": 14}

``values``: a class value -> the zoom it shows from.  ``steps``: ``[threshold, zoom]`` pairs -
a feature whose (numeric) field is at least ``threshold`` shows from ``zoom`` (the first
matching step, thresholds tried from the largest).  ``default``: every other feature,
including those with no value.  A feature never shows before the layer's own ``minzoom``.

Only tiles select: the feature API, exports and search always return every feature.  The
rule is checked when it is written (PATCH ``/layers/{id}``, ingest metadata): an unknown or
non-numeric field is a 400, never a failing tile.  Changing it changes the layer's data
version (as any style change does), so cached tiles and overviews follow.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from pydantic import BaseModel, Field, ValidationError, model_validator

from gis_platform.errors import InvalidParameter

KEY = "feature_minzoom"
_NUMERIC = {"smallint", "integer", "bigint", "real", "double precision", "numeric"}


class FeatureMinzoom(BaseModel):
    """A parsed ``default_style.feature_minzoom`` rule."""

    field: str = Field(min_length=1)
    values: dict[str, int] | None = None
    steps: list[tuple[float, int]] | None = None
    default: int = Field(ge=0, le=24)

    model_config = {"extra": "forbid"}

    @model_validator(mode="after")
    def _one_form(self) -> FeatureMinzoom:
        if (self.values is None) == (self.steps is None):
            raise ValueError("give exactly one of 'values' (class -> zoom) or 'steps' "
                             "([threshold, zoom] pairs)")
        zooms = list((self.values or {}).values()) + [z for _, z in (self.steps or [])]
        if any(not 0 <= z <= 24 for z in zooms):
            raise ValueError("every zoom must be between 0 and 24")
        if self.values is not None and not self.values:
            raise ValueError("'values' must name at least one class")
        if self.steps is not None and not self.steps:
            raise ValueError("'steps' must hold at least one [threshold, zoom] pair")
        return self

    @property
    def max_zoom(self) -> int:
        """From this zoom on every feature shows: no selection is needed."""
        zooms = list((self.values or {}).values()) + [z for _, z in (self.steps or [])]
        return max([self.default, *zooms])

    def expression(self, alias: str) -> sql.Composed:
        """The feature's first zoom as SQL over ``alias.<field>`` (values quoted as literals;
        the field was checked against the catalog)."""
        col = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(self.field))
        if self.values is not None:
            whens = [sql.SQL("WHEN {} THEN {}").format(sql.Literal(str(v)), sql.Literal(int(z)))
                     for v, z in self.values.items()]
            return sql.SQL("(CASE {}::text {} ELSE {} END)").format(
                col, sql.SQL(" ").join(whens), sql.Literal(int(self.default)))
        steps = sorted(self.steps or [], key=lambda s: -s[0])
        whens = [sql.SQL("WHEN {} >= {} THEN {}").format(col, sql.Literal(float(t)), sql.Literal(int(z)))
                 for t, z in steps]
        return sql.SQL("(CASE {} ELSE {} END)").format(sql.SQL(" ").join(whens),
                                                       sql.Literal(int(self.default)))


def parse(style: dict[str, Any] | None, attributes: list[tuple[str, str]]) -> FeatureMinzoom | None:
    """The rule in ``style`` checked against the layer's ``(name, type)`` attributes, or None.

    Raises :class:`InvalidParameter` with a message naming what is wrong.
    """
    raw = (style or {}).get(KEY)
    if raw is None:
        return None
    try:
        rule = FeatureMinzoom.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or KEY}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise InvalidParameter(f"default_style.{KEY} is not valid: {problems}. Example: "
                               '{"field": "road_class", "values": {"arterial": 0, '
                               '"collector": 11}, "default": 14}') from None
    types = dict(attributes)
    if rule.field not in types:
        raise InvalidParameter(f"default_style.{KEY}.field '{rule.field}' is not an attribute "
                               f"of this layer; it has {sorted(types)}.")
    if rule.steps is not None and types[rule.field] not in _NUMERIC:
        raise InvalidParameter(f"default_style.{KEY}: 'steps' need a numeric field; "
                               f"'{rule.field}' is {types[rule.field]}.")
    return rule


_parsed: dict[tuple[str, int], tuple[Any, FeatureMinzoom | None]] = {}


def for_layer(layer) -> FeatureMinzoom | None:
    """The layer's rule, or None (also None for a stored rule that no longer fits the layer's
    columns, e.g. after a replace dropped the field: the tiles then show every feature).

    Every tile asks this; the parse is remembered per (layer id, data version) - a style
    change is a new data version - and checked against the style it was parsed from."""
    key = (layer.id, layer.data_version)
    hit = _parsed.get(key)
    if hit is not None and hit[0] == layer.default_style:
        return hit[1]
    try:
        rule = parse(layer.default_style, [(a.name, a.type) for a in layer.attributes])
    except InvalidParameter:
        rule = None
    if len(_parsed) >= 1024:
        _parsed.clear()
    _parsed[key] = (layer.default_style, rule)
    return rule
