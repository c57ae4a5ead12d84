"""The one place a database connection is opened.

Every module that talks to PostgreSQL gets its connections here or from a
:class:`gis_platform.db.Database` pool (which this package also owns): the CLI, ingest, the
demo loaders and the catalog-event listener call :func:`connect` / :func:`connect_async`
with the platform's URL, so connection options (timeouts, the application name) are set in
one place and a test can check that nothing else opens connections.
"""

from __future__ import annotations

import psycopg

APPLICATION_NAME = "gis-platform"


def _options(kwargs: dict) -> dict:
    kwargs.setdefault("application_name", APPLICATION_NAME)
    return kwargs


def connect(conninfo: str, *, autocommit: bool = False, **kwargs) -> psycopg.Connection:
    """A blocking connection (CLI, ingest, migrations, thread-pool work)."""
    return psycopg.connect(conninfo, autocommit=autocommit, **_options(kwargs))


async def connect_async(conninfo: str, *, autocommit: bool = True, **kwargs) -> psycopg.AsyncConnection:
    """An asyncio connection of its own (listeners, background builds)."""
    return await psycopg.AsyncConnection.connect(conninfo, autocommit=autocommit, **_options(kwargs))


def pooled_kwargs(settings, kwargs: dict) -> dict:
    """Connection options for ``database.url``: behind a pooler in transaction mode
    (pgbouncer) no startup ``options`` (it refuses them; the role carries the timeouts) and
    no prepared statements (a statement prepared on one server connection is unknown on
    the next)."""
    if not settings.database.transaction_pooler:
        return kwargs
    out = {k: v for k, v in kwargs.items() if k != "options"}
    out["prepare_threshold"] = None
    return out
