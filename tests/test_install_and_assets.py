"""A new machine: the system check names what is missing; missing front-end assets are a
clear configuration error at start-up, never a 500 or a silent 404."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gis_platform.assets import REQUIRED, missing_vendor_assets, require_vendor_assets
from gis_platform.config import Settings
from gis_platform.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "scripts" / "check-system.sh"


def _fake_pg(root: Path, major: str, *, postgis: bool) -> dict[str, str]:
    lib, share = root / "lib", root / "share"
    bin_dir = lib / major / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("postgres", "initdb", "pg_ctl", "pg_basebackup"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    (share / major / "extension").mkdir(parents=True)
    if postgis:
        (share / major / "extension" / "postgis.control").write_text("")
    return {**os.environ, "GIS_CHECK_PG_LIB": str(lib), "GIS_CHECK_PG_SHARE": str(share)}


def test_system_check_names_the_missing_postgis_extension_for_the_server_version(tmp_path):
    env = _fake_pg(tmp_path, "17", postgis=False)
    r = subprocess.run([str(CHECK)], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if "PostGIS" in ln]
    assert len(lines) == 1
    assert "PostgreSQL 17" in lines[0] and "apt-get install -y postgresql-17-postgis-3" in lines[0]
    pkgs = subprocess.run([str(CHECK), "--packages"], env=env, capture_output=True,
                          text=True).stdout.split()
    assert "postgresql-17-postgis-3" in pkgs


def test_system_check_picks_the_newest_server_and_asks_for_a_server_when_there_is_none(tmp_path):
    env = _fake_pg(tmp_path, "15", postgis=True)
    (tmp_path / "lib" / "16" / "bin").mkdir(parents=True)
    (tmp_path / "lib" / "16" / "bin" / "postgres").write_text("#!/bin/sh\n")
    (tmp_path / "lib" / "16" / "bin" / "postgres").chmod(0o755)
    pkgs = subprocess.run([str(CHECK), "--packages"], env=env, capture_output=True,
                          text=True).stdout.split()
    # 16 is the newest server: its PostGIS (and its missing initdb...) are what is needed.
    assert "postgresql-16-postgis-3" in pkgs and "postgresql-16" in pkgs
    empty = {**env, "GIS_CHECK_PG_LIB": str(tmp_path / "none")}
    r = subprocess.run([str(CHECK)], env=empty, capture_output=True, text=True)
    assert r.returncode == 1 and "apt-get install -y postgresql" in r.stderr


def test_system_check_passes_on_this_machine():
    # make test ran the install step: every artefact is there (this is what CI checks).
    r = subprocess.run([str(CHECK)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_missing_vendor_assets_are_named(tmp_path):
    assert missing_vendor_assets(tmp_path) == list(REQUIRED)
    with pytest.raises(ConfigurationError, match="make assets"):
        require_vendor_assets(tmp_path)
    assert missing_vendor_assets() == []  # make assets ran for this suite


def test_app_refuses_to_start_without_front_end_assets(tmp_path):
    from gis_platform.app import create_app

    settings = Settings(database_url="postgresql://unused/x", static_vendor_dir=tmp_path,
                        _env_file=None)
    with pytest.raises(ConfigurationError, match=r"make assets"):
        create_app(settings, configure_logs=False)


def test_serve_without_front_end_assets_fails_with_one_clear_line(tmp_path):
    env = {**os.environ, "GIS_STATIC_VENDOR_DIR": str(tmp_path),
           "GIS_DATABASE_URL": "postgresql://127.0.0.1:1/none", "COLUMNS": "300"}
    r = subprocess.run([sys.executable, "-m", "gis_platform.cli", "serve", "--port", "1"],
                       env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "make assets" in r.stderr and "maplibre-gl.mjs" in r.stderr


def test_offline_map_renderer_without_assets_is_a_configuration_error(tmp_path):
    from policy_maps.render_folium import render_folium

    with pytest.raises(ConfigurationError, match="make assets"):
        render_folium(None, None, "ko", vendor_dir=tmp_path)  # type: ignore[arg-type]
