"""HEAD for every GET (pure ASGI middleware).

GDAL and QGIS open a pasted URL through ``/vsicurl/``, which starts with ``HEAD`` to learn
the length and the type of what it is about to read in byte ranges; download managers and
link checkers do the same.  FastAPI routes answer ``GET`` only, so every ``HEAD`` was a 405.

:class:`HeadMiddleware` answers a ``HEAD`` by running the ``GET`` the same request would be
and sending its status and headers without the body.  The headers are then the ``GET``'s by
construction - ``Content-Length``, ``ETag``, ``Content-Encoding`` (compression is decided
inside, on the ``GET``), the CSP hash of a page, an access decision's 404 - which is what RFC
9110 (9.3.2) asks, and which no per-route ``HEAD`` handler would keep true as routes change.
The response ends as soon as the headers are out, and the app is stopped at the first body
chunk it sends, so a ``HEAD`` on a large file or a streamed response (an event stream too)
costs its first chunk, not the whole body.

A route that can answer a ``HEAD`` more cheaply or differently asks :func:`is_head` (the
export route builds the file so that it can state its length).  Middleware outside this one
(audit, request log, CORS, rate limit) sees the real method.
"""

from __future__ import annotations

from starlette.requests import Request

#: Scope key set on the ``GET`` a ``HEAD`` is answered with.
HEAD_KEY = "gis_platform.head"


def is_head(request: Request) -> bool:
    """Whether ``request`` is the ``GET`` :class:`HeadMiddleware` answers a ``HEAD`` with."""
    return bool(request.scope.get(HEAD_KEY))


class _BodyCut(Exception):
    """Raised into the app once the headers are out: the rest of the body is not wanted."""


class HeadMiddleware:
    """Answers ``HEAD`` with the status and headers of the same request's ``GET``; registered
    around the compression (see :func:`gis_platform.app.create_app`)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = False

        async def send_headers_only(message):
            nonlocal done
            if done:
                raise _BodyCut
            if message["type"] == "http.response.start":
                # The headers are final here (compression decides on the first body chunk,
                # before it lets the start go): the response is complete, the client free.
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                done = True

        try:
            await self.app({**scope, "method": "GET", HEAD_KEY: True}, receive, send_headers_only)
        except _BodyCut:
            pass
