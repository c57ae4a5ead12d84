"""The policy map spec (YAML or JSON), validated with pydantic.

A spec says *what* to show; the platform works out the rest from the data.  Shape checks
(types, ranges, palettes, break order) are done here; data checks (the indicator exists, has
the year for the area unit, overlay layers exist) are done against the database in
:mod:`policy_maps.build`.  Every error names the field and says how to fix it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from gis_platform.errors import Unprocessable

MAP_ID_RE = r"^[a-z][a-z0-9_-]{0,62}$"
HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

# ColorBrewer schemes marked colour-blind safe (colorbrewer2.org), plus viridis / cividis.
SEQUENTIAL = ("YlGnBu", "Blues", "Greens", "Purples", "Oranges", "Greys", "BuGn", "BuPu", "GnBu",
              "OrRd", "PuBu", "PuBuGn", "PuRd", "RdPu", "YlGn", "YlOrBr", "YlOrRd", "viridis", "cividis")
DIVERGING = ("RdBu", "PuOr", "BrBG", "PRGn", "PiYG", "RdYlBu")
METHODS = ("quantiles", "equal_interval", "natural_breaks", "std_dev", "manual")


class SpecError(Unprocessable):
    """A map spec is invalid; ``errors`` lists each problem as {field, message}."""

    title, type_slug = "Invalid map spec", "invalid-map-spec"


class Text(BaseModel):
    """A text in Korean and English (one may be omitted: the other is shown instead)."""

    ko: str | None = None
    en: str | None = None

    model_config = {"extra": "forbid"}

    @model_validator(mode="after")
    def _one(self) -> Text:
        if not (self.ko or self.en):
            raise ValueError("give the text in Korean (ko) or English (en), or both")
        return self

    def get(self, lang: str) -> str:
        return (self.ko or self.en or "") if lang == "ko" else (self.en or self.ko or "")


def _text(value: Any) -> Any:
    return {"ko": value, "en": value} if isinstance(value, str) else value


class Classification(BaseModel):
    method: Literal["quantiles", "equal_interval", "natural_breaks", "std_dev", "manual"] = "quantiles"
    k: int = Field(5, ge=2, le=9, description="number of classes (2-9); std_dev derives it")
    breaks: list[float] | None = Field(None, description="manual: upper bounds of the classes")
    scope: Literal["all_years", "year"] = Field(
        "all_years", description="classify all years together (comparable colours) or each year")
    midpoint: float | None = Field(
        None, description="the value classes split at (no class spans it); default 0 for values of "
                          "both signs on a diverging palette (named, or the default for signed data)")

    model_config = {"extra": "forbid"}

    @model_validator(mode="after")
    def _breaks(self) -> Classification:
        if self.method == "manual":
            if not self.breaks or len(self.breaks) < 2:
                raise ValueError("manual classification needs 'breaks': at least two ascending upper "
                                 "bounds, e.g. breaks: [10, 20, 30]")
            if any(b >= a for b, a in zip(self.breaks, self.breaks[1:]) if not b < a):
                raise ValueError(f"breaks must be strictly ascending; got {self.breaks}")
            if len(self.breaks) > 9:
                raise ValueError("at most 9 classes (9 breaks): more cannot be told apart on a map")
            self.k = len(self.breaks)
        elif self.breaks is not None:
            raise ValueError(f"'breaks' is only for method: manual (method is {self.method})")
        return self


class Palette(BaseModel):
    name: str | None = Field(None, description="a colour-blind-safe scheme; default from the data")
    colors: list[str] | None = Field(None, description="explicit hex colours, one per class")
    reverse: bool = False

    model_config = {"extra": "forbid"}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and v not in SEQUENTIAL + DIVERGING:
            raise ValueError(f"unknown or not colour-blind-safe palette {v!r}; choose a sequential one "
                             f"({', '.join(SEQUENTIAL)}) or a diverging one ({', '.join(DIVERGING)})")
        return v

    @field_validator("colors")
    @classmethod
    def _colors(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            bad = [c for c in v if not HEX_RE.match(c)]
            if bad:
                raise ValueError(f"colours must be '#rrggbb'; not {bad}")
        return v


class Overlay(BaseModel):
    layer: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    title: Text | None = None
    color: str = "#333333"

    model_config = {"extra": "forbid"}
    _t = field_validator("title", mode="before")(_text)


class Popup(BaseModel):
    show_name: bool = True
    show_rank: bool = True

    model_config = {"extra": "forbid"}


class Legend(BaseModel):
    title: Text | None = None
    decimals: int | None = Field(None, ge=0, le=6)

    model_config = {"extra": "forbid"}
    _t = field_validator("title", mode="before")(_text)


class Change(BaseModel):
    """A change map: each area's value in ``end`` minus its value in ``start``."""

    start: int = Field(ge=1900, le=2200, description="the year changes are measured from")
    end: int = Field(ge=1900, le=2200, description="the year changes are measured to")

    model_config = {"extra": "forbid"}

    @model_validator(mode="after")
    def _order(self) -> Change:
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start}: a change needs two different years")
        return self


class MapSpec(BaseModel):
    """One policy map: what to show, how to classify and colour it, and where it comes from."""

    id: str = Field(pattern=MAP_ID_RE, description="lower-case slug, e.g. turnout-2022")
    title: Text
    description: Text | None = None
    indicator: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    area_unit: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    year: int | None = Field(None, ge=1900, le=2200, description="year shown first (default: latest)")
    years: list[int] | None = Field(None, description="years offered (default: all with data)")
    change: Change | None = Field(None, description="show the change from one year to another instead "
                                  "(its own classes, diverging at 0)")
    classification: Classification = Field(default_factory=Classification)
    palette: Palette = Field(default_factory=Palette)
    legend: Legend = Field(default_factory=Legend)
    popup: Popup = Field(default_factory=Popup)
    overlays: list[Overlay] = Field(default_factory=list, max_length=5)
    basemap: Literal["none", "outline"] = Field(
        "outline", description="'outline': draw area borders only (no external tiles: works offline)")
    sources: list[Text] = Field(default_factory=list, description="data sources shown on the map")
    attribution: str | None = None
    tags: list[str] = Field(default_factory=list)

    model_config = {"extra": "forbid"}

    _t = field_validator("title", "description", mode="before")(_text)

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        return [_text(s) for s in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _cross(self) -> MapSpec:
        if self.palette.colors is not None and self.classification.method != "std_dev" \
                and len(self.palette.colors) != self.classification.k:
            raise ValueError(f"palette.colors has {len(self.palette.colors)} colours but the "
                             f"classification has {self.classification.k} classes")
        if self.year is not None and self.years is not None and self.year not in self.years:
            raise ValueError(f"year {self.year} is not among years {self.years}")
        if self.change is not None and (self.year is not None or self.years is not None):
            raise ValueError("a change map shows one period (change.start to change.end): leave out "
                             "year and years")
        return self


def _readable(exc: ValidationError) -> list[dict]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = f"unknown field (allowed: {', '.join(_allowed(loc))})"
        elif err.get("type") == "string_pattern_mismatch":
            msg = f"{msg} (got {err.get('input')!r})"
        out.append({"field": loc or "(spec)", "message": msg})
    return out


def _allowed(loc: str) -> list[str]:
    model: Any = MapSpec
    for part in loc.split(".")[:-1]:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None) if field else None
        model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                      and issubclass(a, BaseModel)), None) if ann else None
        if model is None:
            return []
    return list(model.model_fields)


def parse_spec(data: Any) -> MapSpec:
    """Validate a spec (a dict); :class:`SpecError` lists every problem at once."""
    if not isinstance(data, dict):
        raise SpecError("A map spec is a mapping (YAML/JSON object) with id, title, indicator, "
                        "area_unit...", errors=[{"field": "(spec)", "message": "not a mapping"}])
    try:
        return MapSpec.model_validate(data)
    except ValidationError as exc:
        errors = _readable(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise SpecError(f"The map spec is invalid: {detail}", errors=errors) from None


def load_spec_file(path: Path) -> MapSpec:
    """Read a spec from a .yaml/.yml/.json file."""
    import yaml

    if not path.exists():
        raise SpecError(f"No such spec file: {path}", errors=[])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path.name} is not valid YAML/JSON{where}: {getattr(exc, 'problem', exc)}",
                        errors=[]) from None
    return parse_spec(data)
