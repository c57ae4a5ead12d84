"""Road-works permits and their public status timeline (Seoul's OPEN system).

Privacy by construction: the applicant's personal data lives in ``gis_domain.permit_applicants``
and only :func:`get_applicant` (planner/admin) reads it.  Every public query here selects an
explicit column list from ``gis_domain.permits`` (:data:`PUBLIC_COLUMNS`); the public layer
``active_works`` is a view with public columns only.

Status changes: :func:`transition` locks the permit row, checks the transition against
``gis_domain.permit_transitions`` (409 with the allowed next statuses otherwise), appends the
history row (the database trigger checks it again and moves the current status), and writes
a ``gis_meta.audit_log`` row — all in one transaction.  The actor (API key id and name) is
kept in the history but shown to planners only; the public timeline shows status, time,
office and note.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from domains.common import MAX_DEPTH_M, number
from gis_platform.access import RowFilter
from gis_platform.errors import Conflict, InvalidParameter, NotFound, Unprocessable
from gis_platform.principal import Principal

PERMIT_NO_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,39}$")
ACTIVE_WORKS = "active_works"

PUBLIC_COLUMNS = sql.SQL(
    "p.permit_no, p.permit_type, p.purpose, p.facility_kind, p.planned_depth_m, "
    "p.starts_on::text AS starts_on, p.ends_on::text AS ends_on, p.office, p.district_code, "
    "p.status, s.name_ko AS status_ko, s.name_en AS status_en, p.status_at, "
    "ST_AsGeoJSON(p.geom, 7) AS geometry")

ACTIVE_WORKS_SCHEMA = [
    {"name": "permit_no", "type": "text", "description": "permit number"},
    {"name": "permit_type", "type": "text", "description": "excavation | occupancy"},
    {"name": "purpose", "type": "text"},
    {"name": "facility_kind", "type": "text"},
    {"name": "planned_depth_m", "type": "double precision", "unit": "m"},
    {"name": "starts_on", "type": "date"},
    {"name": "ends_on", "type": "date"},
    {"name": "office", "type": "text", "description": "responsible office"},
    {"name": "district_code", "type": "text"},
    {"name": "status", "type": "text", "description": "approved | works"},
    {"name": "status_ko", "type": "text"},
]


def ensure_active_works_layer(conn: psycopg.Connection) -> None:
    """Register the public ``active_works`` layer (idempotent) and refresh its record."""
    conn.execute(
        "INSERT INTO gis_meta.layers (id, title, title_ko, description, description_ko, keywords, "
        "source, licence, kind, geometry_type, storage_srid, table_name, schema, access_level, "
        "minzoom, data_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'vector', 'MultiPolygon', "
        "4326, %s, %s, 'public', 8, nextval('gis_meta.data_version_seq')) ON CONFLICT (id) DO NOTHING",
        (ACTIVE_WORKS, "Active road works", "도로공사 현황",
         "Approved and ongoing road-works permits (excavation and occupancy), public data only.",
         "허가 및 공사중인 도로굴착·점용 허가 (공개 정보)", ["permits", "roads", "works", "open"],
         "gis_domain.permits (live)", "KOGL Type 1", ACTIVE_WORKS, Jsonb(ACTIVE_WORKS_SCHEMA)))
    # A statement trigger on permits refreshes count, extent and data version; fire it.
    conn.execute("UPDATE gis_domain.permits SET status = status WHERE false")


def _check_no(permit_no: str) -> str:
    if not PERMIT_NO_RE.match(permit_no or ""):
        raise NotFound(f"No permit '{permit_no[:40]}'.")
    return permit_no


def _date(doc: dict, key: str) -> date:
    value = doc.get(key)
    if not isinstance(value, str):
        raise InvalidParameter(f"{key} is required as a date (YYYY-MM-DD).", parameter=key)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(f"{key} must be a date as YYYY-MM-DD, not {value[:20]!r}.",
                               parameter=key) from None


def _text(doc: dict, key: str, *, required: bool = True, max_len: int = 500) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(f"{key} is required (text).", parameter=key)
    if len(value) > max_len:
        raise InvalidParameter(f"{key} is longer than {max_len} characters.", parameter=key)
    return value.strip()


def validate_new_permit(doc: dict) -> dict:
    """Check a permit application (everything but the geometry); 400s name the field."""

    known = {"permit_no", "permit_type", "purpose", "facility_kind", "planned_depth_m", "starts_on",
             "ends_on", "office", "district_code", "geometry", "geometry_crs", "applicant", "note"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InvalidParameter(f"Unknown fields {unknown}; expected {sorted(known)}.", parameter="body")
    ptype = doc.get("permit_type", "excavation")
    if ptype not in ("excavation", "occupancy"):
        raise InvalidParameter("permit_type must be 'excavation' or 'occupancy'.", parameter="permit_type")
    starts, ends = _date(doc, "starts_on"), _date(doc, "ends_on")
    if ends < starts:
        raise InvalidParameter(f"ends_on ({ends}) is before starts_on ({starts}).", parameter="ends_on")
    applicant = doc.get("applicant")
    if not isinstance(applicant, dict) or not isinstance(applicant.get("name"), str) \
            or not applicant["name"].strip():
        raise InvalidParameter("applicant is required: {\"name\": ..., \"organisation\": ..., "
                               "\"contact\": ..., \"address\": ...}.", parameter="applicant")
    extra = sorted(set(applicant) - {"name", "organisation", "contact", "address"})
    if extra:
        raise InvalidParameter(f"Unknown applicant fields {extra}.", parameter="applicant")
    for k in ("organisation", "contact", "address"):
        if applicant.get(k) is not None and (not isinstance(applicant[k], str) or len(applicant[k]) > 300):
            raise InvalidParameter(f"applicant.{k} must be text (at most 300 characters).",
                                   parameter=f"applicant.{k}")
    permit_no = doc.get("permit_no")
    if permit_no is not None and (not isinstance(permit_no, str) or not PERMIT_NO_RE.match(permit_no)):
        raise InvalidParameter("permit_no must be 3-40 upper-case letters, digits and dashes.",
                               parameter="permit_no")
    return {
        "permit_no": permit_no, "permit_type": ptype, "purpose": _text(doc, "purpose"),
        "facility_kind": _text(doc, "facility_kind", required=False, max_len=40),
        "planned_depth_m": number(doc, "planned_depth_m", required=True, hi=MAX_DEPTH_M),
        "starts_on": starts, "ends_on": ends, "office": _text(doc, "office", max_len=200),
        "district_code": _text(doc, "district_code", required=False, max_len=20),
        "note": _text(doc, "note", required=False, max_len=1000),
        "applicant": {k: (applicant.get(k) or None) for k in ("name", "organisation", "contact", "address")},
    }


def insert_permit(conn: psycopg.Connection, p: dict, geom_wkb: bytes, *, actor: str,
                  roles: list[str] | None = None, received_at: datetime | None = None) -> str:
    """Insert a permit (status 'received'), its applicant and the first history row.

    ``geom_wkb`` is a (Multi)Polygon in EPSG:4326.  Runs in the caller's transaction.
    Returns the permit number (generated as ``RW-<year>-<id>`` unless given).
    """
    if p.get("facility_kind") and conn.execute(
            "SELECT 1 FROM gis_domain.facility_kinds WHERE code = %s", (p["facility_kind"],)).fetchone() is None:
        kinds = [r[0] for r in conn.execute("SELECT code FROM gis_domain.facility_kinds ORDER BY sort_order")]
        raise InvalidParameter(f"Unknown facility_kind {p['facility_kind']!r}; use one of {kinds}.",
                               parameter="facility_kind")
    row = conn.execute(
        "WITH n AS (SELECT nextval('gis_domain.permits_id_seq') AS id) "
        "INSERT INTO gis_domain.permits (id, permit_no, permit_type, purpose, facility_kind, "
        "planned_depth_m, starts_on, ends_on, office, district_code, status_at, created_at, geom) "
        "SELECT n.id, coalesce(%s, 'RW-' || to_char(%s::date, 'YYYY') || '-' || lpad(n.id::text, 6, '0')), "
        "%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), coalesce(%s, now()), "
        "ST_Multi(ST_GeomFromWKB(%s, 4326)) FROM n RETURNING id, permit_no",
        (p.get("permit_no"), p["starts_on"], p["permit_type"], p["purpose"], p.get("facility_kind"),
         p["planned_depth_m"], p["starts_on"], p["ends_on"], p["office"], p.get("district_code"),
         received_at, received_at, geom_wkb)).fetchone()
    pid, permit_no = row
    a = p["applicant"]
    conn.execute("INSERT INTO gis_domain.permit_applicants (permit_id, name, organisation, contact, address) "
                 "VALUES (%s, %s, %s, %s, %s)", (pid, a["name"], a.get("organisation"), a.get("contact"),
                                                 a.get("address")))
    conn.execute("INSERT INTO gis_domain.permit_status_history (permit_id, status, at, actor, office, note) "
                 "VALUES (%s, 'received', coalesce(%s, now()), %s, %s, %s)",
                 (pid, received_at, actor, p["office"], p.get("note")))
    _audit(conn, actor, roles or [], "/permits", permit_no, {"permit_no": permit_no, "to": "received"})
    return permit_no


def _audit(conn, actor: str, roles: list[str], endpoint: str, permit_no: str, details: dict) -> None:
    conn.execute("INSERT INTO gis_meta.audit_log (actor, roles, action, endpoint, layer_id, feature_id, "
                 "status, details) VALUES (%s, %s, 'write', %s, %s, %s, 200, %s)",
                 (actor, roles, endpoint, ACTIVE_WORKS, permit_no, Jsonb(details)))


def _rows_sql(rows: RowFilter | None) -> tuple[sql.Composable, list]:
    """The caller's row filter on ``gis_domain.permits`` (alias ``p``), TRUE when unscoped."""
    if rows is None:
        return sql.SQL("TRUE"), []
    frag = rows.frag("p")
    return frag.sql, frag.params


def transition(conn: psycopg.Connection, permit_no: str, to_status: str, *, actor: str,
               roles: list[str], office: str | None = None, note: str | None = None,
               at: datetime | None = None, rows: RowFilter | None = None) -> dict:
    """Move a permit to ``to_status`` (one transaction); 404 / 409 / 422 on bad requests.

    ``rows``: the caller's row filter (a district-scoped key moves only its districts'
    permits; any other is the same 404 as a missing permit)."""
    _check_no(permit_no)
    with conn.transaction():
        statuses = dict(conn.execute("SELECT code, name_ko FROM gis_domain.permit_statuses").fetchall())
        if to_status not in statuses:
            raise Unprocessable(f"Unknown status {to_status[:40]!r}; statuses are "
                                f"{', '.join(statuses)}.", parameter="status")
        cond, cond_params = _rows_sql(rows)
        row = conn.execute(sql.SQL("SELECT id, status, office FROM gis_domain.permits p WHERE "
                                   "permit_no = %s AND {} FOR UPDATE").format(cond),
                           (permit_no, *cond_params)).fetchone()
        if row is None:
            raise NotFound(f"No permit '{permit_no}'.")
        pid, current, permit_office = row
        allowed = [r[0] for r in conn.execute(
            "SELECT to_status FROM gis_domain.permit_transitions t JOIN gis_domain.permit_statuses s "
            "ON s.code = t.to_status WHERE from_status = %s ORDER BY s.sort_order", (current,))]
        if to_status not in allowed:
            nxt = f"it can move to: {', '.join(allowed)}" if allowed else f"'{current}' is final"
            raise Conflict(f"Permit {permit_no} is '{current}'; '{to_status}' is not allowed from there "
                           f"({nxt}).", current_status=current, allowed=allowed)
        try:
            conn.execute("INSERT INTO gis_domain.permit_status_history (permit_id, status, at, actor, "
                         "office, note) VALUES (%s, %s, coalesce(%s, now()), %s, %s, %s)",
                         (pid, to_status, at, actor, office or permit_office, note))
        except pg_errors.CheckViolation:
            raise Conflict(f"Permit {permit_no} changed concurrently; reload it and retry.") from None
        _audit(conn, actor, roles, f"/permits/{permit_no}/status", permit_no,
               {"permit_no": permit_no, "from": current, "to": to_status})
    return {"permit_no": permit_no, "from": current, "status": to_status}


# --- reads (async, pooled) --------------------------------------------------------------------
def _public(row: dict) -> dict:
    out = dict(row)
    out["geometry"] = orjson.loads(row["geometry"])
    out["status_at"] = row["status_at"].isoformat()
    return out


async def list_permits(db, *, status: str | None, district: str | None, active: bool,
                       limit: int, offset: int) -> dict:
    """A page of permits, newest status change first, with counts per status."""
    where = [sql.SQL("TRUE")]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if status:
        where.append(sql.SQL("p.status = %(status)s"))
        params["status"] = status
    if district:
        where.append(sql.SQL("p.district_code = %(district)s"))
        params["district"] = district
    if active:
        where.append(sql.SQL("s.active_works"))
    w = sql.SQL(" AND ").join(where)
    stmt = sql.SQL("SELECT {cols}, count(*) OVER () AS matched FROM gis_domain.permits p "
                   "JOIN gis_domain.permit_statuses s ON s.code = p.status WHERE {w} "
                   "ORDER BY p.status_at DESC, p.id DESC LIMIT %(limit)s OFFSET %(offset)s").format(
        cols=PUBLIC_COLUMNS, w=w)
    async with db.connection(read_only=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(stmt, params)
        rows = await cur.fetchall()
        await cur.execute("SELECT s.code, count(p.id) AS n FROM gis_domain.permit_statuses s "
                          "LEFT JOIN gis_domain.permits p ON p.status = s.code "
                          "AND (%(district)s::text IS NULL OR p.district_code = %(district)s) "
                          "GROUP BY s.code, s.sort_order ORDER BY s.sort_order",
                          {"district": district})
        counts = {r["code"]: r["n"] for r in await cur.fetchall()}
        if not rows and offset:
            await cur.execute(sql.SQL("SELECT count(*) AS n FROM gis_domain.permits p JOIN "
                                      "gis_domain.permit_statuses s ON s.code = p.status WHERE {}")
                              .format(w), params)
            matched = (await cur.fetchone())["n"]
        else:
            matched = rows[0]["matched"] if rows else 0
    permits = [_public({k: v for k, v in r.items() if k != "matched"}) for r in rows]
    return {"numberMatched": matched, "numberReturned": len(permits), "permits": permits,
            "status_counts": counts}


async def get_permit(db, permit_no: str, principal: Principal) -> dict:
    """One permit with its timeline and the statuses it may move to next."""
    _check_no(permit_no)
    planner = principal.can_write
    async with db.connection(read_only=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.SQL("SELECT p.id, {} FROM gis_domain.permits p JOIN "
                                  "gis_domain.permit_statuses s ON s.code = p.status "
                                  "WHERE p.permit_no = %s").format(PUBLIC_COLUMNS), (permit_no,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"No permit '{permit_no}'.")
        await cur.execute("SELECT h.status, s.name_ko AS status_ko, h.at, h.office, h.note, h.actor "
                          "FROM gis_domain.permit_status_history h JOIN gis_domain.permit_statuses s "
                          "ON s.code = h.status WHERE h.permit_id = %s ORDER BY h.at, h.id", (row["id"],))
        hist = await cur.fetchall()
        await cur.execute("SELECT to_status FROM gis_domain.permit_transitions t JOIN "
                          "gis_domain.permit_statuses s ON s.code = t.to_status "
                          "WHERE from_status = %s ORDER BY s.sort_order", (row["status"],))
        nxt = [r["to_status"] for r in await cur.fetchall()]
    doc = _public({k: v for k, v in row.items() if k != "id"})
    doc["timeline"] = [{"status": h["status"], "status_ko": h["status_ko"], "at": h["at"].isoformat(),
                        "office": h["office"], "note": h["note"],
                        **({"actor": h["actor"]} if planner else {})} for h in hist]
    doc["next_statuses"] = nxt
    return doc


async def get_applicant(db, permit_no: str, rows: RowFilter | None) -> dict:
    """The applicant's personal data (callers have the access decision on ``APPLICANTS``;
    ``rows`` is its row filter: a permit outside it is the same 404 as a missing one)."""
    _check_no(permit_no)
    cond, cond_params = _rows_sql(rows)
    row = await db.fetchone(sql.SQL("SELECT a.name, a.organisation, a.contact, a.address FROM "
                                    "gis_domain.permit_applicants a JOIN gis_domain.permits p ON "
                                    "p.id = a.permit_id WHERE p.permit_no = %s AND {}").format(cond),
                            (permit_no, *cond_params))
    if row is None:
        raise NotFound(f"No permit '{permit_no}'.")
    return {"permit_no": permit_no, "applicant": row}
