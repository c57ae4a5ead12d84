"""Real clients against the live server: GDAL's OAPIF driver (ogrinfo, ogr2ogr) and OWSLib."""

from __future__ import annotations

import shutil
import subprocess

import pyogrio

OGRINFO = shutil.which("ogrinfo") or "/usr/bin/ogrinfo"
OGR2OGR = shutil.which("ogr2ogr") or "/usr/bin/ogr2ogr"


def _gdal(*args: str, token: str | None = None) -> str:
    env = {"GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF", "PATH": "/usr/bin:/bin"}
    if token:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {token}"
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=240, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_gdal_lists_the_public_collections_from_the_landing_page(feature_world):
    out = _gdal(OGRINFO, "-ro", "-so", f"OAPIF:{feature_world.server.url}/")
    assert "bike_stations" in out and "districts" in out
    assert "gas_mains" not in out and "survey_points" not in out


def test_gdal_reads_every_feature_across_pages(feature_world, tmp_path):
    dst = tmp_path / "bikes.gpkg"
    _gdal(OGR2OGR, "-f", "GPKG", str(dst), f"OAPIF:{feature_world.server.url}/collections/bike_stations",
          "-oo", "PAGE_SIZE=300")
    df = pyogrio.read_dataframe(dst)
    assert len(df) == 1540 and df["id"].is_unique
    assert df.geometry.x.between(126.7, 127.3).all() and df.geometry.y.between(37.4, 37.8).all()


def test_gdal_where_and_spatial_filter_are_honoured(feature_world, bikes):
    out = _gdal(OGRINFO, "-ro", "-q", f"OAPIF:{feature_world.server.url}/collections/bike_stations",
                "bike_stations", "-where", "numofunits > 20 AND place = '마포구'",
                "-spat", "126.85", "37.5", "127.0", "37.6", "--debug", "on")
    expected = bikes[(bikes.numOfUnits > 20) & (bikes.place == "마포구")].cx[126.85:127.0, 37.5:37.6]
    assert out.count("OGRFeature(bike_stations)") == len(expected) > 0


def test_gdal_sends_the_filter_to_the_server(feature_world):
    env = {"GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "ON", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([OGRINFO, "-ro", "-q", f"OAPIF:{feature_world.server.url}/collections/bike_stations",
                          "bike_stations", "-where", "numofunits > 20"], capture_output=True, text=True,
                         timeout=240, env=env, check=False)
    assert "filter=" in out.stderr and "evaluated on client side" not in out.stderr


def test_gdal_with_a_planner_key_reads_a_restricted_layer(feature_world):
    out = _gdal(OGRINFO, "-ro", "-so", f"OAPIF:{feature_world.server.url}/collections/gas_mains", "gas_mains",
                token=feature_world.planner_token)
    assert "Feature Count: 1500" in out and "material" in out


def test_owslib_lists_collections_reads_features_and_filters(feature_world, bikes):
    from owslib.ogcapi.features import Features  # a dev dependency: a missing one must fail

    api = Features(feature_world.server.url)
    ids = [c["id"] for c in api.collections()["collections"]]
    assert {"bike_stations", "districts"} <= set(ids) and "gas_mains" not in ids
    page = api.collection_items("bike_stations", limit=20, bbox=[126.95, 37.52, 127.03, 37.58])
    assert page["numberReturned"] == 20
    assert page["numberMatched"] == len(bikes.cx[126.95:127.03, 37.52:37.58])
    filtered = api.collection_items("bike_stations", limit=500, filter="numofunits > 20")
    assert filtered["numberMatched"] == int((bikes.numOfUnits > 20).sum())
    assert all(f["properties"]["numofunits"] > 20 for f in filtered["features"])
    queryables = api.collection_queryables("bike_stations")
    assert "numofunits" in queryables["properties"]
