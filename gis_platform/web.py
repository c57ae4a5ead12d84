"""The one Jinja environment of the platform, over the one templates folder.

Every HTML page the server renders - the OGC API pages, the dig-check report and the permit
pages, the policy-map gallery and pages, the tile viewer - is a template under
``gis_platform/templates/<feature>/``, rendered with :func:`render`.  Autoescaping is on for
every template; data for a page's scripts goes through the ``json`` filter (``<`` escaped,
so it cannot close the ``<script>`` it sits in).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

LEAFLET_CSS = "/static/vendor/leaflet/leaflet.css"
LEAFLET_JS = "/static/vendor/leaflet/leaflet.js"


def script_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block (or a JS literal)."""
    text = orjson.dumps(value, default=str).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@lru_cache(maxsize=1)
def environment() -> Environment:
    folder = str(resources.files("gis_platform") / "templates")
    env = Environment(loader=FileSystemLoader(folder),
                      autoescape=select_autoescape(["html", "svg", "xml"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["json"] = script_json
    env.globals.update(LEAFLET_CSS=LEAFLET_CSS, LEAFLET_JS=LEAFLET_JS)
    return env


def render(name: str, **context: Any) -> str:
    """The template ``name`` (``"features/items.html"``...) rendered with ``context``."""
    return environment().get_template(name).render(**context)
