"""Classification equals mapclassify's; specs fail with messages that name the field and the fix."""

from __future__ import annotations

import warnings

import mapclassify as mc
import numpy as np
import pytest

from policy_maps.classify import classify, colours, is_signed
from policy_maps.spec import Classification, Palette, SpecError, parse_spec

VALUES = np.array([3.1, 7.4, 7.4, 12.0, 15.5, 18.2, 22.9, 30.0, 41.7, 55.3, 56.0, 80.1, np.nan])
BASE = {"id": "t", "title": "T", "indicator": "turnout", "area_unit": "district"}


@pytest.mark.parametrize("method,direct", [
    ("quantiles", lambda y: mc.Quantiles(y, k=5)),
    ("equal_interval", lambda y: mc.EqualInterval(y, k=5)),
    ("natural_breaks", lambda y: mc.FisherJenks(y, k=5)),
    ("std_dev", lambda y: mc.StdMean(y)),
    ("manual", lambda y: mc.UserDefined(y, bins=[10, 20, 50])),
])
def test_classes_are_exactly_mapclassifys(method, direct):
    spec = Classification(method=method, k=5, breaks=[10, 20, 50] if method == "manual" else None)
    got = classify(VALUES, spec)
    y = VALUES[~np.isnan(VALUES)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = direct(y)
    assert got.bins == pytest.approx(list(ref.bins))
    assert got.yb[~np.isnan(VALUES)].tolist() == list(ref.yb)
    assert got.yb[-1] == -1          # the missing value is "no data", not a class


def test_signed_data_gets_a_diverging_palette_with_good_at_the_blue_end():
    signed = np.array([-2.0, -1.0, 0.5, 3.0])
    assert is_signed(signed)
    better = colours(Palette(), 5, polarity="higher_is_better", signed=True)
    worse = colours(Palette(), 5, polarity="higher_is_worse", signed=True)
    assert better == worse[::-1] and better[-1] == "#0571b0"


@pytest.mark.parametrize("patch,field,fragment", [
    ({"palette": {"name": "jet"}}, "palette.name", "colour-blind-safe"),
    ({"classification": {"method": "manual", "breaks": [5, 3]}}, "classification", "strictly ascending"),
    ({"classification": {"method": "manual"}}, "classification", "needs 'breaks'"),
    ({"classification": {"method": "jenks"}}, "classification.method", "quantiles"),
    ({"classification": {"k": 12}}, "classification.k", "less than or equal to 9"),
    ({"colour": "red"}, "colour", "unknown field (allowed: id, title"),
    ({"id": "Bad Id"}, "id", "'Bad Id'"),
    ({"palette": {"colors": ["#fff", "red"]}}, "palette.colors", "#rrggbb"),
    ({"title": {}}, "title", "Korean (ko) or English (en)"),
])
def test_an_invalid_spec_names_the_field_and_how_to_fix_it(patch, field, fragment):
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **patch})
    fields = {e["field"]: e["message"] for e in err.value.extra["errors"]}
    assert field in fields, fields
    assert fragment in fields[field]
    assert field in err.value.detail and err.value.status == 422


def test_a_spec_lists_every_problem_at_once():
    with pytest.raises(SpecError) as err:
        parse_spec({"id": "x", "title": "T"})
    assert {e["field"] for e in err.value.extra["errors"]} == {"indicator", "area_unit"}
