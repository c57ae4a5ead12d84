"""Ingest facility and road files onto the domain schema, with per-row validation.

Pipeline: read the file with the platform's readers (any format, CRS and encoding the
generic ingest handles) -> rename columns onto the schema (built-in Korean/legacy names plus
a caller's ``mapping``) -> map code values through the vocabularies in ``gis_domain``
(``facility_kind_aliases``, ``road_class_aliases``) -> validate every row -> load through
:func:`layers.ingest.ingest_geodataframe` (binary COPY, one transaction).

Policy on invalid rows (documented choice):

* default ``on_error="reject"`` — **all or nothing**: if any row is invalid nothing is written
  and :class:`DomainIngestError` (HTTP 422) carries a report of every rejected row (1-based
  row number in the file, the column, the offending value and why);
* ``on_error="skip"`` — the valid rows are loaded and the report lists the rejected ones
  (``DomainIngestReport.rejected``).

Rules for facilities: kind must map onto the vocabulary; depths are metres below the surface,
not negative and at most the kind's ``max_depth_m``; ``depth_max_m`` not below
``depth_min_m``; diameter positive; a geometry present.  For roads: class maps onto
``road_classes``; width within the class's range; lanes 1..max_lanes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely

from gis_platform.db.connections import connect
from gis_platform.errors import IngestError, InvalidParameter, Unprocessable
from layers.ingest import ingest_geodataframe, readers

FACILITY_COLUMNS = {
    "kind": ["kind", "시설종류", "시설물종류", "종류", "ftr_cde", "ftr_nam", "type"],
    "owner": ["owner", "관리기관", "소유자", "관리자", "mng_nam"],
    "material": ["material", "재질", "관재질", "mop_cde"],
    "diameter_mm": ["diameter_mm", "관경", "구경", "std_dip", "diameter"],
    "depth_min_m": ["depth_min_m", "최저심도", "최소심도", "심도", "토피", "dep_min", "depth"],
    "depth_max_m": ["depth_max_m", "최고심도", "최대심도", "dep_max"],
    "install_year": ["install_year", "설치년도", "설치연도", "ist_year"],
    "status": ["status", "상태", "사용여부"],
    "accuracy_class": ["accuracy_class", "정확도", "정확도등급"],
    "district_code": ["district_code", "자치구코드", "시군구코드", "sig_cd"],
}
ROAD_COLUMNS = {
    "road_class": ["road_class", "도로등급", "도로구분", "rds_cls", "class"],
    "width_m": ["width_m", "도로폭", "노폭", "rw", "width"],
    "lanes": ["lanes", "차로수", "차선수", "rd_lane"],
    "pavement": ["pavement", "포장재질", "포장", "pav_cde"],
    "managing_office": ["managing_office", "관리기관", "관리부서", "office"],
    "district_code": ["district_code", "자치구코드", "시군구코드", "sig_cd"],
    "name": ["name", "도로명", "rn", "road_name"],
}
NUMERIC = {"diameter_mm", "depth_min_m", "depth_max_m", "install_year", "width_m", "lanes"}


class DomainIngestError(IngestError):
    """Some rows are invalid; nothing was written (``rejected`` lists them)."""

    title, type_slug = "Invalid rows", "invalid-rows"


@dataclass
class DomainIngestReport:
    layer_id: str
    kind: str
    rows_read: int = 0
    rows_loaded: int = 0
    rejected: list[dict] = field(default_factory=list)
    column_mapping: dict[str, str] = field(default_factory=dict)
    ingest: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def map_columns(gdf: gpd.GeoDataFrame, known: dict[str, list[str]],
                mapping: dict[str, str] | None = None) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """Rename source columns onto the schema (explicit ``mapping`` first, then known names)."""
    mapping = dict(mapping or {})
    lower = {str(c).strip().lower(): c for c in gdf.columns if c != gdf.geometry.name}
    for src, dst in mapping.items():
        if dst not in known:
            raise InvalidParameter(f"Unknown target column {dst!r}; use one of {sorted(known)}.")
        if src not in gdf.columns and src.lower() not in lower:
            raise InvalidParameter(f"The file has no column {src!r}; it has {sorted(map(str, lower.values()))}.")
    chosen: dict[str, str] = {}
    for src, dst in mapping.items():
        chosen[dst] = src if src in gdf.columns else lower[src.lower()]
    for dst, names in known.items():
        if dst in chosen:
            continue
        for n in names:
            if n.lower() in lower and lower[n.lower()] not in chosen.values():
                chosen[dst] = lower[n.lower()]
                break
    out = gpd.GeoDataFrame({dst: gdf[src].to_numpy() for dst, src in chosen.items()},
                           geometry=gdf.geometry.to_numpy(), crs=gdf.crs, index=gdf.index)
    return out, {src: dst for dst, src in chosen.items()}


def _aliases(conn: psycopg.Connection, table: str, column: str) -> dict[str, str]:
    q = {"facility": "SELECT alias, kind FROM gis_domain.facility_kind_aliases",
         "road": "SELECT alias, road_class FROM gis_domain.road_class_aliases"}[table]
    return dict(conn.execute(q).fetchall())


def _num(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers and a mask of values present but not numeric."""
    raw = series.astype(object)
    present = raw.notna() & (raw.astype(str).str.strip() != "")
    num = pd.to_numeric(raw.where(present), errors="coerce")
    return num.to_numpy(dtype="float64"), (present & num.isna()).to_numpy()


def validate_facilities(gdf: gpd.GeoDataFrame, conn: psycopg.Connection) -> tuple[gpd.GeoDataFrame, list[dict]]:
    """Map kinds and check every row; returns (clean frame, rejected rows)."""
    if "kind" not in gdf.columns:
        raise IngestError("No facility kind column found (looked for kind, 시설종류, 종류, FTR_CDE...); "
                          "name it with a mapping such as --map 'MYCOL=kind'.")
    aliases = _aliases(conn, "facility", "kind")
    limits = dict(conn.execute("SELECT code, max_depth_m FROM gis_domain.facility_kinds").fetchall())
    errors: dict[int, list[dict]] = {}

    def bad(i: int, column: str, value: Any, why: str) -> None:
        errors.setdefault(i, []).append({"column": column, "value": None if value is None else str(value)[:80],
                                         "error": why})

    kinds = gdf["kind"].astype(object).map(lambda v: aliases.get(str(v).strip().lower()) if pd.notna(v) else None)
    for i, (raw, k) in enumerate(zip(gdf["kind"], kinds)):
        if k is None or pd.isna(k):
            bad(i, "kind", raw, "unknown facility kind (see GET /facility-kinds; add an alias to "
                                "gis_domain.facility_kind_aliases)")
    nums = {}
    for col in ("diameter_mm", "depth_min_m", "depth_max_m", "install_year"):
        if col in gdf.columns:
            vals, notnum = _num(gdf[col])
            nums[col] = vals
            for i in np.flatnonzero(notnum):
                bad(int(i), col, gdf[col].iloc[i], "not a number")
    dmin, dmax = nums.get("depth_min_m"), nums.get("depth_max_m")
    for name, arr in (("depth_min_m", dmin), ("depth_max_m", dmax)):
        if arr is None:
            continue
        for i in np.flatnonzero(arr < 0):
            bad(int(i), name, arr[i], "negative depth: depths are metres below the surface")
        for i, (v, k) in enumerate(zip(arr, kinds)):
            if k in limits and not np.isnan(v) and v > limits[k]:
                bad(i, name, v, f"deeper than the {limits[k]:g} m plausible for {k}")
    if dmin is not None and dmax is not None:
        for i in np.flatnonzero(dmax < dmin):
            bad(int(i), "depth_max_m", dmax[i], f"depth_max_m is less than depth_min_m ({dmin[i]:g})")
    if "diameter_mm" in nums:
        for i in np.flatnonzero(nums["diameter_mm"] <= 0):
            bad(int(i), "diameter_mm", nums["diameter_mm"][i], "diameter must be positive")
    for i in np.flatnonzero(gdf.geometry.isna().to_numpy() | gdf.geometry.is_empty.to_numpy()):
        bad(int(i), "geometry", None, "no geometry")
    out = gdf.copy()
    out["kind"] = kinds.to_numpy()
    for col, vals in nums.items():
        out[col] = vals
    if "install_year" in out.columns:
        out["install_year"] = out["install_year"].astype("Int32")
    if "diameter_mm" in out.columns:
        out["diameter_mm"] = out["diameter_mm"].astype("Int32")
    return out, _rejected(errors)


def validate_roads(gdf: gpd.GeoDataFrame, conn: psycopg.Connection) -> tuple[gpd.GeoDataFrame, list[dict]]:
    if "road_class" not in gdf.columns:
        raise IngestError("No road class column found (looked for road_class, 도로등급, 도로구분...); "
                          "name it with a mapping such as --map 'MYCOL=road_class'.")
    aliases = _aliases(conn, "road", "road_class")
    ranges = {r[0]: r[1:] for r in conn.execute(
        "SELECT code, min_width_m, max_width_m, max_lanes FROM gis_domain.road_classes")}
    errors: dict[int, list[dict]] = {}

    def bad(i, column, value, why):
        errors.setdefault(i, []).append({"column": column, "value": None if value is None else str(value)[:80],
                                         "error": why})

    classes = gdf["road_class"].astype(object).map(
        lambda v: aliases.get(str(v).strip().lower()) if pd.notna(v) else None)
    for i, (raw, c) in enumerate(zip(gdf["road_class"], classes)):
        if c is None or pd.isna(c):
            bad(i, "road_class", raw, f"unknown road class; use one of {sorted(ranges)} or a Korean name")
    out = gdf.copy()
    out["road_class"] = classes.to_numpy()
    for col in ("width_m", "lanes"):
        if col in gdf.columns:
            vals, notnum = _num(gdf[col])
            for i in np.flatnonzero(notnum):
                bad(int(i), col, gdf[col].iloc[i], "not a number")
            for i, (v, c) in enumerate(zip(vals, classes)):
                if c not in ranges or np.isnan(v):
                    continue
                lo, hi, lanes = ranges[c]
                if col == "width_m" and not (0 < v <= 100):
                    bad(i, col, v, "width must be between 0 and 100 m")
                elif col == "width_m" and not (lo <= v <= hi):
                    bad(i, col, v, f"a {c} road is {lo:g}-{hi:g} m wide")
                elif col == "lanes" and not (1 <= v <= lanes):
                    bad(i, col, v, f"a {c} road has 1-{lanes} lanes")
            out[col] = vals if col == "width_m" else pd.array(vals, dtype="Float64").astype("Int32")
    for i in np.flatnonzero(gdf.geometry.isna().to_numpy() | gdf.geometry.is_empty.to_numpy()):
        bad(int(i), "geometry", None, "no geometry")
    return out, _rejected(errors)


def _rejected(errors: dict[int, list[dict]]) -> list[dict]:
    return [{"row": i + 1, "problems": errs} for i, errs in sorted(errors.items())]


def ingest_domain_file(conninfo: str, path: str | Path, kind: str, *, layer_id: str | None = None,
                       mode: str = "create", crs: str | None = None, encoding: str | None = None,
                       source_layer: str | None = None, mapping: dict[str, str] | None = None,
                       on_error: str = "reject", metadata: dict | None = None) -> DomainIngestReport:
    """Read, map, validate and load a facility (``kind="facilities"``) or road file."""

    if kind not in ("facilities", "roads"):
        raise InvalidParameter("kind must be 'facilities' or 'roads'.")
    if on_error not in ("reject", "skip"):
        raise InvalidParameter("on_error must be 'reject' (all or nothing) or 'skip'.")
    path = Path(path)
    if not path.exists():
        raise IngestError(f"No such file: {path.name}")
    src = readers.read_vector(path, layer=source_layer, encoding=encoding)
    known = FACILITY_COLUMNS if kind == "facilities" else ROAD_COLUMNS
    gdf, used = map_columns(src.gdf, known, mapping)
    with connect(conninfo) as conn:
        clean, rejected = (validate_facilities if kind == "facilities" else validate_roads)(gdf, conn)
    layer_id = layer_id or ("underground_facilities" if kind == "facilities" else "roads")
    report = DomainIngestReport(layer_id, kind, rows_read=len(gdf), rejected=rejected, column_mapping=used)
    if rejected and on_error == "reject":
        shown = rejected[:50]
        summary = "; ".join(f"row {r['row']}: " + ", ".join(f"{p['column']} {p['error']}" for p in r["problems"])
                            for r in shown[:5])
        raise DomainIngestError(f"{len(rejected)} of {len(gdf)} rows are invalid; nothing was loaded. "
                                f"First: {summary}. Fix them, or load the valid rows with on_error=skip.",
                                rejected=shown, rejected_count=len(rejected))
    bad_rows = {r["row"] - 1 for r in rejected}
    keep = clean.iloc[[i for i in range(len(clean)) if i not in bad_rows]]
    if keep.empty:
        raise DomainIngestError("No valid rows to load.", rejected=rejected[:50], rejected_count=len(rejected))
    meta = {"source": path.name, **(metadata or {})}
    if kind == "facilities":
        meta.setdefault("access_level", "restricted")
        meta.setdefault("units", {"diameter_mm": "mm", "depth_min_m": "m", "depth_max_m": "m"})
    else:
        meta.setdefault("units", {"width_m": "m"})
    rep = ingest_geodataframe(conninfo, keep, layer_id, mode=mode, crs=crs,
                              metadata=meta)
    report.rows_loaded = rep.features_written
    report.ingest = rep.to_dict()
    return report


def _one_feature_rules(validate, conn: psycopg.Connection, attrs: dict[str, Any],
                       written: set[str]) -> dict[str, Any]:
    """A domain's ingest rules applied to one edited feature: its whole state after the write
    (``attrs``); the first broken rule the write touches (a field in ``written``, or a rule
    naming one) is a 422 naming the field, else the attributes with their vocabulary
    normalised."""
    if not written & _RULE_FIELDS[validate]:
        return attrs                       # no rule reads what this write changes
    frame = gpd.GeoDataFrame({k: [v] for k, v in attrs.items()}, geometry=[shapely.Point(0, 0)],
                             crs="EPSG:4326")
    try:
        out, rejected = validate(frame, conn)
    except IngestError as exc:
        raise Unprocessable(exc.detail) from None
    touched = [p for r in rejected for p in r["problems"]
               if p["column"] in written or any(w in p["error"] for w in written)]
    if touched:
        err = touched[0]
        raise Unprocessable(f"{err['column']}: {err['error']} (got {err['value']!r}).",
                            parameter=err["column"])
    row = out.iloc[0]
    return {k: (None if pd.isna(row[k]) else row[k].item() if hasattr(row[k], "item") else row[k])
            for k in attrs if k in out.columns}


def facility_edit_rules(conn: psycopg.Connection, attrs: dict[str, Any], written: set[str]) -> dict[str, Any]:
    """The facility rules (known kinds, plausible depths, depth_max >= depth_min, positive
    diameters) for an edited feature."""
    return _one_feature_rules(validate_facilities, conn, attrs, written)


def road_edit_rules(conn: psycopg.Connection, attrs: dict[str, Any], written: set[str]) -> dict[str, Any]:
    """The road rules (known classes, widths and lanes of the class) for an edited feature."""
    return _one_feature_rules(validate_roads, conn, attrs, written)


# The attributes each domain's rules read (an edit of others needs no check).
_RULE_FIELDS = {validate_facilities: {"kind", "diameter_mm", "depth_min_m", "depth_max_m", "install_year"},
                validate_roads: {"road_class", "width_m", "lanes"}}
