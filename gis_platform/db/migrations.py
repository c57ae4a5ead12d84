"""Versioned SQL migrations.

Files ``gis_platform/sql/migrations/NNNN_name.sql`` are applied in order, each inside its
own transaction, and recorded in ``gis_meta.schema_migrations`` with a checksum.  A
transaction-level advisory lock serialises concurrent migrators (several workers starting
at once).  Applying twice is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from gis_platform.errors import ConfigurationError

_LOCK_KEY = 0x6769_7370  # "gisp"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """All migrations shipped with the package, sorted by version."""
    folder = resources.files("gis_platform") / "sql" / "migrations"
    found = []
    for entry in folder.iterdir():
        m = _NAME_RE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise ConfigurationError(f"Duplicate migration versions: {versions}")
    return found


_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS gis_meta;
CREATE TABLE IF NOT EXISTS gis_meta.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


def applied_versions(conn: psycopg.Connection) -> dict[int, str]:
    """Versions recorded in the database with their checksums ({} if none)."""
    exists = conn.execute("SELECT to_regclass('gis_meta.schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return {}
    return dict(conn.execute("SELECT version, checksum FROM gis_meta.schema_migrations").fetchall())


def pending(conn: psycopg.Connection) -> list[Migration]:
    """Migrations not yet applied."""
    done = applied_versions(conn)
    return [m for m in available_migrations() if m.version not in done]


def migrate(conninfo: str) -> list[Migration]:
    """Apply every pending migration; return those applied now."""
    applied: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Nothing to do (the usual start): no DDL, so a login without CREATE rights - the
        # server's least-privilege role - starts on a migrated database.
        done = applied_versions(conn)
        if all(done.get(m.version) == m.checksum for m in available_migrations()):
            return applied
        # Bootstrap is idempotent and safe to race (IF NOT EXISTS), but two creators of the
        # same schema can still collide; serialise with a session-level lock.
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_BOOTSTRAP)
            done = applied_versions(conn)
            for mig in available_migrations():
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise ConfigurationError(
                            f"Migration {mig.version:04d}_{mig.name} was changed after it was "
                            "applied; write a new migration instead of editing an applied one."
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(mig.sql)
                        conn.execute(
                            "INSERT INTO gis_meta.schema_migrations (version, name, checksum) "
                            "VALUES (%s, %s, %s)", (mig.version, mig.name, mig.checksum))
                except psycopg.Error as exc:
                    msg = str(exc)
                    if "postgis" in msg and ("control file" in msg or "extension" in msg):
                        raise ConfigurationError(
                            "The database has no PostGIS extension available: install PostGIS "
                            "on the database server (Debian: postgresql-<version>-postgis-3) "
                            f"and retry. Server said: {msg.strip()}") from exc
                    raise ConfigurationError(
                        f"Migration {mig.version:04d}_{mig.name} failed and was rolled back: "
                        f"{msg.strip()}") from exc
                applied.append(mig)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
