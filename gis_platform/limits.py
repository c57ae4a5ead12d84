"""Request body limits (a pure ASGI middleware).

Uploads may be large (``max_upload_mb``); every other body is small
(``max_request_body_kb``).  A declared Content-Length over the limit is refused before a
byte is read; a chunked body is counted as it streams and cut off at the limit.
"""

from __future__ import annotations

from gis_platform.errors import InvalidParameter, PayloadTooLarge, problem
from gis_platform.responses import dumps

UPLOAD_PATHS = ("/layers/upload",)


class BodyLimitMiddleware:
    def __init__(self, app, *, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    def _limit(self, path: str) -> int:
        if path.startswith(UPLOAD_PATHS) or path.endswith("/data"):
            return self.max_upload
        return self.max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        declared = None
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > limit:
            await _too_large(send, scope.get("path", ""), limit)
            return
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(_detail(limit))
            return message

        await self.app(scope, counting_receive, send)


def _detail(limit: int) -> str:
    if limit >= 1 << 20:
        return f"The request body exceeds the limit of {limit >> 20} MB."
    return f"The request body exceeds the limit of {max(1, limit >> 10)} KB."


async def _too_large(send, path: str, limit: int) -> None:
    body = dumps(problem(413, "Payload too large", _detail(limit), "payload-too-large", instance=path))
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def read_json_body(request, limit_bytes: int, *, what: str = "a JSON object"):
    """A posted JSON body, parsed, with actionable 4xx errors: over ``limit_bytes`` (by the
    declared length or while streaming) is 413; empty or malformed is 400."""
    import orjson


    too_large = f"The request body is larger than {limit_bytes // 1024} KB."
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLarge(too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit_bytes:
            raise PayloadTooLarge(too_large)
    if not bytes(body).strip():
        raise InvalidParameter(f"Post {what} as the request body.", parameter="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidParameter("The request body is not valid JSON.", parameter="body") from None
