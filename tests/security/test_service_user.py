"""Started as root, the platform serves as an unprivileged user and keeps its files private:
data directory 0710/0700, files 0600, owned by the service user; the cluster's own folder
(and the owner's password in it) is out of the server's reach; backups are 0600."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import _make_world_traversable_tmp, free_port

ROOT = os.geteuid() == 0


def _cli(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gis_platform.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180, **kw)


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])          # effective uid
    raise AssertionError("no Uid line")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def platform_home():
    base = _make_world_traversable_tmp("gis-svc-")
    data = base / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_")}
    env.update(GIS_DATA_DIR=str(data), GIS_PORT=str(free_port()), GIS_LOG_LEVEL="warning",
               GIS_SERVICE_USER="gis-platform-test")
    yield data, env
    _cli(["db", "stop"], env)
    subprocess.run(["rm", "-rf", str(base)], check=False)


def test_serve_as_root_runs_as_the_service_user_and_files_are_private(platform_home, tmp_path):
    from tests.security.conftest import make_dem

    data, env = platform_home
    url = f"http://127.0.0.1:{env['GIS_PORT']}"
    server = subprocess.Popen([sys.executable, "-m", "gis_platform.cli", "serve"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.5)
        me = pwd.getpwnam("gis-platform-test").pw_uid if ROOT else os.geteuid()
        assert _uid_of(server.pid) == me
        assert _uid_of(server.pid) != 0 or not ROOT
        assert httpx.get(url + "/ready").json()["least_privilege"] is True

        made = _cli(["keys", "create", "--name", "ops", "--role", "admin"], env)
        assert made.returncode == 0, made.stderr
        token = next(w for w in made.stdout.split() if w.startswith("gis_"))
        dem = make_dem(tmp_path / "dem.tif")
        r = httpx.post(url + "/layers/upload", headers={"Authorization": f"Bearer {token}"},
                       data={"layer_id": "dem", "access_level": "restricted"},
                       files={"file": ("dem.tif", dem.read_bytes())}, timeout=60)
        assert r.status_code == 201, r.text
    finally:
        server.terminate()
        server.wait(timeout=30)

    rasters = list((data / "rasters").glob("*.tif"))
    assert rasters
    private = [data / "db-app.json", data / "rasters", *rasters]
    for path in private:
        assert _mode(path) in (0o600, 0o700), (path, oct(_mode(path)))
        assert path.stat().st_uid == me, path
    assert _mode(data) == (0o710 if ROOT else 0o700), oct(_mode(data))
    assert _mode(data / "pg") == 0o700
    if ROOT:
        assert (data / "pg").stat().st_uid == pwd.getpwnam("postgres").pw_uid
        # The service user cannot read the owner's password (it sits in the cluster's folder).
        peek = subprocess.run(["setpriv", "--reuid=gis-platform-test", "--regid=gis-platform-test",
                               "--clear-groups", "cat", str(data / "pg" / "gis-platform.json")],
                              capture_output=True, text=True)
        assert peek.returncode != 0 and "Permission denied" in peek.stderr

    backup = tmp_path / "out" / "city.tar"
    done = _cli(["backup", str(backup)], env)
    assert done.returncode == 0, done.stderr
    assert _mode(backup) == 0o600
