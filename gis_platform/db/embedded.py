"""The embedded PostGIS cluster.

When no ``GIS_DATABASE_URL`` is configured the platform runs its own PostgreSQL cluster in
``<data_dir>/pg``: ``initdb`` once, then ``pg_ctl start`` on 127.0.0.1 and a unix socket only,
on a free port remembered in ``<data_dir>/pg/gis-platform.json``.  A password for the
``gis`` superuser is generated at init and stored next to it (mode 0600).

PostgreSQL refuses to run as root, so when we are root the cluster directory is owned by an
unprivileged OS user (``settings.database.pg_os_user``, ``postgres`` by default) and every server
binary runs as that user.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gis_platform.config import Settings
from gis_platform.errors import ConfigurationError

INSTALL_HINT = (
    "Install them with: sudo apt-get install -y postgresql postgis "
    "(Debian 12: postgresql-15 postgresql-15-postgis-3), or run `make up`, which does it for you. "
    "Alternatively point GIS_DATABASE_URL at an existing PostGIS server."
)
DB_NAME = "gis"
DB_USER = "gis"                 # the cluster's owner: migrations, backups, administration
APP_ROLE = "gis_platform_app"   # what the server and the CLI connect as (least privilege)


@dataclass(frozen=True)
class PgInstall:
    """Where the PostgreSQL server binaries and shared files live."""

    bin_dir: Path
    share_dir: Path
    version: int

    def has_postgis(self) -> bool:
        """True if the PostGIS extension is installed for this PostgreSQL version."""
        return (self.share_dir / "extension" / "postgis.control").exists()


def find_postgres(bin_dir: Path | None = None) -> PgInstall:
    """Locate PostgreSQL server binaries, newest version first.

    Raises ConfigurationError naming the packages to install when none is found.
    """
    candidates: list[Path] = []
    if bin_dir is not None:
        candidates.append(Path(bin_dir))
    else:
        roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                       key=lambda p: _version_key(p.parent.name), reverse=True)
        candidates.extend(roots)
        which = shutil.which("pg_ctl")
        if which:
            candidates.append(Path(os.path.realpath(which)).parent)
    for cand in candidates:
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists() and (cand / "postgres").exists():
            version = _server_version(cand)
            share = _share_dir(cand, version)
            return PgInstall(bin_dir=cand, share_dir=share, version=version)
    raise ConfigurationError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. " + INSTALL_HINT
    )


def require_postgis(install: PgInstall) -> None:
    """Raise a ConfigurationError naming the exact Debian package if PostGIS is missing."""
    if not install.has_postgis():
        raise ConfigurationError(
            f"PostGIS is not installed for PostgreSQL {install.version} "
            f"(no postgis.control in {install.share_dir / 'extension'}). "
            f"Install it with: sudo apt-get install -y postgresql-{install.version}-postgis-3 "
            "(or run `make up`, which installs it)."
        )


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in name.split("."))
    except ValueError:
        return (0,)


def _server_version(bin_dir: Path) -> int:
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    return int(out.split(")")[1].strip().split(".")[0].split()[0])


def _share_dir(bin_dir: Path, version: int) -> Path:
    pg_config = bin_dir / "pg_config"
    if pg_config.exists():
        try:
            out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True,
                                 check=True).stdout.strip()
            if out:
                return Path(out)
        except subprocess.CalledProcessError:
            pass
    for cand in (Path(f"/usr/share/postgresql/{version}"), bin_dir.parent / "share" / "postgresql",
                 bin_dir.parent / "share"):
        if (cand / "extension").is_dir():
            return cand
    return Path(f"/usr/share/postgresql/{version}")


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently free TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like PostgreSQL itself: connections of our last run in TIME_WAIT don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def available_memory_bytes() -> int:
    """Physical memory, or the cgroup's limit when that is lower (containers)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def memory_options(settings: Settings) -> str:
    """``-c`` options sizing the embedded cluster's memory to the machine, at each start.

    initdb's 128 MB (and the 256 MB written at init) hold a fraction of a city's tile
    working set: the large demo's z14-z16 overviews alone are ~400 MB, and every page
    missing from shared_buffers is a copy from the OS cache.  A quarter of memory for
    shared_buffers and three quarters as the planner's cache estimate is PostgreSQL's own
    advice for a dedicated server; ``pg_shared_buffers_mb`` overrides it.
    """
    mem_mb = available_memory_bytes() // (1024 * 1024)
    buffers = settings.database.pg_shared_buffers_mb or max(128, min(4096, mem_mb // 4))
    cache = max(buffers, mem_mb * 3 // 4)
    return f"-c shared_buffers={int(buffers)}MB -c effective_cache_size={int(cache)}MB"


class EmbeddedPostgres:
    """Lifecycle of the platform's own PostgreSQL + PostGIS cluster."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.resolved_data_dir() / "pg"
        self.pgdata = self.root / "data"
        self.state_file = self.root / "gis-platform.json"
        self.app_state_file = settings.resolved_data_dir() / "db-app.json"
        self.log_file = self.root / "postgres.log"
        self._install: PgInstall | None = None

    # -- discovery ---------------------------------------------------------------------
    @property
    def install(self) -> PgInstall:
        if self._install is None:
            self._install = find_postgres(self.settings.database.pg_bin_dir)
        return self._install

    def _os_user(self) -> pwd.struct_passwd | None:
        """The unprivileged user that owns the cluster when we are root, else None."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.settings.database.pg_os_user)
        except KeyError as exc:
            raise ConfigurationError(
                f"Running as root, the embedded PostgreSQL needs an unprivileged OS user "
                f"'{self.settings.database.pg_os_user}', which does not exist. Create it "
                f"(`useradd --system {self.settings.database.pg_os_user}`, or install the postgresql "
                "package, which creates 'postgres'), or set GIS_PG_OS_USER."
            ) from exc

    def _run(self, args: list[str], *, check: bool = True, timeout: float = 120,
             ) -> subprocess.CompletedProcess[str]:
        user = self._os_user()
        kwargs: dict = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout,
                              env=env, cwd="/", **kwargs)

    def _bin(self, name: str) -> str:
        return str(self.install.bin_dir / name)

    # -- state -------------------------------------------------------------------------
    def _state(self) -> dict:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {}

    def _write_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.state_file)
        # What the least-privilege login needs, where the service user can read it (the
        # owner's password stays in the cluster's folder, which it cannot enter).
        if "app_password" in state:
            app = {"port": state["port"], "app_password": state["app_password"]}
            tmp = self.app_state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(app, indent=2))
            os.chmod(tmp, 0o600)
            tmp.replace(self.app_state_file)

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self.state_file.exists()

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    def url(self) -> str:
        """The owner's connection URL (TCP on 127.0.0.1): migrations and administration."""
        state = self._state()
        if not state:
            raise ConfigurationError("The embedded cluster is not initialized: run `gis-platform db start`.")
        return (f"postgresql://{DB_USER}:{state['password']}@127.0.0.1:{state['port']}/{DB_NAME}"
                "?application_name=gis-platform")

    def app_url(self, dbname: str = DB_NAME) -> str:
        """The least-privilege login's URL (``gis_platform_app``): what the server uses."""
        try:
            state = json.loads(self.app_state_file.read_text())
        except (OSError, ValueError):
            state = {}
        if "app_password" not in state:
            raise ConfigurationError("The embedded cluster is not initialized: run `gis-platform db start`.")
        return (f"postgresql://{APP_ROLE}:{state['app_password']}@127.0.0.1:{state['port']}/"
                f"{dbname}?application_name=gis-platform")

    # -- lifecycle ---------------------------------------------------------------------
    def init(self) -> None:
        """Create the cluster once (idempotent)."""
        if self.initialized:
            return
        require_postgis(self.install)
        user = self._os_user()
        self._let_cluster_user_in(user)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._check_reachable(user)
        if self.pgdata.exists():
            # A half-finished earlier initdb: start over.
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir(mode=0o700)
        self.socket_dir.mkdir(exist_ok=True)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / ".pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if user is not None:
            for p in (self.pgdata, self.socket_dir, pwfile):
                os.chown(p, user.pw_uid, user.pw_gid)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        try:
            self._run([self._bin("initdb"), "-D", str(self.pgdata), "-U", DB_USER,
                       "--pwfile", str(pwfile), "--auth=scram-sha-256", "--encoding=UTF8",
                       "--locale=C.UTF-8"], timeout=300)
        except subprocess.CalledProcessError as exc:
            raise ConfigurationError(f"initdb failed: {exc.stderr.strip()[-2000:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        port = self.settings.database.pg_port or free_port()
        self._write_state({"password": password, "port": port, "version": self.install.version,
                           "app_password": secrets.token_urlsafe(24)})
        conf = self.pgdata / "postgresql.auto.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# written by gis-platform\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = '256MB'\n"
                "work_mem = '32MB'\n"
                "maintenance_work_mem = '256MB'\n"
                "fsync = on\n"
                "max_wal_size = '2GB'\n"
                "jit = off\n"
            )

    def _let_cluster_user_in(self, user: pwd.struct_passwd | None) -> None:
        """The data directory is private (0700 by the umask); the cluster's OS user may pass
        through it to its own folder: group = that user's group, mode 0710."""
        data_dir = self.root.parent
        data_dir.mkdir(parents=True, exist_ok=True)
        if user is None:
            return
        st = data_dir.stat()
        if not st.st_mode & 0o011 or (st.st_gid != user.pw_gid and not st.st_mode & 0o001):
            os.chown(data_dir, st.st_uid, user.pw_gid)
            os.chmod(data_dir, (st.st_mode & 0o700) | 0o010)

    def _check_reachable(self, user: pwd.struct_passwd) -> None:
        """Every parent of the cluster dir must be traversable by the service user."""
        for parent in [self.root, *self.root.parents]:
            st = parent.stat()
            if st.st_uid == user.pw_uid:
                continue
            if not st.st_mode & 0o001 and not (st.st_gid == user.pw_gid and st.st_mode & 0o010):
                raise ConfigurationError(
                    f"The embedded cluster runs as OS user '{user.pw_name}', who cannot enter "
                    f"{parent}. Choose a data directory it can reach, e.g. "
                    f"GIS_DATA_DIR=/var/lib/gis-platform."
                )

    def status(self) -> dict:
        """Running state, port and data dir."""
        running = False
        if (self.pgdata / "PG_VERSION").exists():
            res = self._run([self._bin("pg_ctl"), "status", "-D", str(self.pgdata)], check=False)
            running = res.returncode == 0
        state = self._state()
        return {"initialized": self.initialized, "running": running, "port": state.get("port"),
                "data_dir": str(self.pgdata), "version": state.get("version")}

    def start(self, timeout: float = 60) -> str:
        """Init if needed, start if not running, make sure PostGIS exists; return the URL."""
        self.init()
        if not self.status()["running"]:
            state = self._state()
            port = state["port"]
            if not _port_free(port):
                # Someone else took our port since last time: pick a new one.
                port = self.settings.database.pg_port or free_port()
                state["port"] = port
                self._write_state(state)
            self.socket_dir.mkdir(exist_ok=True)
            user = self._os_user()
            self._let_cluster_user_in(user)
            if user is not None:
                os.chown(self.socket_dir, user.pw_uid, user.pw_gid)
                if self.log_file.exists():
                    os.chown(self.log_file, user.pw_uid, user.pw_gid)
                else:
                    self.log_file.touch()
                    os.chown(self.log_file, user.pw_uid, user.pw_gid)
            # pg_ctl copes with a stale postmaster.pid after an unclean shutdown: postgres
            # checks whether the recorded PID is alive and runs crash recovery from WAL.
            def pg_ctl_start(options: str) -> subprocess.CompletedProcess:
                return self._run([self._bin("pg_ctl"), "start", "-w", "-t", str(int(timeout)),
                                  "-D", str(self.pgdata), "-l", str(self.log_file),
                                  "-o", f"-p {port} {options}"], check=False, timeout=timeout + 30)

            res = pg_ctl_start(memory_options(self.settings))
            if res.returncode != 0 and not self.settings.database.pg_shared_buffers_mb and \
                    "shared memory" in self._log_tail():
                # A host that cannot map that much shared memory (strict overcommit, a
                # small container): start with the cluster's own configuration instead.
                res = pg_ctl_start("")
            if res.returncode != 0:
                raise ConfigurationError(
                    f"The embedded PostgreSQL did not start: {res.stderr.strip() or res.stdout.strip()}"
                    f"\n{self._log_tail()}"
                )
        self._ensure_postgis()
        return self.url()

    def _log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""

    def _ensure_postgis(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        admin = psycopg.conninfo.make_conninfo(self.url(), dbname="postgres")
        while True:
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                        (DB_NAME,)).fetchone():
                        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
                with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                    self._ensure_app_role(conn)
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _ensure_app_role(self, conn) -> None:
        """The least-privilege login exists and has this cluster's app password (its grants
        come from migration 0007)."""
        from psycopg import sql

        state = self._state()
        if "app_password" not in state or not self.app_state_file.exists():
            state.setdefault("app_password", secrets.token_urlsafe(24))   # an older cluster
            self._write_state(state)
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                 "NOBYPASSRLS").format(sql.Identifier(APP_ROLE)))
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(APP_ROLE), sql.Literal(state["app_password"])))

    def stop(self, mode: str = "fast") -> bool:
        """Stop the cluster if running; returns True if it was running."""
        if not self.status()["running"]:
            return False
        self._run([self._bin("pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.pgdata)],
                  timeout=120)
        return True

    def kill(self) -> None:
        """Crash the postmaster (SIGKILL) – for tests of unclean shutdown recovery."""
        pid_file = self.pgdata / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().splitlines()[0])
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                return
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            # Children of a SIGKILLed postmaster exit on their own once they notice.
            time.sleep(0.5)
