"""Rate limits per API key and per client IP: token buckets in memory, per worker process.

Each bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a
request takes one token, and a request finding its bucket empty gets ``429`` problem+json
with ``Retry-After`` (whole seconds until a token is back).  The check is O(1): one dict
lookup and a little arithmetic.  A limit of ``0`` switches that limit off (and with both
off the middleware is not installed at all).

Which bucket: a request carrying an API key (``Authorization: Bearer gis_<id>_...`` or
``X-API-Key``) is charged to the key id's bucket; any other request to its client IP's
bucket.  The key id is read from the token *without* verifying it (that happens later, in
the route), so a caller inventing key ids to dodge its IP limit is caught another way: a
request answered ``401`` is also charged to its IP's bucket.

Limits are per worker process (no shared state): with ``N`` workers the effective limit
is up to ``N`` times the setting.  Behind a proxy, run uvicorn with ``--proxy-headers`` and
a trusted ``--forwarded-allow-ips`` so the client IP is the real one.
"""

from __future__ import annotations

import base64
import math
import time

from gis_platform.errors import problem
from gis_platform.responses import dumps

EXEMPT_PATHS = ("/health", "/ready")


class TokenBuckets:
    """``key -> (tokens, last refill time)``; bounded: full buckets are pruned when too many."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self.max_keys = max_keys
        self.buckets: dict[str, list[float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token; returns 0.0 when allowed, else seconds until one is available."""
        now = time.monotonic() if now is None else now
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= self.max_keys:
                self._prune(now)
            self.buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return 0.0
        b[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [k for k, (tok, at) in self.buckets.items() if tok + (now - at) * self.rate >= self.burst]
        for k in full:
            del self.buckets[k]
        if len(self.buckets) >= self.max_keys:     # still full of busy clients: start over
            self.buckets.clear()


def _key_id(headers) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "basic":      # the key is the password (see security.py)
                try:
                    token = base64.b64decode(token).decode("utf-8").partition(":")[2]
                except (ValueError, UnicodeDecodeError):
                    return None
        elif name == b"x-api-key":
            token = value.decode("latin-1").strip()
        else:
            continue
        parts = token.split("_", 2)
        if len(parts) == 3 and parts[0] == "gis" and parts[1]:
            return parts[1][:32]
        return None
    return None


class RateLimitMiddleware:
    """Pure ASGI token-bucket limiter (see the module docstring)."""

    def __init__(self, app, *, per_ip: float = 0, per_key: float = 0, burst_seconds: float = 2.0) -> None:
        self.app = app
        self.ip = TokenBuckets(per_ip, per_ip * burst_seconds) if per_ip > 0 else None
        self.key = TokenBuckets(per_key, per_key * burst_seconds) if per_key > 0 else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path", "").startswith(EXEMPT_PATHS):
            await self.app(scope, receive, send)
            return
        key_id = _key_id(scope.get("headers", ()))
        ip = (scope.get("client") or ("-", 0))[0]
        if key_id is not None:
            wait = self.key.take("k:" + key_id) if self.key is not None else 0.0
        else:
            wait = self.ip.take(ip) if self.ip is not None else 0.0
        if wait > 0:
            await _too_many(send, scope.get("path", ""), wait)
            return
        if key_id is None or self.ip is None:
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message):
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.ip.take(ip)     # failed authentication also counts against the IP
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def _too_many(send, path: str, wait: float) -> None:
    retry = max(1, math.ceil(wait))
    body = dumps(problem(429, "Too many requests",
                         f"Rate limit exceeded; retry in {retry} s. (Limits apply per API key and "
                         "per client address.)", "rate-limited", instance=path))
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(retry).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})
