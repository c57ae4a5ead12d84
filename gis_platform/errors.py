"""One exception hierarchy and one status map for the whole platform.

Domain code raises these; the app factory installs a single handler that turns them into
RFC 7807 ``application/problem+json`` responses.  Domain code never raises HTTPException,
and no handler ever returns a stack trace or SQL text to the client.
"""

from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    """Base class: ``status`` is the HTTP status, ``title`` a short stable summary."""

    status: int = 500
    title: str = "Internal error"
    type_slug: str = "internal-error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class BadRequest(PlatformError):
    status, title, type_slug = 400, "Bad request", "bad-request"


class InvalidParameter(BadRequest):
    title, type_slug = "Invalid parameter", "invalid-parameter"


class Unauthorized(PlatformError):
    status, title, type_slug = 401, "Authentication required", "unauthorized"


class Forbidden(PlatformError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(PlatformError):
    status, title, type_slug = 404, "Not found", "not-found"


class LayerNotFound(NotFound):
    title, type_slug = "Layer not found", "layer-not-found"


class Conflict(PlatformError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PayloadTooLarge(PlatformError):
    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(PlatformError):
    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


class Unprocessable(PlatformError):
    status, title, type_slug = 422, "Unprocessable input", "unprocessable"


class IngestError(Unprocessable):
    """The input file cannot be ingested; the database was left untouched."""

    title, type_slug = "Ingest failed", "ingest-failed"


class QueryTimeout(PlatformError):
    status, title, type_slug = 503, "Query took too long", "query-timeout"


class DatabaseUnavailable(PlatformError):
    status, title, type_slug = 503, "Database unavailable", "database-unavailable"


class ConfigurationError(PlatformError):
    """A deployment problem an operator must fix (missing packages, bad settings)."""

    title, type_slug = "Configuration error", "configuration-error"


def problem(status: int, title: str, detail: str, type_slug: str, instance: str | None = None,
            **extra: Any) -> dict[str, Any]:
    """Build an RFC 7807 problem document."""
    body: dict[str, Any] = {
        "type": f"/problems/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return body
