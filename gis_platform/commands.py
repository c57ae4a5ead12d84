"""What every command of ``gis-platform`` shares: settings, the database URLs, failing with
one clear line.  The feature packages' commands import these (never ``gis_platform.cli``,
the root command, which imports them)."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from gis_platform.assets import require_vendor_assets, vendor_dir
from gis_platform.config import Settings
from gis_platform.db import migrations, resolve_admin_conninfo, resolve_conninfo
from gis_platform.errors import PlatformError
from gis_platform.service_user import become_service_user

console = Console(stderr=True)


def settings() -> Settings:
    """Settings from the environment (GIS_*), built once per command."""
    return Settings()


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def conninfo(s: Settings) -> str:
    """The platform's database URL (its least-privilege login), starting the embedded cluster
    if that is what is configured - and from here on the process is the service user, never
    root (:mod:`gis_platform.service_user`): every data command calls this first."""
    try:
        url = resolve_conninfo(s)
        become_service_user(s)
    except PlatformError as exc:
        fail(exc.detail)
        raise  # unreachable
    # No cluster management after this point: this process (and the server's workers, which
    # read the environment) use the least-privilege login directly.
    s.database.url = url
    os.environ["GIS_DATABASE_URL"] = url
    return url


def admin_conninfo(s: Settings) -> str:
    """The schema owner's URL (migrations, backup, restore, psql)."""
    try:
        return resolve_admin_conninfo(s)
    except PlatformError as exc:
        fail(exc.detail)
        raise  # unreachable


def migrate(s: Settings) -> None:
    """Apply pending migrations with the owner's login (before the process stops being root)."""
    try:
        migrations.migrate(admin_conninfo(s))
    except PlatformError as exc:
        fail(exc.detail)


def require_assets(s: Settings) -> None:
    """One clear line, before any database work, when `make assets` has not run."""
    try:
        require_vendor_assets(vendor_dir(s))
    except PlatformError as exc:
        fail(exc.detail)
