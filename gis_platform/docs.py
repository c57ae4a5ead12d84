"""The API documentation UI at /docs, served from the platform's own assets.

FastAPI's built-in page loads Swagger UI from a CDN and starts it with an inline script: the
platform's Content-Security-Policy (``default-src 'self'``, see :mod:`gis_platform.headers`)
blocks the CDN, and on an intranet or offline it could not load anyway, so /docs was blank.
This page loads Swagger UI vendored from the npm registry (``make assets``, under
/static/vendor/swagger-ui) and starts it from a script file, /static/docs/swagger-init.js.
What that script needs from the server - the OpenAPI document's URL, the page's options -
rides in a ``<script type="application/json">`` block, which never executes: the page has
no inline script, so the CSP's ``script-src 'self'`` is all it needs.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gis_platform.errors import NotFound
from gis_platform.web import script_json

router = APIRouter(include_in_schema=False)

VENDOR = "/static/vendor/swagger-ui"

# FastAPI's defaults for its own Swagger UI page; the app's swagger_ui_parameters override them.
DEFAULTS = {"layout": "BaseLayout", "deepLinking": True, "showExtensions": True,
            "showCommonExtensions": True, "validatorUrl": None}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{vendor}/favicon-32x32.png" sizes="32x32">
<link rel="stylesheet" href="{vendor}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"><noscript><p>The API documentation needs JavaScript; the OpenAPI document
itself is at <a href="{openapi}">{openapi}</a>.</p></noscript></div>
<script type="application/json" id="docs-config">{config}</script>
<script src="{vendor}/swagger-ui-bundle.js"></script>
<script src="{root}/static/docs/swagger-init.js"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI over this app's OpenAPI document."""
    app = request.app
    if not app.openapi_url:
        raise NotFound("This server publishes no OpenAPI document.")
    root = request.scope.get("root_path", "").rstrip("/")
    openapi = root + app.openapi_url
    config = {**DEFAULTS, **(app.swagger_ui_parameters or {}), "url": openapi}
    return HTMLResponse(PAGE.format(
        title=escape(f"{app.title} - API documentation"), vendor=escape(root + VENDOR),
        openapi=escape(openapi), config=script_json(config), root=escape(root)))
