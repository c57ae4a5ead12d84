"""Security headers (pure ASGI middleware).

Every response: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy``.

HTML pages also get a Content-Security-Policy.  Our pages (feature views, the tile viewer,
policy maps) load everything from this server and carry inline ``<style>`` and inline
``<script>`` blocks; rather than ``'unsafe-inline'`` for scripts, the middleware hashes each
inline script of the page (``'sha256-...'``), so only the scripts the server wrote run, and
an injected one would not.  Styles: ``'self' 'unsafe-inline'`` (style attributes and blocks;
no script can run from CSS).  MapLibre needs ``blob:`` workers and images.

Framing: pages are not embeddable (``frame-ancestors 'none'`` + ``X-Frame-Options: DENY``),
except the map pages under ``embed_paths`` (``/viewer``, ``/maps/`` by default), which allow
the origins in ``frame_ancestors`` (default ``*``: public maps are made to be embedded).

The middleware sits inside the gzip middleware, so it sees the page uncompressed.  HTML
bodies are buffered to compute hashes (pages are small; a page over ``max_buffer`` falls
back to ``'unsafe-inline'`` scripts rather than breaking).
"""

from __future__ import annotations

import base64
import hashlib
import re

_SCRIPT_RE = re.compile(rb"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script\s*>", re.DOTALL | re.IGNORECASE)
_DATA_TYPES = (b"application/json", b"application/ld+json", b"application/geo+json", b"text/template")


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP source expressions for each executable inline script of a page."""
    out = []
    for m in _SCRIPT_RE.finditer(html):
        attrs = m.group("attrs").lower()
        if b"src=" in attrs:
            continue
        tm = re.search(rb"type\s*=\s*[\"']?([^\"'\s>]+)", attrs)
        if tm and tm.group(1) in _DATA_TYPES:
            continue            # data blocks never execute
        digest = base64.b64encode(hashlib.sha256(m.group("body")).digest()).decode()
        out.append(f"'sha256-{digest}'")
    return list(dict.fromkeys(out))


def csp(script_sources: list[str], frame_ancestors: str) -> str:
    scripts = " ".join(["'self'", *script_sources])
    return ("default-src 'self'; "
            f"script-src {scripts}; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
            "worker-src 'self' blob:; child-src 'self' blob:; object-src 'none'; "
            f"base-uri 'self'; form-action 'self'; frame-ancestors {frame_ancestors}")


class SecurityHeadersMiddleware:
    """Adds the headers above; see the module docstring."""

    def __init__(self, app, *, embed_paths=("/viewer", "/maps/"), frame_ancestors: str = "*",
                 referrer_policy: str = "strict-origin-when-cross-origin",
                 max_buffer: int = 32 << 20) -> None:
        self.app = app
        self.embed_paths = tuple(embed_paths)
        self.frame_ancestors = frame_ancestors.strip() or "'none'"
        self.common = [(b"x-content-type-options", b"nosniff"),
                       (b"referrer-policy", referrer_policy.encode())]
        self.max_buffer = max_buffer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        embeddable = scope.get("path", "").startswith(self.embed_paths)
        start: dict | None = None
        chunks: list[bytes] = []
        size = 0

        async def send_wrapper(message):
            nonlocal start, size
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k not in (b"x-content-type-options", b"referrer-policy")]
                headers += self.common
                ctype = next((v for k, v in headers if k == b"content-type"), b"")
                message["headers"] = headers
                if not ctype.startswith(b"text/html"):
                    await send(message)
                    return
                start = message           # hold it until the page is complete
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if message.get("more_body") and size <= self.max_buffer:
                return
            body = b"".join(chunks)
            chunks.clear()
            encoded = any(k == b"content-encoding" for k, _ in start["headers"])
            if message.get("more_body") or encoded:
                sources = ["'unsafe-inline'"]      # too large (or already compressed) to hash
            else:
                sources = inline_script_hashes(body)
            ancestors = self.frame_ancestors if embeddable else "'none'"
            start["headers"].append((b"content-security-policy", csp(sources, ancestors).encode()))
            if not embeddable:
                start["headers"].append((b"x-frame-options", b"DENY"))
            first, start = start, None
            await send(first)
            await send({"type": "http.response.body", "body": body,
                        "more_body": bool(message.get("more_body"))})
            if message.get("more_body"):
                # past the buffer: the rest goes straight through
                nonlocal_passthrough[0] = True

        nonlocal_passthrough = [False]

        async def outer_send(message):
            if nonlocal_passthrough[0]:
                await send(message)
            else:
                await send_wrapper(message)

        await self.app(scope, receive, outer_send)
