"""Demo road-works permits along the demo roads, with plausible status histories.

Deterministic (seeded; the roads are deterministic too) and idempotent: with
``only_if_empty`` an existing set of permits is kept; otherwise all permits are deleted and
rebuilt.  Permits go through the same :func:`domains.permits.insert_permit` and the
same database-enforced transitions as the API, with timestamps spread over 2025.
Applicants are invented (company names, 02- phone numbers) and never published.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import psycopg
import shapely
from shapely.ops import substring

from domains import permits
from gis_platform.db.connections import connect
from gis_platform.errors import InvalidParameter
from layers.catalog import get_layer

SEED = 20260505
COUNTS = {"small": 200, "city": 1_000, "large": 5_000}
KST = timezone(timedelta(hours=9))
EPOCH = date(2025, 1, 6)

PURPOSES = [  # (purpose, facility kind, permit type, depth range m)
    ("상수도관 교체공사", "water", "excavation", (1.2, 2.0)),
    ("노후 하수관로 정비", "sewer", "excavation", (1.8, 3.5)),
    ("도시가스 배관 신설", "gas", "excavation", (1.2, 1.8)),
    ("전력케이블 매설", "power", "excavation", (1.0, 1.8)),
    ("통신관로 증설", "telecom", "excavation", (0.6, 1.2)),
    ("지역난방 열수송관 보수", "heating", "excavation", (1.5, 2.5)),
    ("건축공사 가설울타리 도로점용", None, "occupancy", (0.0, 0.0)),
    ("보도 정비 및 점자블록 교체", None, "excavation", (0.3, 0.5)),
]
COMPANIES = ["(주)한빛건설", "대성토건(주)", "서울이엔씨", "(주)동방전기", "미래통신공사", "청계설비(주)",
             "(주)우리도시가스시공", "신한엔지니어링"]
SURNAMES = ["김", "이", "박", "최", "정", "강", "조", "윤"]
GIVEN = ["민준", "서연", "도윤", "지우", "하준", "서윤", "예준", "지민"]
# Final statuses and their share; the path to each is the only legal one.
PATHS = {
    "received": ["received"],
    "reviewed": ["received", "reviewed"],
    "approved": ["received", "reviewed", "approved"],
    "rejected": ["received", "reviewed", "rejected"],
    "works": ["received", "reviewed", "approved", "works"],
    "completed": ["received", "reviewed", "approved", "works", "completed"],
}
SHARES = {"received": 0.10, "reviewed": 0.10, "approved": 0.15, "rejected": 0.08, "works": 0.22,
          "completed": 0.35}


def _road_sample(conn: psycopg.Connection, roads_layer: str, n: int, rng) -> list[tuple]:
    layer = get_layer(conn, roads_layer)
    if layer is None or not layer.table_name:
        return []
    office = "managing_office" if layer.attribute("managing_office") else None
    district = "district_code" if layer.attribute("district_code") else None
    from psycopg import sql

    stmt = sql.SQL("SELECT fid, {o}, {d}, ST_AsBinary(ST_Transform(geom, 5179)) FROM {t} "
                   "WHERE ST_Length(geom::geography) > 30 ORDER BY fid").format(
        o=sql.Identifier(office) if office else sql.SQL("NULL"),
        d=sql.Identifier(district) if district else sql.SQL("NULL"), t=layer.table())
    rows = conn.execute(stmt).fetchall()
    if not rows:
        return []
    idx = np.sort(rng.choice(len(rows), size=min(n, len(rows)), replace=False))
    return [rows[i] for i in idx]


def build_permits(rows: list[tuple], rng) -> list[dict]:
    """The permit records (application, geometry in 4326 WKB, history) for sampled roads."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs(5179, 4326, always_xy=True)
    finals = list(SHARES)
    out = []
    for i, (fid, office, district, wkb) in enumerate(rows):
        line = shapely.from_wkb(bytes(wkb))
        purpose, kind, ptype, (d0, d1) = PURPOSES[int(rng.integers(len(PURPOSES)))]
        length = min(line.length, float(rng.uniform(20, 120)))
        start = float(rng.uniform(0, max(0.0, line.length - length)))
        part = substring(line, start, start + length)
        width = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        area = part.buffer(width / 2, cap_style="flat")
        area = shapely.transform(area, lambda c: np.column_stack(to_ll.transform(c[:, 0], c[:, 1])))
        received = EPOCH + timedelta(days=int(rng.integers(0, 300)))
        starts = received + timedelta(days=int(rng.integers(14, 45)))
        ends = starts + timedelta(days=int(rng.integers(3, 60)))
        final = finals[int(rng.choice(len(finals), p=list(SHARES.values())))]
        t = datetime.combine(received, datetime.min.time(), KST) + timedelta(hours=9 + int(rng.integers(0, 8)))
        history = []
        for status in PATHS[final]:
            if status == "reviewed":
                t += timedelta(days=int(rng.integers(2, 10)), hours=int(rng.integers(0, 6)))
            elif status in ("approved", "rejected"):
                t += timedelta(days=int(rng.integers(1, 7)), hours=int(rng.integers(0, 6)))
            elif status == "works":
                t = max(t + timedelta(hours=1), datetime.combine(starts, datetime.min.time(), KST)
                        + timedelta(hours=8))
            elif status == "completed":
                t = max(t + timedelta(hours=1), datetime.combine(ends, datetime.min.time(), KST)
                        + timedelta(hours=17))
            history.append((status, t))
        person = SURNAMES[int(rng.integers(8))] + GIVEN[int(rng.integers(8))]
        office = office or "서울특별시 도로관리과"
        out.append({
            "permit_no": f"RW-{received.year}-{i + 1:06d}", "permit_type": ptype, "purpose": purpose,
            "facility_kind": kind, "planned_depth_m": round(float(rng.uniform(d0, d1)), 2),
            "starts_on": starts, "ends_on": ends, "office": office, "district_code": district,
            "note": None, "wkb": shapely.to_wkb(area),
            "applicant": {"name": person, "organisation": COMPANIES[int(rng.integers(len(COMPANIES)))],
                          "contact": f"02-{int(rng.integers(200, 999))}-{int(rng.integers(1000, 9999))}",
                          "address": f"서울특별시 {int(rng.integers(1, 300))}번길 {int(rng.integers(1, 99))}"},
            "history": history,
        })
    return out


def load_demo(settings, conninfo: str, *, scale: str = "small", only_if_empty: bool = True,
              console=None) -> dict[str, int]:
    """Create the demo permits (after ``layers.demo``); returns ``{"permits": n, ...}``."""
    if scale not in COUNTS:
        raise InvalidParameter(f"Unknown scale {scale!r}: use {', '.join(COUNTS)}.")
    say = console.print if console is not None else (lambda *a, **k: None)
    roads_layer = settings.domains.roads_layer
    with connect(conninfo) as conn:
        have = conn.execute("SELECT count(*) FROM gis_domain.permits").fetchone()[0]
        if have and only_if_empty:
            say("demo permits already loaded")
            return {}
        rng = np.random.default_rng(SEED)
        rows = _road_sample(conn, roads_layer, COUNTS[scale], rng)
        if not rows:
            say("no demo roads: skipping demo permits")
            return {}
        records = build_permits(rows, rng)
        with conn.transaction():
            # The per-statement refresh of the active-works catalog record would run after
            # every history row; switch it off for the bulk load (a transaction-local
            # setting the trigger honours, migration 0007) and refresh once at the end.
            conn.execute("SET LOCAL gis.bulk_load = 'on'")
            conn.execute("DELETE FROM gis_domain.permits")
            for rec in records:
                first_at = rec["history"][0][1]
                permits.insert_permit(conn, rec, rec["wkb"], actor="demo:접수창구", received_at=first_at)
                for status, at in rec["history"][1:]:
                    permits.transition(conn, rec["permit_no"], status, actor="demo:" + rec["office"],
                                       roles=["planner"], at=at,
                                       note="착공 신고" if status == "works" else None)
            conn.execute("SET LOCAL gis.bulk_load = 'off'")
            conn.execute("UPDATE gis_domain.permits SET id = id WHERE false")   # fires the refresh
            permits.ensure_active_works_layer(conn)
        active = conn.execute("SELECT count(*) FROM gis_data.active_works").fetchone()[0]
    say(f"  {'permits':<24} {len(records):>9,} permits ({active} active works)")
    return {"permits": len(records), "active_works": active}
