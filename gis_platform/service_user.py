"""The platform never serves or ingests as root, and keeps its files to itself.

Started as root (``make up`` on a fresh machine), the command line does the few things that
need root - starting the embedded cluster as its own OS user, applying migrations with the
owner's password - and then :func:`become_service_user` switches the process to an
unprivileged service user (``service_user``, default ``gis-platform``, created when
missing) before it reads an upload, loads the demo or serves a request.  The embedded
cluster runs as yet another user (``pg_os_user``), so the web server can neither read the
cluster's files nor the owner's password: it holds only the least-privilege login's.

Files: the data directory is ``0710`` (the cluster's user may pass through it to its own
folder) and everything in it ``0700`` / ``0600``, owned by the service user - backups hold
applicant data and key hashes, rasters may be restricted layers.  The process umask is
``077`` whoever runs it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sysconfig
from pathlib import Path

from gis_platform.config import Settings
from gis_platform.errors import ConfigurationError

UMASK = 0o077
_SKIP = {"pg"}        # the embedded cluster's own folder: its OS user's


def restrict_umask() -> None:
    """New files 0600, new folders 0700 (called at every entry point)."""
    os.umask(UMASK)


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        subprocess.run([useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigurationError(
            f"The service user '{name}' does not exist and could not be created ({exc}). "
            f"Create it (useradd --system {name}) or set GIS_SERVICE_USER.") from exc
    return pwd.getpwnam(name)


def secure_tree(root: Path, uid: int | None = None, gid: int | None = None) -> None:
    """Folders 0700 and files 0600 below ``root`` (and chown them, as root), but for the
    embedded cluster's own folder."""
    for entry in root.iterdir() if root.is_dir() else []:
        if entry.name in _SKIP or entry.is_symlink():
            continue
        for path in [entry, *(entry.rglob("*") if entry.is_dir() else [])]:
            if path.is_symlink():
                continue
            if uid is not None:
                os.chown(path, uid, gid)
            os.chmod(path, 0o700 if path.is_dir() else 0o600)


def stage_input(settings: Settings, path: Path) -> Path:
    """A file a command was given, where the service user can read it.

    As root, the command reads its input after it has become the service user, who may not
    enter the folder the file is in (``/root``...): the file - with its sidecars, for a
    shapefile - is copied into the data directory's upload area first.  Otherwise the path
    itself."""
    path = Path(path)
    if os.geteuid() != 0 or not path.is_file():
        return path
    import atexit
    import tempfile

    upload_dir = settings.resolved_data_dir() / "uploads"
    upload_dir.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix="cli-", dir=upload_dir))
    parts = [path]
    if path.suffix.lower() == ".shp":
        parts += [p for p in path.parent.iterdir() if p.stem == path.stem and p != path]
    for part in parts:
        shutil.copy2(part, staged / part.name)
    atexit.register(shutil.rmtree, staged, True)
    return staged / path.name


def become_service_user(settings: Settings) -> None:
    """As root: hand the data directory to the service user and become it.  Otherwise:
    tighten the data directory's modes.  Idempotent; call it after the cluster is started
    and before any data is read or written."""
    restrict_umask()
    data_dir = settings.resolved_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        # Private, but keep the group's pass-through a root start gave the cluster's user.
        os.chmod(data_dir, 0o700 | (data_dir.stat().st_mode & 0o010))
        secure_tree(data_dir)
        return
    user = _ensure_user(settings.security.service_user)
    _check_reachable(data_dir, user)
    # The cluster's user passes through the data directory to its own folder; nobody else.
    try:
        pg_gid = pwd.getpwnam(settings.database.pg_os_user).pw_gid
    except KeyError:
        pg_gid = user.pw_gid
    os.chown(data_dir, user.pw_uid, pg_gid)
    os.chmod(data_dir, 0o710)
    secure_tree(data_dir, user.pw_uid, user.pw_gid)
    home = data_dir / "run" / "home"
    home.mkdir(parents=True, exist_ok=True)
    for p in (home.parent, home):
        os.chown(p, user.pw_uid, user.pw_gid)
        os.chmod(p, 0o700)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    # Libraries that keep caches in $HOME (matplotlib's font list, PROJ's grids) use ours.
    os.environ.update(HOME=str(home), MPLCONFIGDIR=str(home / "matplotlib"),
                      XDG_CACHE_HOME=str(home / "cache"), USER=user.pw_name, LOGNAME=user.pw_name)
    _check_interpreter(user.pw_name)


def _check_reachable(data_dir: Path, user: pwd.struct_passwd) -> None:
    """Every folder above the data directory must let the service user pass."""
    for parent in data_dir.parents:
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & 0o001 or \
                (st.st_gid == user.pw_gid and st.st_mode & 0o010):
            continue
        raise ConfigurationError(
            f"The platform runs as the unprivileged user '{user.pw_name}', who cannot enter "
            f"{parent} to reach the data directory {data_dir}. Choose a data directory it can "
            "reach, e.g. GIS_DATA_DIR=/var/lib/gis-platform.")


def _check_interpreter(user: str) -> None:
    """The service user must be able to read the Python standard library (modules are
    imported lazily); a venv made from a Python under /root is not."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    try:
        os.listdir(stdlib)
    except PermissionError:
        raise ConfigurationError(
            f"The service user '{user}' cannot read the Python standard library at {stdlib}. "
            "Build the virtual environment from a Python every user can read: `make` picks "
            "/usr/bin/python3 when run as root (rm -rf .venv; make up).") from None
