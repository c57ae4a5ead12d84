"""A streaming replica of the test cluster, on loopback, for the read-replica tests (#19).

``pg_basebackup -R`` copies the running primary (the session's embedded cluster) and writes
the standby settings; the copy starts as a hot standby on a port of its own and streams the
primary's WAL from then on.  Run as the cluster's OS user, like the primary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from gis_platform.db.embedded import EmbeddedPostgres, free_port


class Replica:
    def __init__(self, primary: EmbeddedPostgres, root: Path) -> None:
        self.primary = primary
        self.root = root
        self.pgdata = root / "data"
        self.log = root / "replica.log"
        self.port = free_port()

    # --- lifecycle ------------------------------------------------------------------------
    def _as_cluster_user(self, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        user = self.primary._os_user()
        kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd="/", check=True, **kw)

    def create(self) -> None:
        user = self.primary._os_user()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "run").mkdir(exist_ok=True)
        self.log.touch()
        if user is not None:
            for p in (self.root, self.root / "run", self.log):
                os.chown(p, user.pw_uid, user.pw_gid)
        state = self.primary._state()
        conninfo = (f"host=127.0.0.1 port={state['port']} user=gis password={state['password']} "
                    "application_name=test-replica")
        self._as_cluster_user([self.primary._bin("pg_basebackup"), "-d", conninfo, "-D",
                               str(self.pgdata), "-R", "-X", "stream", "-c", "fast"])
        with (self.pgdata / "postgresql.auto.conf").open("a") as fh:
            fh.write(f"\n# the test replica\nport = {self.port}\n"
                     f"unix_socket_directories = '{self.root / 'run'}'\nhot_standby = on\n"
                     "shared_buffers = '128MB'\n")

    def start(self) -> None:
        self._as_cluster_user([self.primary._bin("pg_ctl"), "start", "-w", "-t", "60", "-D",
                               str(self.pgdata), "-l", str(self.log)])

    def stop(self) -> None:
        self._as_cluster_user([self.primary._bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D",
                               str(self.pgdata)])

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    # --- use ------------------------------------------------------------------------------
    def url_for(self, primary_url: str) -> str:
        """The same login and database as ``primary_url``, on the replica."""
        return psycopg.conninfo.make_conninfo(primary_url, port=str(self.port), host="127.0.0.1")

    def owner(self, dbname: str = "postgres") -> psycopg.Connection:
        state = self.primary._state()
        return psycopg.connect(host="127.0.0.1", port=self.port, user="gis", password=state["password"],
                               dbname=dbname, autocommit=True)

    def pause(self) -> None:
        with self.owner() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        with self.owner() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, timeout: float = 60) -> None:
        """Until the replica has replayed everything the primary had written when asked."""
        with psycopg.connect(self.primary.url(), autocommit=True) as p:
            target = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.owner() as conn:
            while True:
                done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]
                if done:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError("the replica did not catch up")
                time.sleep(0.05)
