"""Hexagon grids and aggregation in PostGIS, checked against cases computed by hand."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely
from shapely.geometry import LineString, box

from indicators.hexgrid import aggregate, create_hex_grid
from indicators.store import Indicator, load_values, read_values, register_area_unit, upsert_indicator
from layers.ingest import ingest_geodataframe

R = 500.0


def _expected_hexagons(rect: shapely.Geometry, r: float) -> list[shapely.Geometry]:
    """Flat-topped hexagons of circumradius r centred at (1.5 r i, sqrt(3) r (j + i/2 mod 1)),
    the lattice ST_HexagonGrid uses (origin at 0,0), that overlap ``rect`` by some area."""
    h = math.sqrt(3) * r
    minx, miny, maxx, maxy = rect.bounds
    out = []
    for i in range(int(minx // (1.5 * r)) - 2, int(maxx // (1.5 * r)) + 3):
        for j in range(int(miny // h) - 2, int(maxy // h) + 3):
            cx, cy = 1.5 * r * i, h * j + (h / 2 if i % 2 else 0)
            hexagon = shapely.Polygon([(cx + r * math.cos(a), cy + r * math.sin(a))
                                       for a in np.radians(np.arange(0, 360, 60))])
            if hexagon.intersection(rect).area > 1e-6:
                out.append(hexagon)
    return out


@pytest.fixture
def square_city(db_url: str) -> gpd.GeoDataFrame:
    """Two 3 km x 2 km districts side by side in UTM-K, stored in EPSG:4326 like every layer."""
    x0, y0 = 955_000.0, 1_950_000.0
    gdf = gpd.GeoDataFrame({"code": ["A", "B"], "name": ["가구", "나구"]},
                           geometry=[box(x0, y0, x0 + 3000, y0 + 2000), box(x0 + 3000, y0, x0 + 6000, y0 + 2000)],
                           crs="EPSG:5179")
    ingest_geodataframe(db_url, gdf, "blocks", metadata={"access_level": "public", "title": "Blocks"})
    with psycopg.connect(db_url, autocommit=True) as conn:
        register_area_unit(conn, "block", "blocks", "code", "name", "Blocks", "블록")
    return gdf


def test_hexagon_grid_has_the_cells_and_area_computed_by_hand(db_url, square_city):
    city = shapely.union_all(square_city.geometry.values)
    expected = _expected_hexagons(city, R)
    rep = create_hex_grid(db_url, "hex_test", clip_layer_id="blocks", radius_m=R, unit_id="hex_test")
    assert rep["cells"] == len(expected)
    # Clipped cells tile the city exactly (reprojection to 4326 and back costs a few m² at most).
    assert rep["area_km2"] == pytest.approx(city.area / 1e6, rel=1e-3)
    with psycopg.connect(db_url) as conn:
        full = conn.execute("SELECT max(area_km2) FROM gis_data.hex_test").fetchone()[0]
    assert full == pytest.approx(3 * math.sqrt(3) / 2 * R * R / 1e6, rel=1e-3)


def test_points_and_lines_aggregate_into_areas_as_computed_by_hand(db_url, square_city):
    x0, y0 = 955_000.0, 1_950_000.0
    pts = gpd.GeoDataFrame({"seats": [10, 20, 30, 5]}, crs="EPSG:5179", geometry=shapely.points(
        [[x0 + 500, y0 + 500], [x0 + 1500, y0 + 700], [x0 + 2500, y0 + 1500], [x0 + 4000, y0 + 1000]]))
    ingest_geodataframe(db_url, pts, "benches", metadata={"access_level": "public", "title": "Benches"})
    # 1 km inside A, then 1.5 km inside B: length density 1/6 and 1.5/6 km per km²
    lines = gpd.GeoDataFrame({"kind": ["path"]}, crs="EPSG:5179",
                             geometry=[LineString([(x0 + 2000, y0 + 1000), (x0 + 4500, y0 + 1000)])])
    ingest_geodataframe(db_url, lines, "paths", metadata={"access_level": "public", "title": "Paths"})
    with psycopg.connect(db_url, autocommit=True) as conn:
        count = dict(aggregate(conn, "block", "benches", "count")[0])
        total = dict(aggregate(conn, "block", "benches", "sum", value_column="seats")[0])
        dens = dict(aggregate(conn, "block", "benches", "density")[0])
        length = dict(aggregate(conn, "block", "paths", "length_density")[0])
    assert count == {"A": 3, "B": 1}
    assert total == {"A": 60, "B": 5}
    assert dens["A"] == pytest.approx(3 / 6, rel=1e-3) and dens["B"] == pytest.approx(1 / 6, rel=1e-3)
    assert length["A"] == pytest.approx(1 / 6, rel=2e-3) and length["B"] == pytest.approx(1.5 / 6, rel=2e-3)


def test_an_aggregate_of_restricted_data_is_restricted(db_url, square_city):
    from indicators.hexgrid import aggregate_indicator

    pts = gpd.GeoDataFrame({"k": [1]}, geometry=shapely.points([[955_100.0, 1_950_100.0]]), crs="EPSG:5179")
    ingest_geodataframe(db_url, pts, "valves", metadata={"title": "Valves", "access_level": "restricted"})
    with psycopg.connect(db_url, autocommit=True) as conn:
        aggregate_indicator(conn, Indicator(id="valves_n", name_ko="밸브", name_en="Valves"),
                            "block", "valves", "count", 2024)
        level = conn.execute("SELECT access_level FROM gis_meta.indicators WHERE id = 'valves_n'").fetchone()[0]
    assert level == "restricted"


def test_values_with_codes_of_another_code_system_are_refused_with_a_hint(db_url, square_city):
    import pandas as pd

    from gis_platform.errors import Unprocessable

    with psycopg.connect(db_url, autocommit=True) as conn:
        upsert_indicator(conn, Indicator(id="pop", name_ko="인구", name_en="Population"))
        with pytest.raises(Unprocessable, match="another code system"):
            load_values(conn, "pop", "block", pd.DataFrame({"area_code": ["11110"], "year": [2020], "value": [1]}))
        load_values(conn, "pop", "block", pd.DataFrame({"area_code": ["A", "B"], "year": [2020, 2020],
                                                        "value": [1.5, None]}))
        got = read_values(conn, "pop", "block")
    assert got["area_code"].tolist() == ["A", "B"] and np.isnan(got["value"][1])


def test_the_seoul_500m_grid_covers_the_city(map_world):
    with psycopg.connect(map_world.db_url) as conn:
        n, area = conn.execute("SELECT count(*), sum(area_km2) FROM gis_data.hex_500m").fetchone()
        city = conn.execute("SELECT sum(area_km2) FROM gis_data.districts").fetchone()[0]
    assert n == map_world.counts["hex_500m"] == 1050   # measured; see bench/maps/RESULTS.md
    assert area == pytest.approx(city, rel=0.01)
