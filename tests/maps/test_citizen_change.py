"""A change map: each area's value in one year minus another, with classes of its own that
split at zero, and sentences that say where the value rose and fell."""

from __future__ import annotations

import uuid

import pytest


def _spec(**change) -> dict:
    return {"id": "t-" + uuid.uuid4().hex[:8], "indicator": "cctv_new_per_km2", "area_unit": "district",
            "title": {"ko": "신규 CCTV 밀도 변화", "en": "Change in new CCTV density"},
            "classification": {"method": "quantiles", "k": 5}, "change": change}


def _values(anon, year: int) -> dict[str, float]:
    doc = anon.get("/indicators/cctv_new_per_km2/values", params={"year": year, "unit": "district"}).json()
    return {r["area_code"]: r["value"] for r in doc["values"]}


def test_a_change_map_shows_the_difference_with_classes_split_at_zero(planner, anon):
    spec = _spec(start=2014, end=2016)
    r = planner.post("/maps", params={"publish": "true"}, json=spec)
    assert r.status_code == 201, r.text
    doc = anon.get(f"/maps/{spec['id']}/data.json", params={"lang": "ko"}).json()
    before, after = _values(anon, 2014), _values(anon, 2016)
    assert doc["years"] == [2016]
    for area, v in zip(doc["areas"], doc["values"]["2016"]):
        assert v == pytest.approx(after[area["code"]] - before[area["code"]])
    values, classes, colors = doc["values"]["2016"], doc["classes"]["2016"], doc["colors"]
    fell = {c for v, c in zip(values, classes) if v <= 0}
    rose = {c for v, c in zip(values, classes) if v > 0}
    assert fell and rose and max(fell) < min(rose)                     # its own classes, split at 0
    assert all(int(colors[c][1:3], 16) > int(colors[c][5:7], 16) for c in fell)     # red: fewer
    assert all(int(colors[c][1:3], 16) < int(colors[c][5:7], 16) for c in rose)     # blue: more
    assert doc["legend_title"] == "신규 CCTV 밀도 변화 2014–2016 (대/km²)"
    summary = doc["summary"]["2016"]
    assert summary.startswith("2014년에서 2016년 사이 신규 CCTV 밀도는 자치구 25곳 중 ")
    assert "가장 많이 늘었고" in summary and "가장 많이 줄었습니다" in summary and "(" not in summary
    en = anon.get(f"/maps/{spec['id']}/data.json", params={"lang": "en"}).json()
    assert en["legend_title"] == "Change in New CCTV density, 2014–2016 (대/km²)"
    assert en["summary"]["2016"].startswith("From 2014 to 2016, New CCTV density across 25 areas")
    assert en["table"]["years"] == ["2014–2016"]
    for path in ("", "/map.html", "/map.png", "/thumbnail.png", "/embed"):
        assert anon.get(f"/maps/{spec['id']}{path}").status_code == 200, path


def test_a_change_of_a_percentage_is_in_percentage_points(planner, map_world):
    import pandas as pd

    from gis_platform.db.connections import connect
    from indicators.store import Indicator, load_values, upsert_indicator

    with connect(map_world.db_url, autocommit=True) as conn:       # a share in two years
        codes = [r[0] for r in conn.execute("SELECT code FROM gis_data.districts ORDER BY code")]
        upsert_indicator(conn, Indicator(id="test_share", name_ko="점유율", name_en="Share", unit="%",
                                         access_level="public"))
        rows = [(c, y, 40.0 + i + (1.5 + i / 10 if y == 2022 else 0))
                for y in (2018, 2022) for i, c in enumerate(codes)]
        load_values(conn, "test_share", "district", pd.DataFrame(rows, columns=["area_code", "year", "value"]))
    spec = {**_spec(start=2018, end=2022), "indicator": "test_share"}
    r = planner.post("/maps", json=spec)
    assert r.status_code == 201, r.text
    doc = planner.get(f"/maps/{spec['id']}/data.json", params={"lang": "ko"}).json()
    assert doc["legend_title"] == "점유율 변화 2018–2022 (%p)"
    assert sorted(doc["values"]["2022"]) == pytest.approx([1.5 + i / 10 for i in range(25)])
    assert "+3.90%p로 가장 많이 늘었고" in doc["summary"]["2022"]
    assert "+1.50%p로 가장 적게 늘었습니다" in doc["summary"]["2022"]
    assert all(int(c[1:3], 16) < int(c[5:7], 16) for c in doc["colors"])      # every area rose: blues


@pytest.mark.parametrize("change,extra,field,words", [
    ({"start": 2016, "end": 2016}, {}, "change", "two different years"),
    ({"start": 2012, "end": 2016}, {}, "change", "no values for [2012]"),
    ({"start": 2014}, {}, "change.end", "Field required"),
    ({"start": 2014, "end": 2016, "by": 1}, {}, "change.by", "unknown field"),
    ({"start": 2014, "end": 2016}, {"year": 2016}, "(spec)", "leave out year and years"),
])
def test_a_bad_change_is_a_422_naming_the_field(planner, change, extra, field, words):
    r = planner.post("/maps", json={**_spec(**change), **extra})
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
