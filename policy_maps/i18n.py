"""UI texts in Korean and English, and choosing the language of a request."""

from __future__ import annotations

LANGS = ("ko", "en")

TEXTS = {
    "ko": {"site": "서울 정책지도", "gallery": "정책지도 갤러리", "intro": "서울시가 공개한 정책 지표 지도입니다.",
           "search": "검색", "search_label": "지도 검색", "search_hint": "제목이나 주제 (예: 투표율, 따릉이)",
           "found": "지도 %d개", "language": "언어", "map": "지도", "year": "연도",
           "compare": "비교할 연도", "compare_none": "비교 안 함", "swipe": "좌우 비교 위치",
           "legend": "범례", "method": "구간 분류", "table": "데이터 표 보기", "area": "지역",
           "share": "공유 · 내려받기", "permalink": "고유 주소", "embed": "웹페이지에 넣기 (iframe)",
           "download": "내려받기", "data_versions": "데이터 버전", "draft": "초안",
           "m_quantiles": "분위수", "m_equal_interval": "등간격", "m_natural_breaks": "자연 구분 (Fisher-Jenks)",
           "m_std_dev": "표준편차", "m_manual": "사용자 지정"},
    "en": {"site": "Seoul policy maps", "gallery": "Policy map gallery",
           "intro": "Maps of policy indicators published by the city.", "search": "Search",
           "search_label": "Search the maps", "search_hint": "A title or topic (e.g. turnout, bike)",
           "found": "%d maps", "language": "Language", "map": "Map", "year": "Year", "legend": "Legend",
           "compare": "Compare with", "compare_none": "no comparison", "swipe": "Divider position",
           "method": "Classes", "table": "Show the data table", "area": "Area",
           "share": "Share and download", "permalink": "Permalink", "embed": "Embed (iframe)",
           "download": "Download", "data_versions": "Data versions", "draft": "Draft",
           "m_quantiles": "quantiles", "m_equal_interval": "equal interval",
           "m_natural_breaks": "natural breaks (Fisher-Jenks)", "m_std_dev": "standard deviation",
           "m_manual": "manual breaks"},
}


def choose_lang(lang: str | None, accept_language: str | None, default: str = "ko") -> str:
    """``?lang=`` if valid, else the first of ko/en in Accept-Language (by q), else ``default``."""
    if lang in LANGS:
        return lang
    best, best_q = None, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        code = tag.strip().lower()[:2]
        if code in LANGS and q > best_q:
            best, best_q = code, q
    return best or (default if default in LANGS else "ko")
