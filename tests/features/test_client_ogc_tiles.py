"""OGC API Tiles discovery as clients do it: GDAL's ``OGCAPI:`` driver (pyogrio's GDAL 3.12)
finds a collection's vector tiles through the registered link relations alone and reads
them; /conformance declares the Tiles and Tile Matrix Set classes; the KoreaUTMKQuad grid
states its origin in EPSG:5179's own axis order (northing, easting), checked against pyproj
and by fetching the tile a client computes from the served definition.

One server over the demo city of tests/tiles, plus ``regions``: one polygon large enough to
be drawn at zoom 1, the level GDAL lists for it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator

import geopandas as gpd
import httpx
import pyproj
import pytest
from shapely.geometry import box

from gis_platform.config import Settings
from layers.ingest import ingest_geodataframe
from tests.conftest import LiveServer, owner_url, scratch_database, start_server
from tests.tiles.conftest import decode, ingest_city, roads_gdf

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"
REGION = (124.5, 33.5, 130.5, 38.5)            # lon/lat: most of South Korea


@pytest.fixture(scope="module")
def city(admin_url: str, template_db: str, tmp_path_factory) -> Iterator[LiveServer]:
    with scratch_database(admin_url, template_db, "tiles_") as db_url:
        ingest_city(db_url)
        regions = gpd.GeoDataFrame({"name": ["남한"]}, geometry=[box(*REGION)], crs="EPSG:4326")
        ingest_geodataframe(db_url, regions, "regions",
                            metadata={"title": "Regions", "access_level": "public"})
        server = start_server(Settings(database_url=db_url, admin_database_url=owner_url(db_url),
                                       data_dir=tmp_path_factory.mktemp("tiles-data"),
                                       _env_file=None, pool_timeout=3.0))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def client(city) -> Iterator[httpx.Client]:
    with city.client() as c:
        yield c


def test_conformance_declares_tiles_and_tile_matrix_set_classes(client):
    classes = client.get("/conformance").json()["conformsTo"]
    for needle in ("ogcapi-tiles-1/1.0/conf/core", "ogcapi-tiles-1/1.0/conf/tileset",
                   "ogcapi-tiles-1/1.0/conf/tilesets-list", "ogcapi-tiles-1/1.0/conf/geodata-tilesets",
                   "ogcapi-tiles-1/1.0/conf/dataset-tilesets", "ogcapi-tiles-1/1.0/conf/mvt",
                   "tms/2.0/conf/tilematrixset", "tms/2.0/conf/json-tilematrixset"):
        assert any(c.endswith(needle) for c in classes), needle


def test_landing_page_and_collections_link_tilesets_by_registered_relations(client):
    rels = {l["rel"]: l["href"] for l in client.get("/").json()["links"]}
    assert "tiles" not in rels
    assert rels[f"{OGC_REL}/tiling-schemes"].endswith("/tileMatrixSets")
    assert client.get(rels[f"{OGC_REL}/tilesets-vector"]).json()["tilesets"]
    collections = client.get("/collections").json()["collections"]
    assert {c["id"] for c in collections} == {"districts", "roads", "regions"}   # not facilities
    for c in collections:
        href = next(l["href"] for l in c["links"] if l["rel"] == f"{OGC_REL}/tilesets-vector")
        assert href.endswith(f"/collections/{c['id']}/tiles")
        assert {t["dataType"] for t in client.get(href).json()["tilesets"]} == {"vector"}


def test_gdal_finds_a_collections_vector_tiles_and_reads_them(city):
    # pyogrio's GDAL (3.12) in a process of its own (the platform hardens GDAL in this one).
    script = """
import json, sys, pyogrio
url = sys.argv[1]
layers = [str(n) for n, _ in pyogrio.list_layers(url)]
df = pyogrio.read_dataframe(url, layer="Zoom level 1")
print(json.dumps({"layers": layers, "names": df["name"].tolist(), "crs": df.crs.to_string(),
                  "centroid": list(df.geometry.union_all().centroid.coords[0])}))
"""
    out = subprocess.run([sys.executable, "-c", script, f"OGCAPI:{city.url}/collections/regions"],
                         capture_output=True, text=True, timeout=240, check=False,
                         env={"GDAL_HTTP_TIMEOUT": "60", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "Zoom level 0" in got["layers"] and "Zoom level 1" in got["layers"]
    assert got["names"] == ["남한"]
    lon, lat = pyproj.Transformer.from_crs(got["crs"], "OGC:CRS84", always_xy=True).transform(*got["centroid"])
    assert REGION[0] < lon < REGION[2] and REGION[1] < lat < REGION[3]


def test_korea_utmk_grid_states_its_origin_in_the_crs_axis_order(client):
    listed = {t["id"]: t for t in client.get("/tileMatrixSets").json()["tileMatrixSets"]}
    assert listed["KoreaUTMKQuad"]["uri"]                          # not null
    doc = client.get("/tileMatrixSets/KoreaUTMKQuad").json()
    assert doc["uri"] == listed["KoreaUTMKQuad"]["uri"]
    crs = pyproj.CRS.from_user_input(doc["crs"])
    assert doc["orderedAxes"] == [a.direction[0].upper() for a in crs.axis_info] == ["N", "E"]
    # A client reads pointOfOrigin in that order and asks for the tile holding a road vertex.
    z = 15
    matrix = next(m for m in doc["tileMatrices"] if m["id"] == str(z))
    north0, east0 = matrix["pointOfOrigin"]
    span = matrix["cellSize"] * matrix["tileWidth"]
    road = roads_gdf().iloc[0]
    lon, lat = road.geometry.coords[0]
    north, east = pyproj.Transformer.from_crs("EPSG:4326", crs).transform(lat, lon)  # authority order
    col, row = math.floor((east - east0) / span), math.floor((north0 - north) / span)
    assert 0 <= col < matrix["matrixWidth"] and 0 <= row < matrix["matrixHeight"]
    r = client.get(f"/collections/roads/tiles/KoreaUTMKQuad/{z}/{col}/{row}.mvt")
    assert r.status_code == 200
    names = {f["properties"]["name"] for f in decode(r.content)["roads"]["features"]}
    assert road["name"] in names
