"""Demo indicators and published policy maps on the real Seoul boundaries.

Runs after ``layers.demo`` (districts, neighbourhoods, bike_stations, roads).  Builds:

* area units ``district`` (25 gu), ``neighbourhood`` (424 dong) and ``hex500`` (a 500 m
  hexagon grid clipped to the city, computed in PostGIS);
* indicators from the real files (2022 presidential-election turnout per gu and its gap to
  the city-wide turnout, new CCTV cameras per km² in 2014-2016) and by aggregation in
  PostGIS (bike-share stations per km² per dong; stations per hexagon);
* five published maps using them (one with a year slider, one diverging).

Idempotent: with ``only_if_empty`` nothing is done when the demo maps exist.
"""

from __future__ import annotations

import time

import pandas as pd
import psycopg

from gis_platform.db.connections import connect
from gis_platform.principal import SYSTEM
from indicators.hexgrid import aggregate_indicator, create_hex_grid
from indicators.store import (
    Indicator,
    codes_by_name,
    load_values,
    read_csv_values,
    register_area_unit,
    upsert_indicator,
)
from layers.catalog import get_layer
from layers.demo import data_root
from policy_maps.build import MapAccess
from policy_maps.service import publish_with_thumbnail, save_spec
from policy_maps.thumbnails import folder as thumbnail_folder

ELECTION = "National Election Commission, 2022 presidential election, via vuski/admdongkor (KOGL 1)"
CCTV = "Seoul Open Data Plaza, CCTV installations per gu (via PinkWink/DataScience)"
BIKES = "Seoul Open Data Plaza OA-13252, Ddareungi stations (~2020)"
BOUNDS = "JUSO 2015 gu boundaries; KOSTAT SGIS 2018 dong boundaries (KOGL 1)"

MAPS = [
    {"id": "turnout-2022", "indicator": "turnout", "area_unit": "district",
     "title": {"ko": "2022년 대통령선거 투표율", "en": "Turnout, 2022 presidential election"},
     "description": {"ko": "자치구별 선거인 대비 투표자 비율", "en": "Voters as a share of registered voters, by district"},
     "classification": {"method": "quantiles", "k": 5}, "palette": {"name": "YlGnBu"},
     "sources": [{"ko": "중앙선거관리위원회 (vuski/admdongkor)", "en": ELECTION}, {"ko": "경계: 도로명주소 2015", "en": BOUNDS}],
     "tags": ["election", "선거"]},
    {"id": "turnout-gap-2022", "indicator": "turnout_gap", "area_unit": "district",
     "title": {"ko": "투표율: 서울 평균과의 차이 (2022)", "en": "Turnout gap to the Seoul average (2022)"},
     "description": {"ko": "서울 전체 투표율 대비 자치구 투표율 차이 (%p)",
                     "en": "District turnout minus city-wide turnout, percentage points"},
     "classification": {"method": "std_dev"}, "palette": {"name": "RdBu"},
     "sources": [{"ko": "중앙선거관리위원회 (vuski/admdongkor)", "en": ELECTION}], "tags": ["election"]},
    {"id": "cctv-new-density", "indicator": "cctv_new_per_km2", "area_unit": "district",
     "title": {"ko": "신규 CCTV 설치 밀도", "en": "New CCTV cameras per km²"},
     "description": {"ko": "연도별 신규 설치 CCTV 수 / 자치구 면적", "en": "Cameras installed in the year per km² of district"},
     "classification": {"method": "natural_breaks", "k": 5}, "palette": {"name": "PuBu"},
     "sources": [{"ko": "서울 열린데이터광장 CCTV 현황", "en": CCTV}], "tags": ["safety", "안전"]},
    {"id": "bike-access-dong", "indicator": "bike_stations_per_km2", "area_unit": "neighbourhood",
     "title": {"ko": "행정동별 따릉이 대여소 밀도", "en": "Bike-share stations per km², by neighbourhood"},
     "description": {"ko": "행정동 면적 1 km²당 공공자전거 대여소 수",
                     "en": "Public bike stations per km² of each administrative dong"},
     "classification": {"method": "natural_breaks", "k": 5}, "palette": {"name": "YlGnBu"},
     "overlays": [{"layer": "bike_stations", "title": {"ko": "대여소", "en": "Stations"}, "color": "#d95f02"}],
     "sources": [{"ko": "서울 열린데이터광장 공공자전거 대여소 정보", "en": BIKES}], "tags": ["transport", "교통"]},
    {"id": "bike-hex-500m", "indicator": "bike_stations_count", "area_unit": "hex500",
     "title": {"ko": "500 m 육각 격자별 따릉이 대여소", "en": "Bike-share stations per 500 m hexagon"},
     "description": {"ko": "야간버스 노선 분석과 같은 500 m 육각 격자 집계",
                     "en": "Aggregated to 500 m hexagons, as in the night-bus route analysis"},
     "classification": {"method": "natural_breaks", "k": 5}, "palette": {"name": "viridis"},
     "basemap": "none", "sources": [{"ko": "서울 열린데이터광장 공공자전거 대여소 정보", "en": BIKES}],
     "tags": ["transport", "hexagon"]},
]


def _indicators(conn: psycopg.Connection, root) -> None:
    votes = pd.read_csv(root / "vuski-admdongkor/ver20220309/vote_sgg.tsv", sep="\t", dtype={"sgg": str})
    votes = votes[votes["sgg"].str.startswith("11")]
    turnout = votes["VOTER"] / votes["POPU_ALL"] * 100
    city = votes["VOTER"].sum() / votes["POPU_ALL"].sum() * 100
    upsert_indicator(conn, Indicator(
        id="turnout", name_ko="투표율", name_en="Turnout", unit="%", source=ELECTION,
        polarity="higher_is_better", description_ko="선거인 수 대비 투표자 수",
        description_en="Voters / registered voters", access_level="public"))
    load_values(conn, "turnout", "district",
                pd.DataFrame({"area_code": votes["sgg"], "year": 2022, "value": turnout.round(2)}))
    upsert_indicator(conn, Indicator(
        id="turnout_gap", name_ko="투표율 차이", name_en="Turnout gap", unit="%p", source=ELECTION,
        polarity="higher_is_better", description_ko="자치구 투표율 - 서울 투표율",
        description_en="District turnout minus Seoul turnout", access_level="public"))
    load_values(conn, "turnout_gap", "district",
                pd.DataFrame({"area_code": votes["sgg"], "year": 2022, "value": (turnout - city).round(2)}))
    # CCTV: a wide table keyed by gu *name* (기관명), one column per year of installation.
    cctv = read_csv_values(root / "pinkwink-datascience/data/CCTV_in_Seoul.csv", code_column="기관명",
                           year_columns={2014: "2014년", 2015: "2015년", 2016: "2016년"})
    cctv = codes_by_name(conn, "district", cctv)
    area = dict(conn.execute("SELECT code, area_km2 FROM gis_data.districts").fetchall()) \
        if _has_column(conn, "districts", "area_km2") else {}
    cctv["value"] = (cctv["value"] / cctv["area_code"].map(area)).round(2)
    upsert_indicator(conn, Indicator(
        id="cctv_new_per_km2", name_ko="신규 CCTV 밀도", name_en="New CCTV density", unit="대/km²",
        source=CCTV, polarity="neutral", description_ko="해당 연도 신규 설치 CCTV 수 / 면적",
        description_en="Cameras installed that year per km²", access_level="public"))
    load_values(conn, "cctv_new_per_km2", "district", cctv)
    aggregate_indicator(conn, Indicator(
        id="bike_stations_per_km2", name_ko="따릉이 대여소 밀도", name_en="Bike-share station density",
        unit="개/km²", source=BIKES, polarity="higher_is_better",
        description_ko="행정동 면적당 공공자전거 대여소 수", description_en="Stations per km² of area",
        access_level="public"),
        "neighbourhood", "bike_stations", "density", 2020)
    aggregate_indicator(conn, Indicator(
        id="bike_stations_count", name_ko="따릉이 대여소 수", name_en="Bike-share stations", unit="개",
        source=BIKES, polarity="higher_is_better", description_ko="격자 안의 대여소 수",
        description_en="Stations in the cell", access_level="public"), "hex500", "bike_stations", "count", 2020)


def _has_column(conn: psycopg.Connection, layer_id: str, column: str) -> bool:

    layer = get_layer(conn, layer_id)
    return bool(layer and layer.attribute(column))


def load_demo(settings, conninfo: str, *, scale: str = "small", only_if_empty: bool = True,
              console=None) -> dict[str, int]:
    """Indicators, the hexagon grid and the published demo maps (idempotent)."""
    say = console.print if console is not None else (lambda *a, **k: None)
    with connect(conninfo, autocommit=True) as conn:
        have = {r[0] for r in conn.execute("SELECT id FROM gis_meta.policy_maps WHERE published_version "
                                           "IS NOT NULL")}
    if only_if_empty and {m["id"] for m in MAPS} <= have:
        say("demo policy maps already loaded")
        return {}
    t0 = time.perf_counter()
    root = data_root()
    with connect(conninfo, autocommit=True) as conn:
        register_area_unit(conn, "district", "districts", "code", "name", "Districts (gu)", "자치구")
        register_area_unit(conn, "neighbourhood", "neighbourhoods", "code", "name",
                           "Neighbourhoods (dong)", "행정동")
    hexes = create_hex_grid(conninfo, "hex_500m", clip_layer_id="districts", radius_m=500, unit_id="hex500")
    say(f"  hex_500m                 {hexes['cells']:>9,} cells     ({hexes['area_km2']} km²)")
    with connect(conninfo, autocommit=True) as conn:
        _indicators(conn, root)
        for spec in MAPS:
            _, data = save_spec(conn, spec, "demo", MapAccess.system(conn))
            publish_with_thumbnail(conn, data, SYSTEM, thumbnail_folder(settings.resolved_data_dir()))
    say(f"policy maps ready in {time.perf_counter() - t0:.1f} s (gallery: /maps)")
    return {"hex_500m": hexes["cells"], "policy_maps": len(MAPS)}
