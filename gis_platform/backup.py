"""Backup and restore: the platform's schemas plus its files (rasters, rendered maps).

An archive is one ``.tar`` file::

    manifest.json   what is inside: layers with data versions and counts, migrations,
                    file list with sizes and SHA-256, PostgreSQL and platform versions
    db.dump         ``pg_dump --format=custom`` of the platform database
    files/...       the data directory minus the cluster, caches and scratch space

``backup`` writes to a temporary name and renames at the end: a crash never leaves a
half-written archive under the real name.

``restore`` checks the archive (manifest, checksums, dump table of contents) before it
touches the database, then applies everything **in one transaction**: the platform's
schemas are dropped and recreated from the dump inside that transaction, so a failure
leaves the database exactly as it was.  A non-empty target needs ``force``; even then the
current state is first saved as a safety backup under ``<data_dir>/backups/``.
Extension objects (PostGIS itself, ``spatial_ref_sys``) are never dropped or restored: the
target must have PostGIS, which the platform's migrations ensure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from gis_platform import __version__
from gis_platform.db.connections import connect
from gis_platform.db.embedded import find_postgres
from gis_platform.errors import ConfigurationError, InvalidParameter, PlatformError

FORMAT = 1
# Parts of the data directory that are not data: the cluster, caches, scratch space.
EXCLUDED_DIRS = {"pg", "tile-cache", "run", "uploads", "backups", "tmp", "export-tmp"}
# pg_restore TOC entries that belong to extensions, not to us.
_SKIP_TOC = ("EXTENSION", "COMMENT - EXTENSION", "SCHEMA - public", "COMMENT - SCHEMA public")


class BackupError(PlatformError):
    status = 422
    title = "Backup or restore failed"
    type_slug = "backup-failed"


def _pg_tool(name: str) -> str:
    """The client tool matching the newest installed server (pg_dump must be >= server)."""

    try:
        install = find_postgres()
        path = install.bin_dir / name
        if path.exists():
            return str(path)
    except ConfigurationError:
        pass
    found = shutil.which(name)
    if not found:
        raise ConfigurationError(f"{name} was not found; install the postgresql-client package.")
    return found


def _run(args: list[str], *, env=None, stdin=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, env=env, input=stdin)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BackupError(f"{Path(args[0]).name} failed: {' / '.join(err[-3:]) or 'no output'}")
    return proc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _data_files(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        return []
    out = []
    for top in sorted(data_dir.iterdir()):
        if top.name in EXCLUDED_DIRS or top.name.startswith("."):
            continue
        if top.is_file():
            out.append(top)
        elif top.is_dir():
            out.extend(p for p in sorted(top.rglob("*")) if p.is_file() and
                       not p.name.startswith(".tmp"))
    return out


def database_summary(conninfo: str) -> dict:
    """Layers with data versions and counts, and the applied migrations."""
    with connect(conninfo, autocommit=True) as conn:
        layers = conn.execute(
            "SELECT id, data_version, feature_count FROM gis_meta.layers ORDER BY id").fetchall()
        migrations = [r[0] for r in conn.execute(
            "SELECT version FROM gis_meta.schema_migrations ORDER BY version").fetchall()]
        server = conn.execute("SHOW server_version").fetchone()[0]
    return {"layers": [{"id": i, "data_version": v, "feature_count": n} for i, v, n in layers],
            "migrations": migrations, "server_version": server}


def backup(settings, conninfo: str, out: Path) -> dict:
    """Write an archive of the database and data files to ``out``; returns its manifest."""
    out = Path(out)
    if out.suffix != ".tar":
        out = out.with_suffix(out.suffix + ".tar") if out.suffix else out.with_suffix(".tar")
    out.parent.mkdir(parents=True, exist_ok=True)
    data_dir = settings.resolved_data_dir()
    summary = database_summary(conninfo)
    with tempfile.TemporaryDirectory(prefix="gis-backup-", dir=out.parent) as tmp:
        dump = Path(tmp) / "db.dump"
        _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
              "--file", str(dump), "--dbname", conninfo])
        files = _data_files(data_dir)
        manifest = {
            "format": FORMAT, "platform_version": __version__, "data_dir": str(data_dir),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **summary,
            "db_dump": {"bytes": dump.stat().st_size, "sha256": _sha256(dump)},
            "files": [{"path": str(p.relative_to(data_dir)), "bytes": p.stat().st_size,
                       "sha256": _sha256(p)} for p in files],
        }
        partial = out.with_name(f".{out.name}.partial")
        with tarfile.open(partial, "w") as tar:
            raw = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
            tar.add(dump, arcname="db.dump")
            for p in files:
                tar.add(p, arcname=f"files/{p.relative_to(data_dir)}")
        os.replace(partial, out)
    manifest["archive"] = str(out)
    return manifest


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract regular files and folders only, nothing outside ``dest`` (Python's ``data``
    filter where this Python has it; the same rules by hand on 3.11 < 3.11.4)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
            raise BackupError(f"The archive holds an unsafe member {member.name[:80]!r}; "
                              "nothing was changed.")
        member.mode = 0o700 if member.isdir() else 0o600
    tar.extractall(dest)


def read_manifest(archive: Path) -> dict:
    archive = Path(archive)
    if not archive.is_file():
        raise InvalidParameter(f"No backup archive at {archive}.")
    try:
        with tarfile.open(archive, "r") as tar:
            member = tar.getmember("manifest.json")
            manifest = json.loads(tar.extractfile(member).read())
    except (tarfile.TarError, KeyError, json.JSONDecodeError) as exc:
        raise InvalidParameter(f"{archive} is not a gis-platform backup ({exc}).") from exc
    if manifest.get("format") != FORMAT:
        raise InvalidParameter(f"{archive} has backup format {manifest.get('format')}; this "
                               f"version reads format {FORMAT}.")
    return manifest


def _is_empty(conninfo: str) -> bool:
    with connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('gis_meta.layers') IS NOT NULL").fetchone()[0]
        if not exists:
            return True
        return conn.execute("SELECT count(*) FROM gis_meta.layers").fetchone()[0] == 0


def _platform_schemas(conninfo: str) -> list[str]:
    """Schemas to replace: every user schema except public and extension-owned ones."""
    with connect(conninfo, autocommit=True) as conn:
        rows = conn.execute("""
            SELECT n.nspname FROM pg_namespace n
            WHERE n.nspname NOT IN ('public', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_%'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                                AND d.deptype = 'e')
            ORDER BY 1""").fetchall()
    return [r[0] for r in rows]


def _post_restore_sql(conninfo: str, old_dir: str | None, new_dir: Path) -> str:
    """Raster paths recorded under the old data directory now live under the new one."""
    from psycopg import sql

    stmts = []
    if old_dir and old_dir != str(new_dir):
        with connect(conninfo, autocommit=True) as conn:
            old, new = sql.Literal(old_dir.rstrip("/") + "/"), sql.Literal(str(new_dir) + "/")
            stmts.append(sql.SQL(
                "UPDATE gis_meta.layers SET raster_path = {new} || substr(raster_path, "
                "length({old}) + 1) WHERE starts_with(raster_path, {old});"
            ).format(new=new, old=old).as_string(conn))
    # The dump carries no privileges (it may come from another cluster): give the server's
    # least-privilege login its grants and its layer tables again (migration 0007).
    stmts.append("DO $$ BEGIN IF to_regprocedure('gis_meta.grant_app_role()') IS NOT NULL THEN "
                 "PERFORM gis_meta.grant_app_role(); END IF; END $$;")
    stmts.append("NOTIFY gis_catalog, '*';")
    return "\n".join(stmts) + "\n"


def restore(settings, conninfo: str, archive: Path, *, force: bool = False) -> dict:
    """Restore an archive into the platform database and data directory (all or nothing).

    ``conninfo`` is the schema owner's (``resolve_admin_conninfo``): the schemas are dropped
    and recreated."""
    archive = Path(archive)
    manifest = read_manifest(archive)
    if not _is_empty(conninfo) and not force:
        raise InvalidParameter("The target database already holds layers; restoring would "
                               "replace them. Re-run with --force (a safety backup of the "
                               "current state is taken first).")
    data_dir = settings.resolved_data_dir()
    safety = None
    with tempfile.TemporaryDirectory(prefix="gis-restore-") as tmp:
        tmp = Path(tmp)
        with tarfile.open(archive, "r") as tar:
            _safe_extract(tar, tmp)
        dump = tmp / "db.dump"
        if _sha256(dump) != manifest["db_dump"]["sha256"]:
            raise BackupError("The database dump in the archive is corrupt (checksum mismatch); "
                              "nothing was changed.")
        for f in manifest["files"]:
            p = tmp / "files" / f["path"]
            if not p.is_file() or _sha256(p) != f["sha256"]:
                raise BackupError(f"File {f['path']} in the archive is missing or corrupt; "
                                  "nothing was changed.")
        # Table of contents without the extension's own objects.
        toc = _run([_pg_tool("pg_restore"), "--list", str(dump)]).stdout.decode()
        keep = [line for line in toc.splitlines()
                if not any(f" {tag} " in line for tag in _SKIP_TOC)
                and "spatial_ref_sys" not in line]
        (tmp / "toc.list").write_text("\n".join(keep) + "\n")
        script = tmp / "restore.sql"
        _run([_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--use-list",
              str(tmp / "toc.list"), "--file", str(script), str(dump)])
        if not _is_empty(conninfo):
            safety = backup(settings, conninfo, data_dir / "backups" /
                            f"pre-restore-{dt.datetime.now():%Y%m%d-%H%M%S}.tar")["archive"]
        drops = "".join(f'DROP SCHEMA IF EXISTS "{s}" CASCADE;\n' for s in _platform_schemas(conninfo))
        (tmp / "pre.sql").write_text(drops)
        (tmp / "post.sql").write_text(_post_restore_sql(conninfo, manifest.get("data_dir"),
                                                        data_dir))
        _run([_pg_tool("psql"), "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1",
              "--single-transaction", "--dbname", conninfo, "-f", str(tmp / "pre.sql"),
              "-f", str(script), "-f", str(tmp / "post.sql")])
        # Files: copied in after the database committed (they are addressed by it).
        for f in manifest["files"]:
            src, dst = tmp / "files" / f["path"], data_dir / f["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    result = database_summary(conninfo)
    result["safety_backup"] = safety
    return result
