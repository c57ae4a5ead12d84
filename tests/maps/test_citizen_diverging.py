"""A diverging map (a gap to an average, a change) reads by the side of its midpoint: no class
spans it, whatever the classification method, and colours run outwards from it on each side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gis_platform.db.connections import connect
from indicators.store import Indicator, load_values, upsert_indicator
from policy_maps.classify import classify, colours
from policy_maps.spec import METHODS, Classification, Palette

RdBu6 = ["#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac"]   # ColorBrewer RdBu, 6 classes


def _spec(method: str, k: int, data: np.ndarray) -> Classification:
    if method != "manual":
        return Classification(method=method, k=k)
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))   # breaks that ignore the midpoint
    return Classification(method="manual", breaks=list(np.linspace(lo + (hi - lo) / k * 0.7, hi, k)))


def _datasets():
    rng = np.random.default_rng(20)
    yield "turnout gap", np.array([-3.8, -3.4, -2.0, -1.5, -1.0, -0.5, -0.2, 0.1, 0.3, 0.8, 1.2, 1.5, 2.0, 2.7])
    for i in range(40):
        n = int(rng.integers(6, 60))
        shift = rng.normal(0, 1.5)
        values = rng.normal(shift, rng.uniform(0.2, 5), n)
        if i % 5 == 0:
            values[rng.integers(0, n)] = np.nan
        if i % 7 == 0:
            values = np.round(values)                           # ties, zeros
        yield f"random-{i}", values


@pytest.mark.parametrize("method", METHODS)
def test_no_class_spans_the_midpoint_for_any_method(method):
    for name, data in _datasets():
        ok = ~np.isnan(data)
        for k in (2, 5, 9) if method != "std_dev" else (5,):
            if np.unique(data[ok]).size < 2:
                continue
            for midpoint in (0.0, 0.5, float(np.nanmin(data)), float(np.nanmax(data)), 100.0):
                c = classify(data, _spec(method, k, data), midpoint)
                where = (name, k, midpoint, c.bins)
                for lo, hi, i in zip(c.lower_bounds(), c.bins, range(c.k)):
                    members = data[ok][c.yb[ok] == i]
                    assert members.size == 0 or members.max() <= midpoint or members.min() > midpoint, where
                    assert not lo < midpoint < hi, where
                below = c.yb[ok] < c.below
                assert (data[ok][below] <= midpoint).all() and (data[ok][~below] > midpoint).all(), where
                assert (c.yb[~ok] == -1).all() and sum(c.counts) == ok.sum(), where


def test_without_a_midpoint_the_classes_stay_mapclassifys():
    data = np.array([-3.8, -3.4, -2.0, -1.5, -1.0, -0.5, -0.2, 0.1, 0.3, 0.8, 1.2, 1.5, 2.0, 2.7])
    plain = classify(data, Classification(method="std_dev"))
    split = classify(data, Classification(method="std_dev"), 0.0)
    assert plain.below is None and any(lo < 0 < hi for lo, hi in zip(plain.lower_bounds(), plain.bins))
    assert split.bins == sorted([*plain.bins, 0.0]) and split.below == sum(b < 0 for b in plain.bins) + 1


def test_a_midpoint_already_a_break_or_outside_the_data_adds_no_class():
    data = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    manual = Classification(method="manual", breaks=[2.0, 4.0, 6.0])
    assert classify(data, manual, 4.0).bins == [2.0, 4.0, 6.0] and classify(data, manual, 4.0).below == 2
    outside = classify(data, manual, 0.0)
    assert outside.bins == [2.0, 4.0, 6.0] and outside.below == 0


def test_colours_run_outwards_from_the_midpoint_on_each_side():
    rdbu = Palette(name="RdBu")
    assert colours(rdbu, 6, below=3) == RdBu6
    assert colours(rdbu, 5, below=3) == RdBu6[:5]            # 3 below, 2 above: the darkest blue unused
    assert colours(rdbu, 4, below=1) == RdBu6[2:]             # 1 below: the palest red, then 3 blues
    assert colours(rdbu, 3, below=0) == RdBu6[3:]             # all above: blues only, palest first
    assert colours(rdbu, 2, below=1) == [colours(rdbu, 2)[0], colours(rdbu, 2)[1]]
    # higher is worse: the good (blue) side is below
    assert colours(Palette(), 4, polarity="higher_is_worse", signed=True, below=2)[0] == "#0571b0"


# --- the demo's diverging map, over HTTP ----------------------------------------------------------
def test_below_average_districts_read_as_below_average(anon):
    doc = anon.get("/maps/turnout-gap-2022/data.json", params={"lang": "en"}).json()
    values, classes, colors = doc["values"]["2022"], doc["classes"]["2022"], doc["colors"]
    reds = {c for v, c in zip(values, classes) if v < 0}
    blues = {c for v, c in zip(values, classes) if v > 0}
    assert reds and blues and max(reds) < min(blues)
    assert all(colors[c] in RdBu6[:3] for c in reds) and all(colors[c] in RdBu6[3:] for c in blues)
    for row in doc["legend"]["2022"]:
        lo, hi = (float(x) for x in row["label"].replace(" – ", "|").split("|"))
        assert not lo < 0 < hi, row


def test_each_year_classified_apart_keeps_one_colour_per_side(map_world, planner, anon):
    """scope: year - a year with fewer classes below the midpoint takes the colours next to
    it, so a colour means the same side on every year."""
    with connect(map_world.db_url, autocommit=True) as conn:
        codes = [r[0] for r in conn.execute("SELECT code FROM gis_data.districts ORDER BY code")]
        upsert_indicator(conn, Indicator(id="test_change", name_ko="변화", name_en="Change", unit="%p",
                                         source="test", polarity="higher_is_better", access_level="public"))
        rng = np.random.default_rng(7)
        rows = [(c, y, float(rng.normal(-1.5 if y == 2020 else 1.5, 2))) for y in (2020, 2021) for c in codes]
        load_values(conn, "test_change", "district", pd.DataFrame(rows, columns=["area_code", "year", "value"]))
    spec = {"id": "test-change-years", "title": "Change", "indicator": "test_change", "area_unit": "district",
            "classification": {"method": "quantiles", "k": 5, "scope": "year"}}
    assert planner.post("/maps", params={"publish": "true"}, json=spec).status_code == 201
    doc = anon.get("/maps/test-change-years/data.json").json()
    colors = doc["colors"]
    below = {year: sum(v <= 0 for v in doc["values"][year]) for year in ("2020", "2021")}
    assert below["2020"] > 15 and below["2021"] < 10          # the two years differ in shape
    for year in ("2020", "2021"):
        for v, c in zip(doc["values"][year], doc["classes"][year]):
            assert _reddish(colors[c]) == (v <= 0), (year, v, colors[c])     # RdBu: red below, blue above


def _reddish(hex_colour: str) -> bool:
    r, b = int(hex_colour[1:3], 16), int(hex_colour[5:7], 16)
    return r > b
