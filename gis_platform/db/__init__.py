"""Database access: embedded cluster, migrations and the async pool."""

from gis_platform.db.pool import Database

__all__ = ["Database", "resolve_conninfo"]


def resolve_conninfo(settings, *, start_embedded: bool = True) -> str:
    """The database URL to use: the configured one, or the embedded cluster's (started)."""
    if settings.database_url:
        return settings.database_url
    from gis_platform.db.embedded import EmbeddedPostgres

    emb = EmbeddedPostgres(settings)
    return emb.start() if start_embedded else emb.url()
