"""The printable dig-check report and the OPEN permit pages in headless Chromium."""

from __future__ import annotations

import pytest

from tests.browser import chromium
from tests.domains.conftest import excavation_lonlat
from tests.domains.test_permits import APPLICANT, application, assert_private


def _serve(html: str):
    return lambda route: route.fulfill(status=200, body=html, content_type="text/html")


def open_pages(base: str, pages: list[tuple[str, str | None, str]], artifacts) -> list[dict]:
    """Load each (name, html or None, url) page; returns what the browser saw."""

    seen = []
    with chromium((1100, 900)) as ctx:
        for name, html, url in pages:
            page = ctx.new_page()
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
            page.on("request", lambda r, q=requests: q.append(r.url))
            if html is not None:
                # The report comes from a POST: serve its HTML at a same-origin URL.
                page.route(url, _serve(html))
            page.goto(url)
            page.wait_for_function("window.__reportReady || window.__mapReady", timeout=30_000)
            paths = page.evaluate(
                "document.querySelectorAll('.leaflet-overlay-pane path:not(.context)').length")
            context = page.evaluate(
                "document.querySelectorAll('.leaflet-overlay-pane path.context').length")
            text = page.content()
            page.screenshot(path=str(artifacts / f"domains-{name}.png"), full_page=True)
            seen.append({"errors": errors, "requests": requests, "paths": paths, "text": text,
                         "context": context})
            page.close()
    return seen


@pytest.mark.browser
def test_report_and_permit_pages_render_without_console_errors(dom_server, dc, planner, artifacts):
    base = dom_server.url
    report = dc.post("/dig-check?f=html", json={"geometry": excavation_lonlat(), "depth_m": 1.0},
                     headers=planner)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "CONFLICT" in report.text and "서울도시가스" in report.text
    no = dc.post("/permits", json=application(), headers=planner).json()["permit_no"]
    for s in ("reviewed", "approved"):
        dc.post(f"/permits/{no}/status", json={"status": s}, headers=planner)
    seen = open_pages(base, [
        ("dig-report", report.text, f"{base}/__report"),
        ("permits", None, f"{base}/permits?f=html"),
        ("permit", None, f"{base}/permits/{no}?f=html"),
    ], artifacts)
    for s in seen:
        assert s["errors"] == [], s["errors"]
        assert all(u.startswith(base) for u in s["requests"]), s["requests"]
    # the report map draws the area and the 7 facilities; the permit maps their polygon
    assert seen[0]["paths"] == 8
    # under it, the road centrelines around the excavation from the public roads layer
    assert seen[0]["context"] >= 1
    # the permit's polygon and the dot that keeps it visible at city scale
    assert seen[1]["paths"] == 2 and seen[2]["paths"] == 2
    for s in seen[1:]:
        assert_private(s["text"])
        assert APPLICANT["name"] not in s["text"]
    assert "검토완료" in seen[2]["text"] and "허가" in seen[2]["text"]


@pytest.mark.browser
def test_report_tooltips_show_facility_text_as_text(dom_server, dc, planner, dom_db):
    import psycopg

    hostile = '<img src=x onerror="window.__pwned=1">'
    with psycopg.connect(dom_db) as conn:
        conn.execute("UPDATE gis_data.underground_facilities SET owner = %s", (hostile,))
    report = dc.post("/dig-check?f=html", json={"geometry": excavation_lonlat(), "depth_m": 1.0},
                     headers=planner)
    assert report.status_code == 200
    with chromium(None) as ctx:
        page = ctx.new_page()
        url = f"{dom_server.url}/__report"
        page.route(url, _serve(report.text))
        page.goto(url)
        page.wait_for_function("window.__reportReady", timeout=30_000)
        shapes = page.locator(".leaflet-overlay-pane path.leaflet-interactive")
        for i in range(shapes.count()):
            shapes.nth(i).dispatch_event("mouseover")
        tips = page.locator(".leaflet-tooltip").all_inner_texts()
        pwned = page.evaluate("window.__pwned")
    assert pwned is None
    assert tips and all(hostile in t for t in tips), tips
