"""/docs in headless Chromium with no internet: Swagger UI comes from the platform itself
(vendored by ``make assets``), passes the platform's Content-Security-Policy, lists the
operations of /openapi.json and runs one ("Try it out") against the server."""

from __future__ import annotations

import pytest

from tests.browser import chromium, wait_until

COLLECTIONS = '.opblock.opblock-get .opblock-summary-path[data-path="/collections"]'
# Records CSP violations from the first byte on (an init script is not subject to the CSP).
CSP_WATCH = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")


def offline_only(ctx, base: str, aborted: list[str]) -> None:
    """Abort every request that is not to the server under test, as on a machine offline."""
    def handle(route):
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()
    ctx.route("**/*", handle)


@pytest.mark.browser
def test_docs_render_the_api_offline_and_try_it_out_works(server, artifacts):

    base = server.url
    errors: list[str] = []
    aborted: list[str] = []
    loaded: list[str] = []
    with chromium((1200, 900)) as ctx:
        offline_only(ctx, base, aborted)
        ctx.add_init_script(CSP_WATCH)
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfinished", lambda r: loaded.append(r.url))
        response = page.goto(f"{base}/docs")
        csp = response.headers.get("content-security-policy", "")
        wait_until(page, f"!!(window.__docs && window.__docs.ready && "
                         f"document.querySelector('{COLLECTIONS}'))", 60)
        operations = page.evaluate(
            "Array.from(document.querySelectorAll('.opblock-summary-path')).length")
        page.screenshot(path=str(artifacts / "docs.png"))
        page.click(COLLECTIONS)
        page.click(".opblock.is-open .try-out__btn")
        page.click(".opblock.is-open .execute")
        status = ".opblock.is-open .live-responses-table tr.response .response-col_status"
        wait_until(page, f"!!document.querySelector('{status}')", 30)
        tried = page.inner_text(status).strip()
        page.screenshot(path=str(artifacts / "docs-try-it-out.png"))
        violations = page.evaluate("window.__csp")
    assert aborted == [], aborted
    assert errors == [] and violations == []
    assert "script-src 'self';" in csp and "unsafe" not in csp.split("script-src")[1].split(";")[0]
    assert f"{base}/static/vendor/swagger-ui/swagger-ui-bundle.js" in loaded
    assert f"{base}/openapi.json" in loaded
    assert operations > 20
    assert tried == "200"
