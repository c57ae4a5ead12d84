"""Classification (mapclassify) and colour palettes (colour-blind-safe ColorBrewer, viridis).

The classes a map shows are exactly mapclassify's: ``bins`` are the upper bounds and each
value's class is mapclassify's ``yb``.  Missing values (NaN) are left out of the
classification and drawn as "no data".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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

    @property
    def k(self) -> int:
        return len(self.bins)

    def lower_bounds(self) -> list[float]:
        return [self.minimum, *self.bins[:-1]]


def classify(values, spec: Classification) -> Classes:
    """Classify ``values`` (NaN allowed) with mapclassify as the spec says."""
    import mapclassify as mc

    y = np.asarray(values, dtype=float)
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
    yb = np.full(y.shape, -1, dtype=int)
    yb[ok] = np.asarray(c.yb, dtype=int)
    bins = [float(b) for b in np.asarray(c.bins, dtype=float)]
    counts = [int((yb == i).sum()) for i in range(len(bins))]
    return Classes(spec.method, bins, yb, float(data.min()), float(data.max()), counts)


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


def colours(palette: Palette, k: int, *, polarity: str = "neutral", signed: bool = False) -> list[str]:
    """``k`` hex colours, light (low) to dark (high) unless reversed."""
    from branca.utilities import color_brewer

    if palette.colors is not None:
        if len(palette.colors) < k:
            raise SpecError(f"palette.colors has {len(palette.colors)} colours; the map has {k} classes.",
                            errors=[{"field": "palette.colors", "message": f"need {k} colours"}])
        out = list(palette.colors[:k])
    else:
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


def palette_kind(palette: Palette, signed: bool) -> str:
    if palette.name:
        return "diverging" if palette.name in DIVERGING else "sequential"
    return "diverging" if signed else "sequential"
