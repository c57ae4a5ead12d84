"""Cross-origin use of the public, anonymous API (pure ASGI middleware).

A web map on any other origin - a newspaper, a civic-tech app, a notebook - may load the
style, the tiles, GeoJSON and the API documents the platform serves to anyone.  What an
anonymous caller may read is public by the access decision (:mod:`gis_platform.access`), so
a response to a request *without credentials* carries ``Access-Control-Allow-Origin: *``.
Credentials never cross: ``*`` forbids the browser from sending cookies or keys with such a
request, and a preflight asking to send ``Authorization`` or ``X-API-Key`` (or to write:
``POST``, ``PUT``...) is not granted here.  Origins an operator trusts with keys and writes are
listed in ``GIS_CORS_ORIGINS`` and handled by Starlette's CORSMiddleware, which sits in front
of this one.

Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) for ``GET``/``HEAD`` with safe
request headers are answered here (204, cached a day by the browser).  A plain ``OPTIONS``
goes to the routes (the editable items endpoints answer it with ``Allow``).
"""

from __future__ import annotations

#: Request headers a cross-origin reader may send (beyond the CORS-safelisted ones).
ALLOWED_HEADERS = ("accept", "accept-language", "content-language", "range", "if-none-match",
                   "if-modified-since", "cache-control", "pragma")
#: Response headers a cross-origin reader may see.
EXPOSED = (b"ETag, Link, Content-Length, Content-Range, Accept-Ranges, Content-Crs, "
           b"Content-Disposition, OGC-NumberMatched, X-Request-Id, Retry-After")
_CREDENTIALS = (b"authorization", b"x-api-key", b"cookie")


class PublicCorsMiddleware:
    def __init__(self, app, *, trusted: list[str] | tuple[str, ...] = (), max_age: int = 86400) -> None:
        self.app = app
        self.trusted = {o.rstrip("/").encode() for o in trusted}
        self.max_age = str(int(max_age)).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin")
        if origin is None or origin in self.trusted or b"*" in self.trusted:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(headers, send)
            return
        if method not in ("GET", "HEAD") or any(k in headers for k in _CREDENTIALS):
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                out = [(k, v) for k, v in message.get("headers", [])
                       if not k.startswith(b"access-control-")]
                out += [(b"access-control-allow-origin", b"*"),
                        (b"access-control-expose-headers", EXPOSED)]
                message["headers"] = out
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _preflight(self, headers: dict, send) -> None:
        wanted = headers.get(b"access-control-request-method", b"").decode("latin-1").upper()
        asked = [h.strip().lower() for h in headers.get(b"access-control-request-headers", b"")
                 .decode("latin-1").split(",") if h.strip()]
        ok = wanted in ("GET", "HEAD") and all(h in ALLOWED_HEADERS for h in asked)
        out = [(b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
               (b"content-length", b"0")]
        if ok:
            out += [(b"access-control-allow-origin", b"*"),
                    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
                    (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
                    (b"access-control-max-age", self.max_age)]
        # Not granted: no CORS headers - the browser refuses the request it asked about.
        await send({"type": "http.response.start", "status": 204 if ok else 403, "headers": out})
        await send({"type": "http.response.body", "body": b""})
