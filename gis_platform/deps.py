"""FastAPI dependencies as readable ``Annotated`` aliases (the pool never shows in OpenAPI).

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread
pool, one hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gis_platform.config import Settings
from gis_platform.db import Database


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


SettingsDep = Annotated[Settings, Depends(get_settings)]
Db = Annotated[Database, Depends(get_db)]
