"""Who is calling: the API key of a request, resolved once into a :class:`Principal`.

Callers authenticate with API keys (:mod:`gis_platform.apikeys`), sent as
``Authorization: Bearer gis_<id>_<secret>``, as ``X-API-Key``, or - for clients that only
know HTTP Basic (QGIS auth configurations, GDAL's ``GDAL_HTTP_USERPWD``) - as the password of
``Authorization: Basic`` with any user name.  No key is the anonymous principal.  A key that
is garbled, unknown, revoked or expired is a 401 (never silently anonymous) and leaves an
audit row.

What a principal may do is decided by :mod:`gis_platform.access`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from gis_platform import audit
from gis_platform.apikeys import key_id_of, verify_token
from gis_platform.errors import Unauthorized
from gis_platform.principal import ANONYMOUS, Principal


def bearer_token(request: Request) -> str | None:
    """The API key of a request (Bearer, HTTP Basic password, or ``X-API-Key``), or None."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            return value
        if scheme == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("The Basic credentials are not valid base64 'user:password'.") from None
            _, sep, password = decoded.partition(":")
            if sep and password:
                return password
            raise Unauthorized("Send the API key as the password of HTTP Basic (any user name).")
        raise Unauthorized("Use 'Authorization: Bearer <api key>' (or Basic with the key as password).")
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


async def get_principal(request: Request) -> Principal:
    """Resolve the caller once per request: anonymous, or the owner of a valid API key."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = None
    try:
        token = bearer_token(request)
        principal = ANONYMOUS if token is None else await verify_token(request.app.state.db, token)
    except Unauthorized as exc:
        key_id = key_id_of(token) if token else None
        audit.record_auth_failure(f"key:{key_id}" if key_id else "invalid-key", exc.detail)
        raise
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
