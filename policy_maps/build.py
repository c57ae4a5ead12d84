"""From a spec to the data a map shows: areas, values per year, classes, colours, texts.

:func:`build_map` checks the spec against the database (indicator, area unit, years, overlay
layers), reads the area geometries from the unit's layer and the indicator values, and
classifies them.  The three renderers (folium HTML, MapLibre page, PNG) all draw from the
one :class:`MapData` it returns, so they show the same classes, colours and numbers.

Every part is read through a :class:`MapAccess`: over HTTP its layer lookup is
``Registry.readable(id, principal)`` and its indicator check the indicator's access decision
(both the one choke point, audited); the CLI and the demo, run by the operator, use
:meth:`MapAccess.system`.  There is no unchecked default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson
import psycopg
from psycopg import sql

from gis_platform.errors import NotFound
from indicators.store import AreaUnit, Indicator, get_area_unit, get_indicator, read_values
from layers.catalog import Layer, get_layer
from policy_maps.classify import NO_DATA, Classes, classify, colours, diverges, is_signed, palette_kind
from policy_maps.korean import attach
from policy_maps.spec import MapSpec, SpecError


@dataclass(frozen=True)
class MapAccess:
    """How a map reads its parts on behalf of a caller: each layer by id (raising the 404 of
    a missing one when the caller may not read it), and a check of the indicator."""

    layer: Callable[[str], Layer]
    indicator: Callable[[Indicator], object]

    @classmethod
    def system(cls, conn: psycopg.Connection) -> MapAccess:
        """The operator's own access (CLI, demo loader): the catalog, no checks."""
        def layer(layer_id: str) -> Layer:
            found = get_layer(conn, layer_id)
            if found is None:
                raise NotFound(f"No layer '{layer_id}'.")
            return found
        return cls(layer, lambda ind: ind)


@dataclass
class MapData:
    spec: MapSpec
    indicator: Indicator
    unit: AreaUnit
    layer: Layer
    overlays: list[Layer]
    fids: list[int]
    codes: list[str]
    names: list[str]
    geometries: list[dict]          # GeoJSON geometries, EPSG:4326, 5 decimals
    years: list[int]
    year: int
    values: dict[int, np.ndarray]   # year -> value per area (NaN = no data)
    classes: dict[int, Classes]     # year -> classes (the same object for every year if all_years)
    colors: list[str]
    palette_kind: str
    decimals: int
    bounds: list[float]
    data_versions: dict
    integral: bool = False          # every value a whole number (counts): whole-number labels
    offsets: dict[int, int] = field(default_factory=dict)  # year -> colour of its first class
    built_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    version: int | None = None

    # --- texts ---------------------------------------------------------------------------
    def fmt(self, v: float | None) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return f"{v:,.{self.decimals}f}"

    def indicator_name(self, lang: str) -> str:
        return self.indicator.name_ko if lang == "ko" else self.indicator.name_en

    @property
    def value_unit(self) -> str:
        """The unit of the numbers shown: a change of a percentage is in percentage points."""
        u = self.indicator.unit
        return "%p" if self.spec.change and u == "%" else u

    def period(self, year: int) -> str:
        """How a year of the map is named: the year, or a change map's "2014–2016"."""
        return f"{self.spec.change.start}–{self.spec.change.end}" if self.spec.change else str(year)

    def legend_title(self, lang: str) -> str:
        if self.spec.legend.title:
            return self.spec.legend.title.get(lang)
        unit = f" ({self.value_unit})" if self.value_unit else ""
        name = self.indicator_name(lang)
        if self.spec.change:
            period = self.period(self.year)
            name = f"{name} 변화 {period}" if lang == "ko" else f"Change in {name}, {period}"
        return name + unit

    def legend(self, year: int, lang: str) -> list[dict]:
        """Legend rows: colour, label, count of areas; then 'no data' if any."""
        c = self.classes[year]
        rows = []
        for i, (lo, hi) in enumerate(zip(c.lower_bounds(), c.bins)):
            label = self._class_label(i, lo, min(hi, c.maximum) if i == c.k - 1 else hi)
            count = int((c.yb[self._slice(year)] == i).sum())
            rows.append({"color": self.colors[i + self.offsets.get(year, 0)], "label": label, "count": count})
        missing = int(np.isnan(self.values[year]).sum())
        if missing:
            rows.append({"color": NO_DATA, "label": "자료 없음" if lang == "ko" else "No data",
                         "count": missing})
        return rows

    def _class_label(self, i: int, lo: float, hi: float) -> str:
        """'lo – hi'; for counts (whole numbers) the whole numbers a class holds: a class
        (0, 1] of counts is just "1", not "0.0 – 1.0"."""
        if self.decimals == 0 and self.integral:
            first = math.ceil(lo) if i == 0 else math.floor(lo) + 1
            last = math.floor(hi)
            if first >= last:
                return self.fmt(float(last))
            return f"{self.fmt(float(first))} – {self.fmt(float(last))}"
        return f"{self.fmt(lo)} – {self.fmt(hi)}"

    def _slice(self, year: int) -> slice:
        """Where this year's values sit in the classified array (all years are stacked)."""
        if self.spec.classification.scope == "year":
            return slice(None)
        i = self.years.index(year)
        n = len(self.fids)
        return slice(i * n, (i + 1) * n)

    def class_index(self, year: int) -> list[int]:
        return self.classes[year].yb[self._slice(year)].tolist()

    def colour_index(self, year: int) -> list[int]:
        """Per area, its colour in :attr:`colors` (-1: no data)."""
        off = self.offsets.get(year, 0)
        return [i + off if i >= 0 else -1 for i in self.class_index(year)]

    def color_of(self, year: int) -> list[str]:
        return [self.colors[i] if i >= 0 else NO_DATA for i in self.colour_index(year)]

    def title(self, lang: str) -> str:
        return self.spec.title.get(lang)

    def description(self, lang: str) -> str:
        return self.spec.description.get(lang) if self.spec.description else ""

    def sources(self, lang: str) -> list[str]:
        out = [s.get(lang) for s in self.spec.sources]
        if not out and self.indicator.source:
            out = [self.indicator.source]
        return out

    def source_line(self, lang: str) -> str:
        label = "출처" if lang == "ko" else "Source"
        date = self.built_at[:10]
        made = "작성" if lang == "ko" else "made"
        return f"{label}: {'; '.join(self.sources(lang)) or '-'} · {made} {date}"

    def summary(self, year: int, lang: str) -> str:
        """A one-paragraph description of the map for screen readers."""
        v = self.values[year]
        ok = ~np.isnan(v)
        if not ok.any():
            return ""
        hi, lo = int(np.nanargmax(v)), int(np.nanargmin(v))
        med = float(np.nanmedian(v))
        n, unit_name = int(ok.sum()), (self.unit.title_ko if lang == "ko" else self.unit.title)
        name = self.indicator_name(lang)
        u = self.indicator.unit
        if self.spec.change:
            return self._change_summary(v, hi, lo, med, n, unit_name, lang)
        if lang == "ko":
            return (f"{year}년 {attach(name, '은')} {unit_name} {n}곳 중 {attach(self.names[hi], '이')} "
                    f"{attach(self.fmt(v[hi]) + u, '으로')} 가장 높고, {attach(self.names[lo], '이')} "
                    f"{attach(self.fmt(v[lo]) + u, '으로')} 가장 낮습니다. 중앙값은 {self.fmt(med)}{u}입니다. "
                    f"색은 {self.classes[year].k}개 구간으로 나누었습니다.")
        return (f"In {year}, {name} across {n} areas ({unit_name}) was highest in {self.names[hi]} "
                f"({self.fmt(v[hi])} {u}) and lowest in {self.names[lo]} ({self.fmt(v[lo])} {u}); the "
                f"median was {self.fmt(med)} {u}. Colours show {self.classes[year].k} classes.")

    def _change_summary(self, v: np.ndarray, hi: int, lo: int, med: float, n: int, unit_name: str,
                        lang: str) -> str:
        """The summary of a change map: where the value rose and fell most (or least)."""
        start, end = self.spec.change.start, self.spec.change.end
        name, u, k = self.indicator_name(lang), self.value_unit, self.classes[self.year].k

        def signed(x: float) -> str:
            return ("+" if x > 0 else "") + self.fmt(x)

        if lang == "ko":
            most = "가장 많이 늘었고" if v[hi] > 0 else "가장 적게 줄었고"
            least = "가장 많이 줄었습니다" if v[lo] < 0 else "가장 적게 늘었습니다"
            return (f"{start}년에서 {end}년 사이 {attach(name, '은')} {unit_name} {n}곳 중 "
                    f"{attach(self.names[hi], '이')} {attach(signed(v[hi]) + u, '으로')} {most}, "
                    f"{attach(self.names[lo], '이')} {attach(signed(v[lo]) + u, '으로')} {least}. "
                    f"중앙값은 {signed(med)}{u}입니다. 색은 {k}개 구간으로 나누었습니다.")
        most = "rose most" if v[hi] > 0 else "fell least"
        least = "fell most" if v[lo] < 0 else "rose least"
        return (f"From {start} to {end}, {name} across {n} areas ({unit_name}) {most} in {self.names[hi]} "
                f"({signed(v[hi])} {u}) and {least} in {self.names[lo]} ({signed(v[lo])} {u}); the median "
                f"change was {signed(med)} {u}. Colours show {k} classes.")

    def table(self) -> dict:
        """The same numbers as a table: one row per area, one column per year."""
        order = sorted(range(len(self.fids)), key=lambda i: self.names[i] or self.codes[i])
        return {"years": [self.period(y) for y in self.years] if self.spec.change else self.years,
                "rows": [{"code": self.codes[i], "name": self.names[i],
                          "values": [self.fmt(self.values[y][i]) for y in self.years]} for i in order]}

    def document(self, lang: str) -> dict:
        """Everything the live page needs (no geometry: that comes from the vector tiles)."""
        return {
            "id": self.spec.id, "version": self.version, "lang": lang,
            "title": self.title(lang), "description": self.description(lang),
            "indicator": self.indicator.model_dump(include={"id", "name_ko", "name_en", "unit",
                                                           "polarity", "source", "data_version"}),
            "unit": self.unit.id, "layer": self.layer.id,
            "overlays": [{"layer": o.id, "color": s.color,
                          "title": (s.title.get(lang) if s.title else (o.title_ko if lang == "ko" and
                                                                       o.title_ko else o.title))}
                         for o, s in zip(self.overlays, self.spec.overlays)],
            "basemap": self.spec.basemap,
            "years": self.years, "year": self.year, "bounds": self.bounds,
            "areas": [{"fid": f, "code": c, "name": n} for f, c, n in zip(self.fids, self.codes, self.names)],
            "values": {str(y): [None if math.isnan(x) else x for x in self.values[y].tolist()]
                       for y in self.years},
            "classes": {str(y): self.colour_index(y) for y in self.years},
            "colors": self.colors, "no_data_color": NO_DATA, "palette_kind": self.palette_kind,
            "method": self.spec.classification.method,
            "legend": {str(y): self.legend(y, lang) for y in self.years},
            "legend_title": self.legend_title(lang),
            "summary": {str(y): self.summary(y, lang) for y in self.years},
            "source_line": self.source_line(lang), "attribution": self.spec.attribution or "",
            "built_at": self.built_at, "data_versions": self.data_versions,
            "popup": self.spec.popup.model_dump(),
        }


def _err(field_: str, message: str) -> SpecError:
    return SpecError(f"The map spec is invalid: {field_}: {message}",
                     errors=[{"field": field_, "message": message}])


@dataclass(frozen=True)
class MapParts:
    """What a map is drawn from, each part read through the caller's access."""

    indicator: Indicator
    unit: AreaUnit
    layer: Layer
    overlays: list[Layer]


def map_parts(conn: psycopg.Connection, spec: MapSpec, access: MapAccess) -> MapParts:
    """The indicator, area unit, area layer and overlays of ``spec``, checked against the
    catalog and the caller's access (a part the caller may not read answers as missing)."""
    lookup = access.layer
    try:
        ind = get_indicator(conn, spec.indicator)
        access.indicator(ind)
    except NotFound:
        raise _err("indicator", f"no indicator {spec.indicator!r}; load it first "
                   "(gis-platform indicators list shows the known ones)") from None
    try:
        unit = get_area_unit(conn, spec.area_unit)
    except NotFound as exc:
        raise _err("area_unit", exc.detail) from None
    if spec.area_unit not in ind.units:
        raise _err("area_unit", f"indicator {ind.id!r} has no values for {spec.area_unit!r}; it has "
                   f"values for {ind.units or 'no area unit yet'}")
    layer = lookup(unit.layer_id)
    overlays = []
    for i, o in enumerate(spec.overlays):
        try:
            ol = lookup(o.layer)
        except NotFound:
            raise _err(f"overlays.{i}.layer", f"no layer {o.layer!r}") from None
        if ol.kind != "vector":
            raise _err(f"overlays.{i}.layer", f"{o.layer!r} is a raster layer; overlays are vector layers")
        overlays.append(ol)
    return MapParts(ind, unit, layer, overlays)


def build_map(conn: psycopg.Connection, spec: MapSpec, access: MapAccess) -> MapData:
    """Check ``spec`` against the data and compute everything the renderers draw."""
    parts = map_parts(conn, spec, access)
    ind, unit, layer, overlays = parts.indicator, parts.unit, parts.layer, parts.overlays
    values = read_values(conn, ind.id, unit.id)
    available = sorted(set(values["year"].tolist()))
    field_, years = ("change", [spec.change.start, spec.change.end]) if spec.change else \
        ("years", spec.years or available)
    missing = sorted(set(years) - set(available))
    if missing:
        raise _err(field_, f"no values for {missing}; indicator {ind.id!r} has {available} for {unit.id!r}")
    year = spec.year if spec.year is not None else years[-1]
    if year not in years:
        raise _err("year", f"{year} has no values; choose one of {years}")

    name = sql.Identifier(unit.name_column) if unit.name_column else sql.Identifier(unit.code_column)
    lr = layer.rows
    if lr.id_kind != "int":
        raise _err("unit", f"area unit {unit.id!r} is read from layer {layer.id!r}, whose features "
                   "have no integer id (a map colours features by id); publish it with an integer "
                   "key column")
    rows = conn.execute(sql.SQL(
        "SELECT {f}, {c}::text, {n}::text, ST_AsGeoJSON({g}, 5) FROM {t} ORDER BY {f}").format(
        f=lr.fid(), c=sql.Identifier(unit.code_column), n=name, t=lr.table(),
        g=lr.geom_in(4326))).fetchall()
    fids = [int(r[0]) for r in rows]
    codes = [r[1] for r in rows]
    names = [r[2] or r[1] for r in rows]
    geoms = [orjson.loads(r[3]) for r in rows]
    index = {c: i for i, c in enumerate(codes)}
    per_year: dict[int, np.ndarray] = {}
    for y in years:
        arr = np.full(len(codes), np.nan)
        sub = values[values["year"] == y]
        pos = sub["area_code"].map(index)
        keep = pos.notna()
        arr[pos[keep].astype(int).to_numpy()] = sub["value"][keep].astype(float).to_numpy()
        per_year[y] = arr
    if spec.change:                       # one period: the end year's value minus the start's
        years = [spec.change.end]
        per_year = {spec.change.end: per_year[spec.change.end] - per_year[spec.change.start]}
    stacked = np.concatenate([per_year[y] for y in years])
    signed = is_signed(stacked) or spec.change is not None
    classes, cols, offsets = classes_and_colours(spec, per_year, stacked, ind.polarity)
    span = float(np.nanmax(stacked) - np.nanmin(stacked)) if np.isfinite(stacked).any() else 0.0
    finite = stacked[np.isfinite(stacked)]
    integral = bool(finite.size) and bool(np.all(finite == np.round(finite)))
    decimals = spec.legend.decimals if spec.legend.decimals is not None else \
        (0 if integral or span >= 100 else 1 if span >= 5 else 2)
    ext = conn.execute(sql.SQL("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                               "(SELECT ST_Extent({g}) AS e FROM {t}) s").format(
        t=lr.table(), g=lr.geom_in(4326))).fetchone()
    data_versions = {"indicator": {ind.id: ind.data_version},
                     "layers": {l.id: l.data_version for l in [layer, *overlays]}}
    return MapData(spec, ind, unit, layer, overlays, fids, codes, names, geoms, years, year, per_year,
                   classes, cols, palette_kind(spec.palette, signed), decimals,
                   [float(x) for x in ext], data_versions, integral=integral, offsets=offsets)


def classes_and_colours(spec: MapSpec, per_year: dict[int, np.ndarray], stacked: np.ndarray,
                        polarity: str) -> tuple[dict[int, Classes], list[str], dict[int, int]]:
    """Each year's classes, the map's colours, and each year's offset into them.

    Signed values on a diverging palette split at the midpoint (0, or the spec's); the
    colours then hold the most classes any year has on each side, and a year with fewer
    below the midpoint starts further in, so a colour means the same on every year."""
    # A change is read by its sign, whichever way every area moved: diverging at 0.
    signed = is_signed(stacked) or spec.change is not None
    diverging = diverges(spec.palette, signed)
    midpoint = spec.classification.midpoint
    if midpoint is None and diverging and signed:
        midpoint = 0.0
    if spec.classification.scope == "year":
        classes = {y: classify(v, spec.classification, midpoint) for y, v in per_year.items()}
    else:
        shared = classify(stacked, spec.classification, midpoint)
        classes = {y: shared for y in per_year}
    if not diverging or midpoint is None:
        k = max(c.k for c in classes.values())
        return classes, colours(spec.palette, k, polarity=polarity, signed=signed), {y: 0 for y in classes}
    low = max(c.below or 0 for c in classes.values())
    high = max(c.above for c in classes.values())
    cols = colours(spec.palette, low + high, polarity=polarity, signed=signed, below=low)
    return classes, cols, {y: low - (c.below or 0) for y, c in classes.items()}
