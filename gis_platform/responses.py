"""Fast JSON responses (orjson) and problem+json."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


def _default(obj: Any) -> Any:
    # numpy scalars, Decimals, dates... anything orjson doesn't know natively.
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default,
                        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


class FastJSONResponse(JSONResponse):
    """JSON rendered with orjson."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


class GeoJSONResponse(FastJSONResponse):
    media_type = "application/geo+json"


class ProblemResponse(FastJSONResponse):
    media_type = "application/problem+json"
