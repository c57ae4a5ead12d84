"""Map operations shared by the HTTP API, the CLI and the demo (synchronous, one connection)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import orjson
import psycopg

from gis_platform.principal import Principal
from policy_maps.build import MapAccess, MapData, build_map
from policy_maps.spec import MapSpec, parse_spec
from policy_maps.store import MapVersion, get_version, public_problems, publish, save_version  # noqa: F401
from policy_maps.thumbnails import store as store_thumbnail

log = logging.getLogger("policy_maps")


def save_spec(conn: psycopg.Connection, spec: MapSpec | dict, actor: str, access: MapAccess,
              authorize_write=None) -> tuple[int, MapData]:
    """Validate ``spec`` against the data, then store it as a new version.

    ``authorize_write(data)``: the caller's write decision on the built map (it knows every
    layer and indicator the map uses), made before anything is stored.
    """
    spec = spec if isinstance(spec, MapSpec) else parse_spec(spec)
    data = build_map(conn, spec, access)
    if authorize_write is not None:
        authorize_write(data)
    version = save_version(conn, spec, data.data_versions, actor)
    data.version = version
    return version, data


def publish_with_thumbnail(conn: psycopg.Connection, data: MapData, principal: Principal,
                           thumbnails: Path) -> MapVersion:
    """Publish the version ``data`` was built for and store its gallery thumbnail, so the
    gallery never draws one while a citizen waits.  A thumbnail that cannot be written (a
    full disk) does not undo the publication: the gallery draws it on its first request."""
    mv = publish(conn, data.spec.id, data.version, principal)
    try:
        store_thumbnail(thumbnails, data, keep_other_versions=False)
    except OSError as exc:
        log.warning("thumbnail of map %s v%s not stored: %s", data.spec.id, data.version, exc)
    return mv


def load_map(conn: psycopg.Connection, map_id: str, version: int | None, principal: Principal,
             access: MapAccess) -> tuple[MapData, str]:
    """A stored map version built on the current data; returns (data, status)."""
    mv = get_version(conn, map_id, version, principal)
    data = build_map(conn, mv.spec, access)
    data.version = mv.version
    data.built_at = (mv.published_at or mv.created_at).isoformat(timespec="seconds")
    status = "published" if mv.published_at is not None and mv.published_version is not None else "draft"
    return data, status


def cache_key(data: MapData, *parts: object) -> str:
    """A file-name-safe key of everything that changes a rendering."""
    raw = orjson.dumps([data.spec.id, data.version, data.data_versions, [str(p) for p in parts]],
                       option=orjson.OPT_SORT_KEYS)
    return f"{data.spec.id}-v{data.version}-{hashlib.sha256(raw).hexdigest()[:16]}"


def cached(cache_dir: Path, name: str, make, max_bytes: int | None = None) -> bytes:
    """Read ``name`` from the cache or make it and store it atomically.

    ``max_bytes`` bounds the folder: after a write that takes it over, the least recently
    used files go until it is back under 80 % (reads refresh a file's time)."""
    path = cache_dir / name
    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)
        return path.read_bytes()
    body = make()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(body)
    tmp.replace(path)
    if max_bytes is not None:
        _prune(cache_dir, max_bytes)
    return body


def _prune(cache_dir: Path, max_bytes: int) -> None:
    files = []
    for p in cache_dir.iterdir():
        with contextlib.suppress(OSError):
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    if total <= max_bytes:
        return
    for _, size, p in sorted(files):
        if total <= max_bytes * 0.8:
            break
        with contextlib.suppress(OSError):
            p.unlink()
            total -= size
