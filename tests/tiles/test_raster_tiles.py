"""Raster tiles from a catalogued COG: PNG/WebP, rescale, colormap, transparency, access."""

from __future__ import annotations

from pathlib import Path

import morecantile
import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import start_server

WM = morecantile.tms.get("WebMercatorQuad")
W, S, E, N = 126.95, 37.52, 127.05, 37.58       # the raster's extent (central Seoul)
NODATA = -9999.0


def make_cog(path: Path) -> dict:
    """A float32 'surface temperature' COG: a west-east gradient 20..40, a nodata hole."""
    import rasterio
    from rasterio.transform import from_bounds
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    width, height = 400, 240
    data = np.tile(np.linspace(20, 40, width, dtype="float32"), (height, 1))
    data[100:140, 180:220] = NODATA                 # a hole in the middle
    src = path.with_suffix(".src.tif")
    with rasterio.open(src, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="float32", crs="EPSG:4326", nodata=NODATA,
                       transform=from_bounds(W, S, E, N, width, height)) as ds:
        ds.write(data, 1)
    cog_translate(src, path, cog_profiles.get("deflate"), quiet=True)
    valid = data[data != NODATA]
    return {"count": 1, "width": width, "height": height, "nodata": NODATA, "crs": "EPSG:4326",
            "bands": [{"index": 1, "dtype": "float32", "statistics": {
                "min": float(valid.min()), "max": float(valid.max()),
                "p2": float(np.percentile(valid, 2)), "p98": float(np.percentile(valid, 98))}}]}


def register_raster(db_url: str, layer_id: str, path: Path, info: dict, access: str = "public") -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gis_meta.layers (id, title, kind, storage_srid, raster_path, raster_info, "
            "extent, access_level, data_version) VALUES (%s, %s, 'raster', 0, %s, %s, %s, %s, "
            "nextval('gis_meta.data_version_seq'))",
            (layer_id, "Surface temperature", str(path), Jsonb(info), [W, S, E, N], access))


@pytest.fixture
def raster_server(db_url, tmp_path, tile_settings):
    cog = tmp_path / "heat.tif"
    info = make_cog(cog)
    register_raster(db_url, "heat", cog, info)
    register_raster(db_url, "secret_heat", cog, info, access="restricted")
    srv = start_server(tile_settings())
    with srv.client() as c:
        yield c
    srv.stop()


def read_image(content: bytes):
    from rasterio.io import MemoryFile

    with MemoryFile(content) as mem, mem.open() as ds:
        return ds.read(), ds.driver


def url(z, x, y, ext="png", layer="heat", query=""):
    return f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}.{ext}{query}"


def test_png_tile_is_rgba_with_the_data_opaque(raster_server):
    t = WM.tile(127.0, 37.55, 13)
    r = raster_server.get(url(t.z, t.x, t.y))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    arr, driver = read_image(r.content)
    assert driver == "PNG" and arr.shape[0] == 2        # grey + alpha
    assert (arr[-1] == 255).mean() > 0.5


def test_nodata_and_area_beyond_the_raster_are_transparent(raster_server):
    # z11 tile holds the whole raster and much around it.
    t = WM.tile(127.0, 37.55, 11)
    arr, _ = read_image(raster_server.get(url(t.z, t.x, t.y)).content)
    alpha = arr[-1]
    assert (alpha == 0).any() and (alpha == 255).any()
    # The nodata hole in the middle of the raster is transparent too.
    t16 = WM.tile(127.0, 37.55, 16)
    hole, _ = read_image(raster_server.get(url(t16.z, t16.x, t16.y)).content)
    assert (hole[-1] == 0).mean() > 0.2


def test_tile_with_no_raster_pixel_is_an_empty_204(raster_server):
    t = WM.tile(128.5, 36.0, 12)
    r = raster_server.get(url(t.z, t.x, t.y))
    assert r.status_code == 204 and r.content == b""


def test_rescale_changes_the_grey_levels(raster_server):
    t = WM.tile(126.96, 37.55, 14)                        # the cool (~21) west edge
    dark, _ = read_image(raster_server.get(url(t.z, t.x, t.y, query="?rescale=20,40")).content)
    bright, _ = read_image(raster_server.get(url(t.z, t.x, t.y, query="?rescale=0,22")).content)
    opaque = dark[-1] == 255
    assert bright[0][opaque].mean() > dark[0][opaque].mean() + 100


def test_named_colormap_gives_colour_pixels(raster_server):
    t = WM.tile(127.0, 37.55, 13)
    arr, _ = read_image(raster_server.get(url(t.z, t.x, t.y, query="?colormap=viridis")).content)
    assert arr.shape[0] == 4
    opaque = arr[3] == 255
    assert not np.array_equal(arr[0][opaque], arr[1][opaque])   # not grey


def test_webp_tiles_are_served(raster_server):
    t = WM.tile(127.0, 37.55, 13)
    r = raster_server.get(url(t.z, t.x, t.y, ext="webp"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert r.content[:4] == b"RIFF" and r.content[8:12] == b"WEBP"


def test_raster_tiles_are_cached_with_an_etag(raster_server):
    t = WM.tile(127.0, 37.55, 13)
    first = raster_server.get(url(t.z, t.x, t.y))
    assert raster_server.get(url(t.z, t.x, t.y), headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    other = raster_server.get(url(t.z, t.x, t.y, query="?colormap=magma"))
    assert other.headers["etag"] != first.headers["etag"]
    assert "content-encoding" not in first.headers        # PNG is already compressed


@pytest.mark.parametrize("query,needle", [
    ("?colormap=no_such_map", "colormap"),
    ("?rescale=40,20", "smaller"),
    ("?rescale=abc", "min,max"),
    ("?bidx=3", "bands 1..1"),
])
def test_bad_raster_parameters_are_400(raster_server, query, needle):
    r = raster_server.get(url(13, 6985, 3172, query=query))
    assert r.status_code == 400 and needle in r.json()["detail"]


def test_raster_layer_refuses_mvt(raster_server):
    r = raster_server.get(url(13, 6985, 3172, ext="mvt"))
    assert r.status_code == 400 and "raster" in r.json()["detail"]


def test_restricted_raster_is_404_for_anonymous(raster_server):
    t = WM.tile(127.0, 37.55, 13)
    assert raster_server.get(url(t.z, t.x, t.y, layer="secret_heat")).status_code == 404
    assert raster_server.get("/collections/secret_heat/tiles/WebMercatorQuad/tilejson.json").status_code == 404


def test_raster_tilejson_and_style_point_at_png_tiles(raster_server):
    tj = raster_server.get("/collections/heat/tiles/WebMercatorQuad/tilejson.json?colormap=viridis").json()
    assert ".png?v=" in tj["tiles"][0] and "colormap=viridis" in tj["tiles"][0]
    st = raster_server.get("/collections/heat/style.json").json()
    assert st["sources"]["raster-heat"]["type"] == "raster"
    assert any(l["type"] == "raster" for l in st["layers"])
