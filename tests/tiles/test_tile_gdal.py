"""GDAL's MVT driver (what QGIS and ogr2ogr use) reads our tiles and TileJSON."""

from __future__ import annotations

import json
import shutil
import subprocess

OGR2OGR = shutil.which("ogr2ogr")


def ogr2ogr_geojson(tmp_path, source: str, *args: str) -> dict:
    """Convert what GDAL reads from ``source`` to GeoJSON (GDAL 3.6 has no ogrinfo -json)."""
    # gdal-bin is a system requirement (scripts/install-system.sh): missing is a failure.
    assert OGR2OGR, "ogr2ogr not found: apt-get install -y gdal-bin"
    target = tmp_path / "out.geojson"
    out = subprocess.run([OGR2OGR, "-f", "GeoJSON", str(target), source, *args],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={"GDAL_HTTP_TIMEOUT": "30", "CPL_DEBUG": "OFF"})
    assert out.returncode == 0, out.stderr
    return json.loads(target.read_text())


def test_gdal_reads_a_zoom_level_through_the_tilejson(city_server, tmp_path):
    base = f"{city_server.url}/collections/roads/tiles/WebMercatorQuad"
    doc = ogr2ogr_geojson(tmp_path, f"MVT:{base}/13", "-oo", "TILE_EXTENSION=mvt",
                          "-oo", f"METADATA_FILE={base}/tilejson.json", "-t_srs", "EPSG:4326", "roads")
    feats = doc["features"]
    assert len(feats) >= 45          # the 40 grid streets (+ stubs), possibly split at tile edges
    props = feats[0]["properties"]
    assert {"name", "road_class", "lanes", "width_m"} <= set(props)
    lons = [c[0] for f in feats for c in f["geometry"]["coordinates"]]
    assert 126.89 < min(lons) and max(lons) < 127.11          # back in lon/lat, in Seoul
