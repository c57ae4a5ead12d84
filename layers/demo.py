"""The demo city: real Seoul boundaries with synthetic but plausible networks on top.

Real (shared/data, see its PROVENANCE.md):
* ``districts``      – the 25 gu (JUSO 2015 boundaries) with 2022 presidential-election
  turnout and CCTV counts joined on their codes/names;
* ``neighbourhoods`` – the 424 administrative dongs (KOSTAT 2018);
* ``bike_stations``  – 1,540 Ddareungi bike-share stations.

Synthetic, deterministic (seeded), sized by ``scale``:
* ``roads``          – a planar street network (Delaunay edges of seeded points inside the
  city, denser around district centres), with class, width, lanes, pavement, office;
* ``underground_facilities`` – water, sewer, gas, power, telecom and district-heating lines
  offset from the road centrelines, with plausible depth, diameter, material, owner
  (restricted: exact positions are security-sensitive).

Everything is loaded through the normal ingest path (binary COPY, catalog, versions).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis_platform.db.connections import connect
from gis_platform.errors import ConfigurationError, InvalidParameter
from layers.catalog import get_layer
from layers.ingest import ingest_geodataframe
from layers.ingest.readers import read_csv

SEED = 20261123
METRIC = "EPSG:5179"  # Korea 2000 / Unified CS: metres, for generating geometry

# scale -> number of seed points of the street network (edges ~ 3x points)
SCALES = {"small": 2_000, "city": 16_000, "large": 110_000}

DEMO_LAYERS = ("districts", "neighbourhoods", "bike_stations", "roads", "underground_facilities")
# Which features the tiles show from which zoom (layers.selection): arterials always,
# collectors from z11, local streets from z13, alleys from z14; trunk mains (>= 400 mm) from
# the facilities' first zoom 12, mains >= 200 mm from z13, every line from z14.
ROAD_SELECTION = {"field": "road_class", "values": {"arterial": 0, "collector": 11, "local": 13},
                  "default": 14}
FACILITY_SELECTION = {"field": "diameter_mm", "steps": [[400, 12], [200, 13]], "default": 14}
# What tiles carry per zoom band (tile_server.vector): the class below z13; what a map
# styles and labels by at z13-14; every attribute from z15.
ROAD_STYLE = {"feature_minzoom": ROAD_SELECTION, "overview_attributes": ["road_class"],
              "mid_attributes": ["road_class", "lanes", "width_m", "pavement"]}
FACILITY_STYLE = {"feature_minzoom": FACILITY_SELECTION, "overview_attributes": ["kind", "owner"],
                  "mid_attributes": ["kind", "owner", "diameter_mm", "depth_min_m", "depth_max_m"]}


@dataclass(frozen=True)
class Kind:
    code: str
    name_ko: str
    probability: float      # share of road segments carrying this utility
    offset_m: float         # lateral offset from the road centreline
    depth_mean: float       # depth of cover (m)
    depth_sd: float
    diameters: tuple[int, ...]
    materials: tuple[str, ...]
    owners: tuple[str, ...]


KINDS = (
    Kind("water", "상수도", 0.85, 2.0, 1.2, 0.25, (100, 150, 200, 300, 600), ("DCIP", "STS", "PE"),
         ("서울특별시 상수도사업본부",)),
    Kind("sewer", "하수도", 0.75, -1.5, 2.4, 0.7, (300, 450, 600, 900, 1200), ("PVC", "concrete", "HDPE"),
         ("서울특별시 물순환안전국",)),
    Kind("gas", "도시가스", 0.55, -3.0, 1.1, 0.2, (80, 100, 150, 200, 300), ("PE", "steel"),
         ("서울도시가스", "코원에너지서비스", "예스코", "귀뚜라미에너지")),
    Kind("power", "전력", 0.35, 3.5, 1.3, 0.3, (100, 125, 150, 175), ("PVC conduit", "ELP"),
         ("한국전력공사",)),
    Kind("telecom", "통신", 0.45, 4.2, 0.8, 0.2, (50, 80, 100), ("PVC conduit", "PE"),
         ("KT", "SK브로드밴드", "LG유플러스")),
    Kind("heating", "지역난방", 0.12, -4.5, 1.6, 0.35, (200, 300, 400, 600), ("pre-insulated steel",),
         ("한국지역난방공사", "서울에너지공사")),
)


def data_root() -> Path:
    """Where the real Seoul files live: GIS_SHARED_DATA or ../shared/data of the checkout."""
    import os

    env = os.environ.get("GIS_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent.parent
    candidates += [here.parent / "shared" / "data", here / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if (c / "PROVENANCE.md").exists():
            return c
    raise ConfigurationError("The demo needs the Seoul boundary files (shared/data); set "
                             "GIS_SHARED_DATA to their folder.")


# --- real layers ---------------------------------------------------------------------------
def districts(root: Path) -> gpd.GeoDataFrame:
    gu = pyogrio.read_dataframe(root / "southkorea-seoul-maps/juso/2015/json/seoul_municipalities_geo_simple.json")
    gu = gu.rename(columns={"SIG_CD": "code", "SIG_KOR_NM": "name", "SIG_ENG_NM": "name_en"})
    gu = gu[["code", "name", "name_en", "geometry"]].set_crs("EPSG:4326", allow_override=True)
    votes = pd.read_csv(root / "vuski-admdongkor/ver20220309/vote_sgg.tsv", sep="\t", dtype={"sgg": str})
    votes = votes.rename(columns={"sgg": "code", "POPU_ALL": "voters_registered", "VOTER": "voters"})
    votes["turnout_pct"] = (votes["voters"] / votes["voters_registered"] * 100).round(2)
    gu = gu.merge(votes[["code", "voters_registered", "voters", "turnout_pct"]], on="code", how="left")
    cctv = pd.read_csv(root / "pinkwink-datascience/data/CCTV_in_Seoul.csv", encoding="utf-8-sig")
    cctv = cctv.rename(columns={"기관명": "name", "소계": "cctv_total"})[["name", "cctv_total"]]
    gu = gu.merge(cctv, on="name", how="left")
    area_km2 = gu.to_crs(METRIC).area / 1e6
    gu["area_km2"] = area_km2.round(3)
    gu["cctv_per_km2"] = (gu["cctv_total"] / gu["area_km2"]).round(2)
    return gu


def neighbourhoods(root: Path) -> gpd.GeoDataFrame:
    dong = pyogrio.read_dataframe(
        root / "southkorea-southkorea-maps/kostat/2018/json/skorea-submunicipalities-2018-topo-simple.json")
    dong = dong[dong["code"].astype(str).str.startswith("11")].copy()
    dong = dong.rename(columns={"name_eng": "name_en"})[["code", "name", "name_en", "geometry"]]
    dong = dong.set_crs("EPSG:4326", allow_override=True)
    dong["area_km2"] = (dong.to_crs(METRIC).area / 1e6).round(4)
    return dong


def bike_stations(root: Path) -> Path:
    return root / "seoul-public-bicycle/public/data/seoul_public_bicycle.csv"


# --- synthetic networks ------------------------------------------------------------------
def _sample_points(city_m: shapely.Geometry, centres: np.ndarray, n: int, rng) -> np.ndarray:
    """n points inside the city: 55% uniform, 45% clustered around district centres."""
    minx, miny, maxx, maxy = city_m.bounds
    shapely.prepare(city_m)
    out = []
    need_uniform = int(n * 0.55)
    need_cluster = n - need_uniform
    while need_uniform > 0:
        cand = rng.uniform((minx, miny), (maxx, maxy), size=(need_uniform * 2, 2))
        ok = cand[shapely.contains_xy(city_m, cand[:, 0], cand[:, 1])][:need_uniform]
        out.append(ok)
        need_uniform -= len(ok)
    while need_cluster > 0:
        idx = rng.integers(0, len(centres), size=need_cluster * 2)
        cand = centres[idx] + rng.normal(0, 1400, size=(need_cluster * 2, 2))
        ok = cand[shapely.contains_xy(city_m, cand[:, 0], cand[:, 1])][:need_cluster]
        out.append(ok)
        need_cluster -= len(ok)
    pts = np.vstack(out)
    return np.round(pts, 1)


def roads(gu: gpd.GeoDataFrame, scale: str, seed: int = SEED) -> gpd.GeoDataFrame:
    """A planar street network over the city (deterministic for a given scale and seed)."""
    rng = np.random.default_rng(seed)
    gu_m = gu.to_crs(METRIC)
    city = shapely.union_all(gu_m.geometry.values)
    centres = np.column_stack([gu_m.geometry.centroid.x, gu_m.geometry.centroid.y])
    pts = _sample_points(city, centres, SCALES[scale], rng)
    edges = shapely.delaunay_triangles(shapely.multipoints(pts), only_edges=True)
    lines = np.asarray(shapely.get_parts(edges))
    coords = shapely.get_coordinates(lines).reshape(-1, 2, 2)
    # Canonical, deterministic order (GEOS' output order is an implementation detail).
    order = np.lexsort((coords[:, 1, 1], coords[:, 1, 0], coords[:, 0, 1], coords[:, 0, 0]))
    coords = coords[order]
    length = np.hypot(*(coords[:, 1] - coords[:, 0]).T)
    mids = coords.mean(axis=1)
    spacing = np.sqrt(city.area / len(pts))
    keep = (length < spacing * 3.5) & shapely.contains_xy(city, mids[:, 0], mids[:, 1])
    coords, length, mids = coords[keep], length[keep], mids[keep]
    n = len(coords)
    # Road class: long edges and edges near district centres are the bigger roads.
    d_centre = np.min(np.hypot(mids[:, None, 0] - centres[None, :, 0],
                               mids[:, None, 1] - centres[None, :, 1]), axis=1)
    score = length / spacing + rng.normal(0, 0.35, n) - d_centre / 8000
    cls = np.select([score > 1.9, score > 1.4, score > 0.9], ["arterial", "collector", "local"],
                    default="alley")
    lanes = np.select([cls == "arterial", cls == "collector", cls == "local"],
                      [rng.choice([4, 6, 8], n), rng.choice([2, 4], n), np.full(n, 2)], default=1)
    width = np.round(lanes * 3.25 + rng.uniform(1.0, 4.0, n), 1)
    pavement = np.where(rng.random(n) < 0.88, "asphalt", "concrete")
    district_idx = _district_of(gu_m, mids)
    office = np.array([f"{name} 건설관리과" for name in gu["name"]], dtype=object)[district_idx]
    geoms = shapely.linestrings(coords)
    gdf = gpd.GeoDataFrame({
        "road_class": cls, "lanes": lanes.astype("int32"), "width_m": width, "pavement": pavement,
        "district_code": gu["code"].to_numpy()[district_idx], "managing_office": office,
        "length_m": np.round(length, 1),
    }, geometry=geoms, crs=METRIC)
    return gdf


def _district_of(gu_m: gpd.GeoDataFrame, xy: np.ndarray) -> np.ndarray:
    pts = gpd.GeoDataFrame(geometry=shapely.points(xy), crs=gu_m.crs)
    joined = gpd.sjoin(pts, gu_m[["geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    idx = joined["index_right"].to_numpy()
    # Points on a shared border or in a sliver: nearest district.
    missing = np.isnan(idx.astype(float))
    if missing.any():
        nearest = gpd.sjoin_nearest(pts[missing], gu_m[["geometry"]], how="left")
        nearest = nearest[~nearest.index.duplicated()]
        idx[missing] = nearest["index_right"].to_numpy()
    return idx.astype(int)


def facilities(road_gdf: gpd.GeoDataFrame, seed: int = SEED) -> gpd.GeoDataFrame:
    """Utility lines parallel to the road centrelines, by kind (metric CRS in and out)."""
    rng = np.random.default_rng(seed + 1)
    coords = shapely.get_coordinates(road_gdf.geometry.values).reshape(-1, 2, 2)
    d = coords[:, 1] - coords[:, 0]
    norm = np.hypot(d[:, 0], d[:, 1])[:, None]
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.where(norm == 0, 1, norm)
    n = len(coords)
    classes = road_gdf["road_class"].to_numpy()
    districts_ = road_gdf["district_code"].to_numpy()
    frames = []
    for k in KINDS:
        p = k.probability * np.where(classes == "alley", 0.6, 1.0)
        if k.code == "heating":
            p = p * np.where(classes == "arterial", 2.5, 0.6)
        mask = rng.random(n) < p
        m = int(mask.sum())
        shift = normal[mask] * (k.offset_m + rng.normal(0, 0.3, m))[:, None]
        seg = coords[mask] + shift[:, None, :]
        depth_min = np.clip(rng.normal(k.depth_mean, k.depth_sd, m), 0.3, 8.0)
        depth_max = depth_min + np.abs(rng.normal(0.25, 0.15, m))
        year = rng.integers(1965, 2025, m)
        frames.append(gpd.GeoDataFrame({
            "kind": k.code, "kind_ko": k.name_ko,
            "owner": rng.choice(np.array(k.owners, dtype=object), m),
            "material": rng.choice(np.array(k.materials, dtype=object), m),
            "diameter_mm": rng.choice(np.array(k.diameters), m).astype("int32"),
            "depth_min_m": np.round(depth_min, 2), "depth_max_m": np.round(depth_max, 2),
            "install_year": year.astype("int32"),
            "status": np.where(rng.random(m) < 0.03, "abandoned", "active"),
            "accuracy_class": rng.choice(np.array(["A", "B", "C"], dtype=object), m, p=[0.55, 0.35, 0.10]),
            "district_code": districts_[mask],
        }, geometry=shapely.linestrings(seg), crs=METRIC))
    return pd.concat(frames, ignore_index=True)


# --- loading -----------------------------------------------------------------------------
def load_demo(settings, conninfo: str, *, scale: str = "small", only_if_empty: bool = True,
              console=None) -> dict[str, int]:
    """Build the demo city; returns feature counts per layer.

    With ``only_if_empty`` an existing demo is left as it is (``make up`` is idempotent);
    otherwise every demo layer is replaced (new data versions).
    """
    if scale not in SCALES:
        raise InvalidParameter(f"Unknown scale {scale!r}: use {', '.join(SCALES)}.")
    say = console.print if console is not None else (lambda *a, **k: None)
    with connect(conninfo, autocommit=True) as conn:
        existing = {lid for lid in DEMO_LAYERS if get_layer(conn, lid) is not None}
    if only_if_empty and existing == set(DEMO_LAYERS):
        say("demo city already loaded (use `gis-platform demo load --force` to rebuild)")
        return {}
    root = data_root()
    t0 = time.perf_counter()
    counts: dict[str, int] = {}

    def put(layer_id: str, gdf, **meta):
        mode = "replace" if layer_id in existing else "create"
        rep = ingest_geodataframe(conninfo, gdf, layer_id, mode=mode, metadata=meta)
        counts[layer_id] = rep.features_written
        say(f"  {layer_id:<24} {rep.features_written:>9,} features  {rep.seconds:6.2f} s")

    say(f"building the demo city ({scale})")
    gu = districts(root)
    put("districts", gu, title="Districts (gu)", title_ko="자치구", keywords=["boundary", "demo"],
        description="Seoul's 25 districts with 2022 presidential-election turnout and CCTV counts.",
        description_ko="서울시 25개 자치구 경계, 2022 대선 투표율, CCTV 설치 수",
        source="JUSO 2015 boundaries; NEC 2022 via vuski/admdongkor; Seoul Open Data CCTV counts",
        licence="Apache-2.0 (boundaries); KOGL Type 1 / CC BY 4.0 (statistics)",
        attribution="Boundaries: southkorea/seoul-maps (JUSO 2015). Election: vuski/admdongkor. "
                    "CCTV: Seoul Open Data Plaza.",
        units={"area_km2": "km²", "turnout_pct": "%", "cctv_per_km2": "1/km²"}, access_level="public")
    put("neighbourhoods", neighbourhoods(root), title="Neighbourhoods (administrative dong)",
        title_ko="행정동", keywords=["boundary", "demo"],
        description="Seoul's 424 administrative dongs (KOSTAT 2018).",
        source="KOSTAT SGIS 2018 via southkorea/southkorea-maps", licence="KOGL Type 1",
        attribution="Statistics Korea (SGIS), KOGL Type 1", units={"area_km2": "km²"},
        access_level="public")

    bikes = read_csv(bike_stations(root))
    put("bike_stations", bikes.gdf.set_crs("EPSG:4326"), title="Bike-share stations",
        title_ko="따릉이 대여소", keywords=["transport", "demo"],
        description="Ddareungi public bicycle stations (about 2020).",
        source="Seoul Open Data Plaza OA-13252 via sangkukbae12/seoul-public-bicycle",
        attribution="Seoul Open Data Plaza", access_level="public")
    road_gdf = roads(gu, scale)
    put("roads", road_gdf, title="Road centrelines (synthetic)", title_ko="도로 중심선 (가상)",
        keywords=["roads", "demo", "synthetic"],
        description="A synthetic but plausible street network on the real city outline.",
        source="generated by gis-platform demo (seeded)", licence="CC0",
        units={"width_m": "m", "length_m": "m"}, minzoom=8, access_level="public",
        # cartographic selection: the whole city at z10-12 shows its main streets, not a
        # grey blot of every alley (layers.selection)
        default_style=ROAD_STYLE)
    fac = facilities(road_gdf)
    put("underground_facilities", fac, title="Underground facilities (synthetic)",
        title_ko="지하시설물 (가상)", keywords=["utilities", "demo", "synthetic"],
        description="Water, sewer, gas, power, telecom and district-heating lines with depth of cover.",
        source="generated by gis-platform demo (seeded)", licence="CC0", access_level="restricted",
        units={"diameter_mm": "mm", "depth_min_m": "m", "depth_max_m": "m"}, minzoom=12,
        default_style=FACILITY_STYLE)
    say(f"demo city ready in {time.perf_counter() - t0:.1f} s")
    return counts
