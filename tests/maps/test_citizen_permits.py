"""The OPEN permit pages speak the citizen's language - Korean or English, chosen like the
map gallery's (?lang=, then Accept-Language) - and never show the applicant, in either."""

from __future__ import annotations

import pytest

from tests.maps.test_maps_browser import chromium_page

KO_UI = ["도로굴착 인허가 현황", "허가번호", "종류", "목적", "기간", "상태", "담당 부서", "굴착 깊이 (m)"]
EN_UI = ["Road-works permits", "Permit", "Type", "Purpose", "Period", "Status", "Responsible office",
         "Depth (m)"]
KO_ONE = ["현재 상태", "처리 경과", "시설 종류", "자치구 코드"]
EN_ONE = ["Current status", "Timeline", "Facility", "District code"]
ENGLISH_WORDS = ["Road-works", "permits", "Purpose", "Period", "office", "excavation", "occupancy",
                 "Timeline", "Current status", "Next possible", "received", "reviewed", "approved",
                 "previous", "Home"]


@pytest.fixture
def permit_no(anon) -> str:
    doc = anon.get("/permits", params={"f": "json", "status": "works", "limit": 1}).json()
    return doc["permits"][0]["permit_no"]


def _text(html: str) -> str:
    from html.parser import HTMLParser

    out: list[str] = []

    class Text(HTMLParser):
        skip = 0

        def handle_starttag(self, tag, attrs):
            self.skip += tag in ("script", "style")

        def handle_endtag(self, tag):
            self.skip -= tag in ("script", "style")

        def handle_data(self, data):
            if not self.skip:
                out.append(data)

    Text().feed(html)
    return " ".join(out)


def _applicant(planner, permit_no: str) -> list[str]:
    applicant = planner.get(f"/permits/{permit_no}/applicant").json()["applicant"]
    private = [v for k, v in applicant.items() if k in ("name", "contact", "address") and v]
    assert private
    return private


def test_the_permit_list_is_all_korean_or_all_english(anon, planner, permit_no):
    ko = anon.get("/permits", params={"f": "html", "lang": "ko", "limit": 1000})
    en = anon.get("/permits", params={"f": "html", "lang": "en", "limit": 1000})
    assert ko.headers["content-language"] == "ko" and '<html lang="ko">' in ko.text
    assert en.headers["content-language"] == "en" and '<html lang="en">' in en.text
    ko_text, en_text = _text(ko.text), _text(en.text)
    assert all(w in ko_text for w in KO_UI) and "굴착" in ko_text
    assert [w for w in ENGLISH_WORDS if w in ko_text] == []
    assert all(w in en_text for w in EN_UI) and "excavation" in en_text
    assert [w for w in KO_UI if w in en_text] == []
    # links keep the language
    assert "?f=html&amp;lang=ko" in ko.text and "lang=en" in en.text
    private = _applicant(planner, permit_no)           # in no language, to nobody
    for lang in ("ko", "en"):
        for who in (anon, planner):
            body = who.get("/permits", params={"f": "html", "lang": lang, "limit": 1000}).text
            assert [v for v in private if v in body] == [], lang


def test_one_permit_is_all_korean_or_all_english(anon, planner, permit_no):
    ko = _text(anon.get(f"/permits/{permit_no}", params={"f": "html", "lang": "ko"}).text)
    en = _text(anon.get(f"/permits/{permit_no}", params={"f": "html", "lang": "en"}).text)
    private = _applicant(planner, permit_no)
    for lang in ("ko", "en"):
        for who in (anon, planner):
            body = who.get(f"/permits/{permit_no}", params={"f": "html", "lang": lang}).text
            assert [v for v in private if v in body] == [], lang
    assert all(w in ko for w in KO_ONE) and "공사중" in ko and "준공" in ko      # works -> completed next
    assert [w for w in ENGLISH_WORDS if w in ko] == []
    assert all(w in en for w in EN_ONE) and "Works under way · 공사중" in en and "Completed · 준공" in en
    assert [w for w in KO_ONE if w in en] == []


@pytest.mark.parametrize("header,lang", [("en-US,en;q=0.9", "en"), ("ko-KR,ko;q=0.9,en;q=0.5", "ko"),
                                         ("fr, en;q=0.3", "en"), ("en;q=0.2, ko;q=0.8", "ko"),
                                         ("fr", "ko"), ("", "ko"), ("en;q=abc", "ko")])
def test_accept_language_chooses_without_lang(anon, permit_no, header, lang):
    for path in ("/permits", f"/permits/{permit_no}"):
        r = anon.get(path, params={"f": "html"}, headers={"Accept-Language": header})
        assert r.status_code == 200 and r.headers["content-language"] == lang, (path, header)
        assert "Accept-Language" in r.headers["vary"]
    r = anon.get("/permits", params={"f": "html", "lang": "en"}, headers={"Accept-Language": "ko"})
    assert r.headers["content-language"] == "en"


def test_bad_language_input_is_never_a_server_error(anon, permit_no):
    assert anon.get("/permits", params={"f": "html", "lang": "xx"}).headers["content-language"] == "ko"
    assert anon.get("/permits", params={"f": "html", "lang": "x" * 50}).status_code == 400
    assert anon.get(f"/permits/{permit_no}", params={"f": "html", "lang": "<script>"}).status_code == 200
    assert anon.get("/permits/NOPE-1", params={"f": "html", "lang": "en"}).status_code == 404


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize("viewport", [(1100, 900), (390, 844)], ids=["desktop", "phone"])
def test_permit_pages_in_chromium(map_world, permit_no, artifacts, lang, viewport):
    base = map_world.server.url
    seen = {}
    with chromium_page(viewport=viewport) as (page, errors, requests):
        for name, url in (("list", f"{base}/permits?f=html&lang={lang}&limit=20"),
                          ("one", f"{base}/permits/{permit_no}?f=html&lang={lang}")):
            page.goto(url)
            page.wait_for_load_state("networkidle")
            seen[name] = {"ready": page.evaluate("window.__mapReady === true"),
                          "overflow": page.evaluate("document.scrollingElement.scrollWidth - innerWidth"),
                          "lang": page.evaluate("document.documentElement.lang"),
                          "text": page.inner_text("body")}
            page.screenshot(path=str(artifacts / f"permits-{name}-{lang}-{viewport[0]}.png"), full_page=True)
        page.click("nav.langs a[lang=%s]" % ("en" if lang == "ko" else "ko"))
        page.wait_for_load_state("networkidle")
        switched = page.evaluate("document.documentElement.lang")
    assert errors == [] and all(u.startswith(base) for u in requests)
    assert all(s["ready"] and s["lang"] == lang for s in seen.values())
    assert all(s["overflow"] <= 0 for s in seen.values()), seen     # no sideways scrolling on a phone
    ui = KO_UI + KO_ONE if lang == "ko" else EN_UI + EN_ONE
    text = seen["list"]["text"] + seen["one"]["text"]
    assert all(w in text for w in ui)
    assert switched == ("en" if lang == "ko" else "ko")
