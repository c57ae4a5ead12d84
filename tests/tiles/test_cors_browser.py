"""A web map on another origin uses the public API in a real browser (#20): anonymous reads
cross origins; keys and writes do not."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from tests.browser import chromium, wait_until

PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><script type="module">
const api = %s;
const out = window.__result = {};
async function get(name, url, init) {
  try { const r = await fetch(api + url, init); out[name] = {status: r.status, etag: r.headers.get('etag'),
        crs: r.headers.get('content-crs'), body: r.headers.get('content-type') || ''}; }
  catch (e) { out[name] = {error: String(e)}; }
}
await get('style', '/tiles/style.json?layers=districts');
await get('tile', '/collections/districts/tiles/WebMercatorQuad/11/1746/793.mvt');
await get('items', '/collections/districts/items?limit=2');
await get('revalidate', '/collections/districts/items?limit=2', {headers: {'If-None-Match': 'x'}});
await get('with_key', '/collections/districts/items?limit=2', {headers: {'Authorization': 'Bearer ' + %s}});
await get('write', '/layers/districts', {method: 'PATCH', headers: {'Content-Type': 'application/json'},
          body: '{"title": "x"}'});
out.done = true;
</script></body></html>"""


@pytest.fixture
def other_origin():
    """A second web server on loopback: another origin, like a newspaper's site."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", pages
    finally:
        srv.shutdown()


@pytest.mark.browser
def test_a_map_on_another_origin_reads_public_data_and_nothing_else(city_server, planner_token, other_origin):

    site, pages = other_origin
    pages["/map.html"] = (PAGE % (json.dumps(city_server.url), json.dumps(planner_token))).encode()
    with chromium(None) as ctx:
        page = ctx.new_page()
        page.goto(f"{site}/map.html")
        wait_until(page, "!!(window.__result && window.__result.done)", 30)
        result = page.evaluate("window.__result")
    assert result["style"]["status"] == 200 and "json" in result["style"]["body"]
    assert result["tile"]["status"] in (200, 204) and result["tile"]["etag"]   # exposed to the page
    assert result["items"]["status"] == 200 and result["items"]["crs"]
    assert result["revalidate"]["status"] == 200                            # a preflighted GET
    assert "error" in result["with_key"]          # a key does not cross origins
    assert "error" in result["write"]             # nor does a write


def test_preflights_and_plain_requests(city_server):
    site = "https://news.example"
    with city_server.client() as c:
        r = c.options("/collections/districts/items", headers={
            "Origin": site, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match"})
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
        assert "GET" in r.headers["access-control-allow-methods"]
        for method, hdrs in (("PATCH", ""), ("GET", "authorization"), ("GET", "x-api-key")):
            r = c.options("/collections/districts/items", headers={
                "Origin": site, "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": hdrs})
            assert "access-control-allow-origin" not in r.headers, (method, hdrs)
        r = c.get("/collections/districts/items?limit=1", headers={"Origin": site})
        assert r.headers["access-control-allow-origin"] == "*" and "ETag" in r.headers["access-control-expose-headers"]
        # a request carrying credentials gets no CORS grant (it cannot come from a page elsewhere)
        r = c.get("/collections/districts/items?limit=1", headers={"Origin": site, "X-API-Key": "nope"})
        assert "access-control-allow-origin" not in r.headers
        # same-origin and non-browser clients see no change
        assert "access-control-allow-origin" not in c.get("/collections/districts/items?limit=1").headers
