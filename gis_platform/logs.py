"""Structured JSON logs and the request-log middleware."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import orjson

from gis_platform import metrics


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    # Standard LogRecord attributes, plus uvicorn's ANSI-coloured duplicate of the message.
    _std = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
        "message", "asctime", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._std and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "info") -> None:
    """Route the platform's and uvicorn's logs through the JSON formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # The request middleware writes access logs; uvicorn's own would duplicate them.
    logging.getLogger("uvicorn.access").disabled = True


access_log = logging.getLogger("gis_platform.access")


class RequestLogMiddleware:
    """Pure ASGI middleware, the one observer of every request.

    A request id per request (``X-Request-Id`` in and out), one JSON access-log line,
    Prometheus request metrics (:mod:`gis_platform.metrics`), and the request timeout: a
    request that has not *started* its response within ``timeout`` seconds is cancelled and
    answered 503 (a started response, e.g. a streamed export, is never cut off).
    """

    def __init__(self, app, *, timeout: float | None = None) -> None:
        self.app = app
        self.timeout = timeout if timeout and timeout > 0 else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for key, value in scope.get("headers", []):
            if key == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
                break
        request_id = request_id or os.urandom(8).hex()   # 16 hex digits, as uuid4().hex[:16] gave
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = {"code": 500, "bytes": 0, "started": False}
        deadline = None

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                if deadline is not None and not deadline.expired():
                    deadline.reschedule(None)  # the response is under way: no more timeout
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                status["bytes"] += len(message.get("body", b""))
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            if self.timeout is None:
                await self.app(scope, receive, send_wrapper)
            else:
                try:
                    async with asyncio.timeout(self.timeout) as deadline:
                        await self.app(scope, receive, send_wrapper)
                except TimeoutError:
                    if status["started"]:
                        raise
                    await _timed_out(send_wrapper, scope.get("path", ""), self.timeout)
        finally:
            metrics.IN_FLIGHT.dec()
            seconds = time.perf_counter() - start
            path = scope.get("path", "")
            metrics.observe_request(path, scope.get("method", ""), status["code"], seconds,
                                    status["bytes"])
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": path,
                        "status": status["code"],
                        "bytes": status["bytes"],
                        "ms": round(seconds * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )


async def _timed_out(send, path: str, timeout: float) -> None:
    body = orjson.dumps({
        "type": "/problems/request-timeout", "title": "Request timed out", "status": 503,
        "detail": f"The request took longer than the server allows ({timeout:g} s). Narrow it "
                  "(a smaller area, a stricter filter, a lower limit) or retry shortly.",
        "instance": path})
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", b"5")]})
    await send({"type": "http.response.body", "body": body})
