"""Classification (mapclassify) and colour palettes (colour-blind-safe ColorBrewer, viridis).

The classes a map shows are mapclassify's: ``bins`` are the upper bounds and each value's
class is mapclassify's ``yb``.  Missing values (NaN) are left out of the classification and
drawn as "no data".

Diverging data (a gap to an average, a change) is read by its side of a midpoint (0 unless
the spec says otherwise): one class from -1.8 to 1.4 would colour below-average districts as
above.  So a diverging map's classes split at the midpoint - it becomes a break when
mapclassify's classes would span it, for every method - and its colours run outwards from
the midpoint on each side of a diverging scheme, the same shade for the same rank of class
on either side (:func:`colours` with ``below``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from policy_maps.spec import DIVERGING, Classification, Palette, SpecError

# Fixed 9-step ramps for the two perceptually uniform schemes (matplotlib's data).
_VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30",
            "#fde725"]
_CIVIDIS = ["#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779", "#a69d75", "#c4b56c",
            "#e4cf5b"]
NO_DATA = "#d9d9d9"


@dataclass(frozen=True)
class Classes:
    """The result of classifying: bins (upper bounds), class per value, and the value range."""

    method: str
    bins: list[float]
    yb: np.ndarray           # class index per input value; -1 for missing values
    minimum: float
    maximum: float
    counts: list[int]
    below: int | None = None  # diverging: how many classes lie at or below the midpoint

    @property
    def k(self) -> int:
        return len(self.bins)

    @property
    def above(self) -> int:
        return self.k - (self.below or 0)

    def lower_bounds(self) -> list[float]:
        return [self.minimum, *self.bins[:-1]]


def classify(values, spec: Classification, midpoint: float | None = None) -> Classes:
    """Classify ``values`` (NaN allowed) with mapclassify as the spec says; with a
    ``midpoint`` (diverging data) no class spans it.

    Fisher-Jenks over the 1,050 hexagons of Seoul takes a second without numba, and every
    page, download and data request of a map classifies the same values again: the last
    results are kept, keyed by the values themselves and the spec (read-only)."""
    y = np.asarray(values, dtype=float)
    return _classify(y.tobytes(), spec.model_dump_json(), midpoint)


@lru_cache(maxsize=64)
def _classify(raw: bytes, spec_json: str, midpoint: float | None) -> Classes:
    import mapclassify as mc

    spec = Classification.model_validate_json(spec_json)
    y = np.frombuffer(raw, dtype=float)
    ok = ~np.isnan(y)
    data = y[ok]
    if data.size == 0:
        raise SpecError("The indicator has no values to classify for this area unit and years.",
                        errors=[{"field": "indicator", "message": "no values"}])
    distinct = np.unique(data).size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "Numba not installed", "not enough unique values"
        if spec.method == "manual":
            c = mc.UserDefined(data, bins=list(spec.breaks or []))
        elif spec.method == "std_dev":
            c = mc.StdMean(data)
        else:
            k = min(spec.k, distinct)
            if k < 2:
                raise SpecError(f"All {data.size} values are equal ({data[0]:g}): there is nothing to "
                                "classify. Use manual breaks or another indicator.",
                                errors=[{"field": "classification", "message": "constant data"}])
            cls = {"quantiles": mc.Quantiles, "equal_interval": mc.EqualInterval,
                   "natural_breaks": mc.FisherJenks}[spec.method]
            c = cls(data, k=k)
    bins = [float(b) for b in np.asarray(c.bins, dtype=float)]
    yb = np.full(y.shape, -1, dtype=int)
    yb[ok] = np.asarray(c.yb, dtype=int)
    below = None
    if midpoint is not None:
        bins, below = split_at(bins, float(midpoint), float(data.min()))
        yb[ok] = np.searchsorted(bins, data, side="left")   # upper bounds are inclusive
    counts = [int((yb == i).sum()) for i in range(len(bins))]
    yb.flags.writeable = False
    return Classes(spec.method, bins, yb, float(data.min()), float(data.max()), counts, below)


def split_at(bins: list[float], midpoint: float, minimum: float) -> tuple[list[float], int]:
    """``bins`` with ``midpoint`` added as a break where a class would span it, and the
    number of classes at or below it.  Classes are (lower, upper], the first [minimum,
    upper]: values equal to the midpoint go below it."""
    lower = [minimum, *bins[:-1]]
    if any(lo < midpoint < hi for lo, hi in zip(lower, bins)) or minimum == midpoint < bins[0]:
        bins = sorted([*bins, midpoint])
    return bins, sum(1 for b in bins if b <= midpoint)


def is_signed(values) -> bool:
    y = np.asarray(values, dtype=float)
    y = y[~np.isnan(y)]
    return bool(y.size) and bool(y.min() < 0 < y.max())


def default_palette(polarity: str, signed: bool) -> tuple[str, bool]:
    """(scheme, reverse) when the spec names none: diverging for signed data; otherwise
    warm for higher-is-worse, cool for higher-is-better."""
    if signed:
        # RdBu runs red (low) -> blue (high): blue is the good end for higher-is-better.
        return "RdBu", polarity == "higher_is_worse"
    return {"higher_is_worse": "OrRd", "higher_is_better": "YlGnBu"}.get(polarity, "PuBu"), False


def colours(palette: Palette, k: int, *, polarity: str = "neutral", signed: bool = False,
            below: int | None = None) -> list[str]:
    """``k`` hex colours, light (low) to dark (high) unless reversed.  With ``below`` (a
    diverging map split at its midpoint): the first ``below`` from the low half of the
    scheme, the others from its high half, each side starting next to the midpoint."""
    if palette.colors is not None:
        if len(palette.colors) < k:
            raise SpecError(f"palette.colors has {len(palette.colors)} colours; the map has {k} classes.",
                            errors=[{"field": "palette.colors", "message": f"need {k} colours"}])
        out = list(palette.colors[:k])
        return out[::-1] if palette.reverse else out
    if below is None:
        return _ramp(palette, k, polarity, signed)
    side = max(below, k - below, 1)
    return _ramp(palette, 2 * side, polarity, signed)[side - below: side - below + k]


def _ramp(palette: Palette, k: int, polarity: str, signed: bool) -> list[str]:
    """The named (or default) scheme in ``k`` colours, low to high, reversed as asked."""
    from branca.utilities import color_brewer

    name, reverse = (palette.name, False) if palette.name else default_palette(polarity, signed)
    if name in ("viridis", "cividis"):
        ramp = _VIRIDIS if name == "viridis" else _CIVIDIS
        out = [ramp[round(i * (len(ramp) - 1) / max(k - 1, 1))] for i in range(k)]
    else:
        n = max(k, 3)                            # ColorBrewer schemes start at 3 classes
        out = color_brewer(name, n)
        if k < n:
            out = [out[0], out[-1]] if k == 2 else out[:k]
    if reverse:
        out = out[::-1]
    return out[::-1] if palette.reverse else out


def diverges(palette: Palette, signed: bool) -> bool:
    """Whether a map reads its values by their side of a midpoint: a diverging scheme, named
    or chosen for signed data (explicit colours are the planner's own classes)."""
    return palette.colors is None and palette_kind(palette, signed) == "diverging"


def palette_kind(palette: Palette, signed: bool) -> str:
    if palette.name:
        return "diverging" if palette.name in DIVERGING else "sequential"
    return "diverging" if signed else "sequential"
