"""Gallery thumbnails: drawn when a map is published, then read from storage.

Drawn on request, a thumbnail took up to 3.4 s (the map built, Fisher-Jenks over 1,050
hexagons, matplotlib), so the gallery's first cards were blank on every visit.  Publishing
draws the published version's thumbnail and stores it under the data folder,
``maps/thumbnails/<map>/v<version>-<key>.png``; ``GET /maps/{id}/thumbnail.png`` checks the
caller may see the map and its parts, then reads that file - the map is not built.  ``key``
is the data the picture is drawn from (the indicator's and the area layer's data versions,
the size): new values or boundaries make the next request draw it again, once.  The picture
has no text - the card around it carries the title and description in the page's language -
so one file serves both languages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import orjson
import psycopg

from policy_maps.build import MapAccess, MapData, build_map, map_parts
from policy_maps.render_png import THUMBNAIL_SIZE, render_thumbnail
from policy_maps.store import MapVersion


def folder(data_dir: Path) -> Path:
    """Where thumbnails are stored under the platform's data folder."""
    return data_dir / "maps" / "thumbnails"


def stored_path(root: Path, map_id: str, version: int, indicator, layer) -> Path:
    """The file of one version's thumbnail drawn from these indicator and layer versions."""
    raw = orjson.dumps([indicator.id, indicator.data_version, layer.id, layer.data_version, THUMBNAIL_SIZE])
    return root / map_id / f"v{int(version)}-{hashlib.sha256(raw).hexdigest()[:16]}.png"


def store(root: Path, data: MapData, *, keep_other_versions: bool = True) -> Path:
    """Draw ``data``'s thumbnail and write it; the same version's stale ones go (and, for a
    newly published version, the other versions' too)."""
    path = stored_path(root, data.spec.id, data.version, data.indicator, data.layer)
    body = render_thumbnail(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(body)
    tmp.replace(path)
    for old in path.parent.glob("v*.png"):
        if old != path and (not keep_other_versions or old.name.startswith(f"v{data.version}-")):
            with contextlib.suppress(OSError):
                old.unlink()
    return path


def thumbnail_file(conn: psycopg.Connection, root: Path, mv: MapVersion, access: MapAccess) -> Path:
    """The stored thumbnail of ``mv`` as the caller may see it (its parts read through
    ``access``: a layer made non-public since publishing is a 404 here too); drawn and stored
    first when missing or drawn from older data."""
    parts = map_parts(conn, mv.spec, access)
    path = stored_path(root, mv.id, mv.version, parts.indicator, parts.layer)
    if not path.exists():
        data = build_map(conn, mv.spec, access)
        data.version = mv.version
        path = store(root, data)
    return path
