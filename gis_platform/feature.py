"""What a feature package contributes to the platform, as the composition root sees it.

Each package (``layers``, ``features``, ``domains``, ``indicators``, ``tile_server``,
``policy_maps``) describes itself with one :class:`Feature` in its ``feature`` module, and
:mod:`gis_platform.composition` lists them in order.  Nothing is looked up by name: the
server, the command line and the demo loader all read that one list.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import typer
from fastapi import APIRouter, FastAPI

#: ``lifespan(app)``: an async context manager entered at start-up (in list order, after the
#: database, the catalog events and the app state are ready) and left at shutdown.
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Feature:
    """One feature package: its routes, what it starts, its commands, its demo data."""

    name: str
    routers: tuple[APIRouter, ...] = ()
    lifespan: Lifespan | None = None
    #: Thin routes in front of FastAPI's (gis_platform.fastroute), installed after start-up.
    fast_routes: Callable[[FastAPI], None] | None = None
    #: Adds the package's sub-commands to the ``gis-platform`` command.
    cli: Callable[[typer.Typer], None] | None = None
    #: ``load_demo(settings, conninfo, *, scale, only_if_empty, console) -> counts``.
    demo: Callable[..., dict] | None = None
