"""Database access: embedded cluster, migrations and the async pool.

Two logins (see migration 0007): the *owner* runs migrations and administration
(:func:`resolve_admin_conninfo`); the server and the CLI's data commands connect as the
least-privilege ``gis_platform_app`` (:func:`resolve_conninfo`).
"""

from gis_platform.db.connections import connect, connect_async
from gis_platform.db.embedded import EmbeddedPostgres
from gis_platform.db.events import CatalogEvents
from gis_platform.db.pool import Database, budget_for

__all__ = ["CatalogEvents", "Database", "budget_for", "connect", "connect_async",
           "resolve_admin_conninfo", "resolve_conninfo"]


def resolve_conninfo(settings, *, start_embedded: bool = True) -> str:
    """The URL the platform works with: the configured one, or the embedded cluster's
    least-privilege login (the cluster started first)."""
    if settings.database.url:
        return settings.database.url

    emb = EmbeddedPostgres(settings)
    if start_embedded:
        emb.start()
    return emb.app_url()


def resolve_admin_conninfo(settings, *, start_embedded: bool = True) -> str | None:
    """The owner's URL for migrations and administration: ``admin_database_url``, else the
    embedded cluster's owner, else ``database_url`` (a deployment with one login)."""
    if settings.database.admin_url:
        return settings.database.admin_url
    if settings.database.url:
        return settings.database.url

    emb = EmbeddedPostgres(settings)
    return emb.start() if start_embedded else emb.url()
