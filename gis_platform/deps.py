"""FastAPI dependencies as readable ``Annotated`` aliases (the pool never shows in OpenAPI).

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread
pool, one hop per dependency per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from gis_platform.config import Settings
from gis_platform.db import Database

T = TypeVar("T")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


SettingsDep = Annotated[Settings, Depends(get_settings)]
Db = Annotated[Database, Depends(get_db)]


async def run_sync(request: Request, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """``fn(conn, *args, **kw)`` for a route, through :meth:`Database.run_sync` (a blocking
    store shared with the CLI, in a worker thread)."""
    db: Database = request.app.state.db
    return await db.run_sync(fn, *args, **kw)
