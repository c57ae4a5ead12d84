"""The screen-reader summary of every map reads as Korean is written: particles chosen by the
final sound of the word before them (names, numbers with units), never "이(가)"."""

from __future__ import annotations

import re

DEMO = ("turnout-2022", "turnout-gap-2022", "cctv-new-density", "bike-access-dong", "bike-hex-500m")


def test_the_summaries_from_the_issue_read_right(anon):
    turnout = anon.get("/maps/turnout-2022/data.json", params={"lang": "ko"}).json()["summary"]["2022"]
    gap = anon.get("/maps/turnout-gap-2022/data.json", params={"lang": "ko"}).json()["summary"]["2022"]
    assert turnout.startswith("2022년 투표율은 자치구 25곳 중 서초구가 80.6%로 가장 높고, "
                              "강북구가 74.2%로 가장 낮습니다.")
    assert gap.startswith("2022년 투표율 차이는 자치구 25곳 중 서초구가 2.7%p로 가장 높고, "
                          "강북구가 -3.8%p로 가장 낮습니다.")


def test_no_summary_leaves_the_particle_to_the_reader(anon):
    for mid in DEMO:
        doc = anon.get(f"/maps/{mid}/data.json", params={"lang": "ko"}).json()
        page = anon.get(f"/maps/{mid}", params={"lang": "ko"}).text
        for year, text in doc["summary"].items():
            assert not re.search(r"\((이|가|은|는|을|를|으|과|와)\)", text), (mid, year, text)
        assert doc["summary"][str(doc["year"])] in page
