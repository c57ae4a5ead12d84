"""HTTP Basic with the API key as the password, any user name (#20 item 3): what QGIS 3.22's
auth configurations and GDAL's GDAL_HTTP_USERPWD send - no custom header needed."""

from __future__ import annotations

import os
import subprocess

import httpx


def ogrinfo(url: str, layer: str, userpwd: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GDAL_", "CPL_"))}
    if userpwd:
        env.update(GDAL_HTTP_USERPWD=userpwd, GDAL_HTTP_AUTH="BASIC")
    return subprocess.run(["ogrinfo", "-ro", "-so", f"OAPIF:{url}", layer], capture_output=True, text=True,
                          timeout=120, env=env, check=False)


def test_gdal_reads_a_restricted_layer_with_basic_auth(city_server, planner_token):
    url = city_server.url
    with_key = ogrinfo(url, "facilities", f"qgis-user:{planner_token}")
    assert with_key.returncode == 0, with_key.stderr[-1500:]
    assert "Feature Count" in with_key.stdout or "Geometry:" in with_key.stdout
    without = ogrinfo(url, "facilities", None)
    assert without.returncode != 0 or "facilities" not in without.stdout
    wrong = httpx.get(f"{url}/collections/facilities", auth=("qgis-user", "gis_nope_nope"))
    assert wrong.status_code == 401 and "API key" in wrong.json()["detail"]
    # any user name
    for user in ("", "x", "행정"):
        r = httpx.get(f"{url}/collections/facilities", auth=(user, planner_token))
        assert r.status_code == 200
