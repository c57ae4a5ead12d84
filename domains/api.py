"""HTTP routes of the domain layers: dig-safety check, cross-sections, permits (OPEN).

=========================================  ==========  ==========================================
route                                      who         what
=========================================  ==========  ==========================================
``GET  /facility-kinds``                   anyone      the facility vocabulary and clearances
``POST /dig-check``                        readers of  facilities near an excavation: JSON,
                                           facilities  GeoJSON (``f=geojson``) or a printable
                                                       HTML report (``f=html``)
``POST /cross-section``                    readers of  facilities crossed by a line: JSON or
                                           facilities  SVG (``f=svg``)
``GET  /permits``                          anyone      permits with current status (JSON,
                                                       GeoJSON, HTML): no applicant data
``POST /permits``                          planner     file a permit application
``GET  /permits/{no}``                     anyone      one permit and its full timeline
``POST /permits/{no}/status``              planner     move it on (409 on illegal transitions)
``GET  /permits/{no}/applicant``           planner     the applicant's personal data
=========================================  ==========  ==========================================

"Readers of facilities" are callers the catalog lets read ``domains_facilities_layer``
(restricted: planner, operator, admin); everyone else gets the catalog's 404 "No layer",
exactly as for a missing layer.  Dig-check and cross-section answers are ``no-store``.
The permit pages (``f=html``) are in Korean or English: ``?lang=ko|en``, else Accept-Language.
"""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from domains import digcheck, permits, render, section
from domains.common import (
    input_geometry,
    read_json_body,
    readable_rows,
)
from gis_platform import access, web
from gis_platform.access import APPLICANTS, PERMITS
from gis_platform.deps import Db, SettingsDep
from gis_platform.errors import Forbidden, InvalidParameter, Unprocessable
from gis_platform.responses import FastJSONResponse
from gis_platform.security import PrincipalDep
from layers.registry import RegistryDep

router = APIRouter(tags=["domains"])
PermitNo = Annotated[str, Path(max_length=60, description="Permit number, e.g. RW-2025-000123")]
NO_STORE = {"Cache-Control": "no-store"}


def _format(request: Request, f: str | None, allowed: tuple[str, ...]) -> str:
    if f is not None:
        if f not in allowed:
            raise InvalidParameter(f"f must be one of {', '.join(allowed)}.", parameter="f")
        return f
    accept = request.headers.get("accept", "")
    if "html" in allowed and "text/html" in accept:
        return "html"
    return allowed[0]


@router.get("/facility-kinds", summary="Facility kinds with their dig-safety clearances")
async def facility_kinds(db: Db) -> dict:
    rows = await db.fetchall("SELECT code, name_ko, name_en, horizontal_clearance_m, vertical_clearance_m, "
                             "typical_depth_m, max_depth_m, colour FROM gis_domain.facility_kinds "
                             "ORDER BY sort_order")
    return {"kinds": rows}


@router.post("/dig-check", summary="Call before you dig: facilities near a planned excavation",
             responses={400: {}, 404: {}, 413: {}, 422: {}})
async def dig_check(request: Request, registry: RegistryDep, principal: PrincipalDep, db: Db,
                    settings: SettingsDep, f: str | None = Query(None, description="json | geojson | html")):
    """Body: ``{"geometry": <GeoJSON Polygon | LineString+width_m | Point+width_m>,
    "depth_m": 1.2, "buffer_m": 3, "width_m": 0.8, "geometry_crs": "EPSG:5179"}``."""
    ds = settings.domains
    layer = readable_rows(registry, ds.facilities_layer, principal)
    fmt = _format(request, f, ("json", "geojson", "html"))
    req = digcheck.parse_request(await read_json_body(request, settings), settings, ds)
    result = await digcheck.run_check(db, layer, principal, req, ds)
    if fmt == "json":
        return FastJSONResponse(digcheck.as_json(result), headers=NO_STORE)
    gj = digcheck.as_geojson(result)
    if fmt == "geojson":
        return FastJSONResponse(gj, media_type="application/geo+json", headers=NO_STORE)
    return HTMLResponse(render.digcheck_html(result, gj), headers=NO_STORE)


@router.post("/cross-section", summary="Facilities crossed by a line, with depth (JSON or SVG profile)",
             responses={400: {}, 404: {}, 422: {}})
async def cross_section(request: Request, registry: RegistryDep, principal: PrincipalDep, db: Db,
                        settings: SettingsDep, f: str | None = Query(None, description="json | svg")):
    ds = settings.domains
    layer = readable_rows(registry, ds.facilities_layer, principal)
    fmt = _format(request, f, ("json", "svg"))
    req = section.parse_request(await read_json_body(request, settings), settings)
    result = await section.run_section(db, layer, principal, req, ds)
    if fmt == "svg":
        return Response(render.section_svg(result), media_type="image/svg+xml", headers=NO_STORE)
    return FastJSONResponse(result, headers=NO_STORE)


# --- permits -------------------------------------------------------------------------------------
# The OPEN pages in Korean or English, like the map gallery: ?lang=ko|en, else the first of
# the two in Accept-Language, else Korean.  Status and facility names come from the
# vocabularies (name_ko / name_en); an English page keeps the official Korean status term
# beside the English one, as people quote it to the district office.
PAGE_TEXTS = {
    "ko": {"list_title": "도로굴착 인허가 현황", "permit_title": "도로굴착 허가 %s", "home": "홈",
           "permits": "도로굴착 허가", "intro": "도로굴착·점용 허가 신청과 처리 상태입니다.",
           "matched": "조건에 맞는 허가 %d건 중 %d건을 보여 줍니다.", "map": "허가 위치 지도",
           "permit": "허가번호", "type": "종류", "purpose": "목적", "period": "기간", "status": "상태",
           "office": "담당 부서", "depth": "굴착 깊이 (m)", "kind": "시설 종류", "district": "자치구 코드",
           "none": "조건에 맞는 허가가 없습니다.", "pages": "쪽", "previous": "« 이전", "next_page": "다음 »",
           "current": "현재 상태", "next": "다음 단계", "final": "없음 (처리 완료)", "timeline": "처리 경과",
           "types": {"excavation": "굴착", "occupancy": "점용"}},
    "en": {"list_title": "Road-works permits", "permit_title": "Road-works permit %s", "home": "Home",
           "permits": "Road-works permits", "intro": "Road-works permit applications and where each stands.",
           "matched": "Permits matching: %d; shown here: %d.", "map": "Map of the permits",
           "permit": "Permit", "type": "Type", "purpose": "Purpose", "period": "Period", "status": "Status",
           "office": "Responsible office", "depth": "Depth (m)", "kind": "Facility", "district": "District code",
           "none": "No permit matches.", "pages": "Pages", "previous": "« Previous", "next_page": "Next »",
           "current": "Current status", "next": "Next possible", "final": "none (final)",
           "timeline": "Timeline", "types": {"excavation": "excavation", "occupancy": "occupancy"}},
}


def _page_lang(request: Request, lang: str | None) -> str:
    """``lang`` if ko or en, else the first of them in Accept-Language (by q), else ko."""
    if lang in PAGE_TEXTS:
        return lang
    ranked = []
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            ranked.append((float(q or 1), tag.strip().lower()[:2]))
        except ValueError:
            continue
    return next((code for _, code in sorted(ranked, key=lambda r: -r[0]) if code in PAGE_TEXTS), "ko")


async def _names(db, lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """Status and facility-kind labels in ``lang`` (the vocabularies' own names)."""
    statuses = await db.fetchall("SELECT code, name_ko, name_en FROM gis_domain.permit_statuses")
    kinds = await db.fetchall("SELECT code, name_ko, name_en FROM gis_domain.facility_kinds")
    status = {r["code"]: r["name_ko"] if lang == "ko" else f"{r['name_en']} · {r['name_ko']}" for r in statuses}
    return status, {r["code"]: r[f"name_{lang}"] for r in kinds}


def _permit_page(template: str, request: Request, lang: str, title: str, **context) -> HTMLResponse:
    t = PAGE_TEXTS[lang]
    crumbs = [(t["home"], "/"), (t["permits"], f"/permits?f=html&lang={lang}")]
    links = {code: str(request.url.include_query_params(lang=code)) for code in PAGE_TEXTS}
    page = web.render(template, lang=lang, t=t, title=title, breadcrumbs=crumbs, lang_links=links,
                      colours=render.STATUS_COLOURS, leaflet=True, data_id="permit-data", script="permits.js",
                      **context)
    return HTMLResponse(page, headers={"Vary": "Accept, Accept-Language", "Content-Language": lang})


def _map_json(permits_: list[dict], sn: dict[str, str]) -> dict:
    """The page map's features: public fields only, the status also in the page's language."""
    return {"colours": render.STATUS_COLOURS, "features": [
        {"type": "Feature", "geometry": p["geometry"], "properties": {
            "permit_no": p["permit_no"], "status": p["status"], "status_ko": p["status_ko"],
            "status_label": sn.get(p["status"], p["status"])}} for p in permits_]}


def _page_links(request: Request, limit: int, offset: int, matched: int, t: dict) -> list[tuple[str, str]]:
    links = []
    if offset > 0:
        links.append((t["previous"], str(request.url.include_query_params(offset=max(0, offset - limit)))))
    if offset + limit < matched:
        links.append((t["next_page"], str(request.url.include_query_params(offset=offset + limit))))
    links.append(("JSON", str(request.url.include_query_params(f="json"))))
    links.append(("GeoJSON", str(request.url.include_query_params(f="geojson"))))
    return links


@router.get("/permits", summary="Road-works permits and where each stands (public)")
async def list_permits(request: Request, db: Db,
                       f: str | None = Query(None, description="json | geojson | html"),
                       status: str | None = Query(None, max_length=20),
                       district: str | None = Query(None, max_length=20),
                       active: bool = Query(False, description="only approved / works under way"),
                       limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=10_000_000),
                       lang: str | None = Query(None, max_length=8, description="HTML page: ko | en")):
    fmt = _format(request, f, ("json", "geojson", "html"))
    if status is not None and status not in render.STATUS_COLOURS:
        raise InvalidParameter(f"status must be one of {', '.join(render.STATUS_COLOURS)}.", parameter="status")
    doc = await permits.list_permits(db, status=status, district=district, active=active, limit=limit,
                                     offset=offset)
    if fmt == "html":
        lang = _page_lang(request, lang)
        t = PAGE_TEXTS[lang]
        sn, _ = await _names(db, lang)
        return _permit_page("domains/permits.html", request, lang, t["list_title"], doc=doc, sn=sn,
                            links=_page_links(request, limit, offset, doc["numberMatched"], t),
                            map_json=_map_json(doc["permits"], sn))
    if fmt == "geojson":
        feats = [{"type": "Feature", "id": p["permit_no"], "geometry": p["geometry"],
                  "properties": {k: v for k, v in p.items() if k != "geometry"}} for p in doc["permits"]]
        return FastJSONResponse({"type": "FeatureCollection", "features": feats,
                                 "numberMatched": doc["numberMatched"], "numberReturned": len(feats)},
                                media_type="application/geo+json")
    return doc


@router.post("/permits", status_code=201, summary="File a road-works permit application (planner)",
             responses={400: {}, 401: {}, 403: {}, 409: {}, 422: {}})
async def create_permit(request: Request, registry: RegistryDep, principal: PrincipalDep, db: Db,
                        settings: SettingsDep):
    decision = access.authorize(principal, "write_rows", PERMITS)
    doc = await read_json_body(request, settings)
    p = permits.validate_new_permit(doc)
    if decision.rows is not None:
        allowed = dict(decision.rows.terms).get("district_code", ())
        if p.get("district_code") not in allowed:
            raise Forbidden("This API key files permits only in districts "
                            f"{', '.join(allowed) or '(none)'}; give one as district_code.")
    geom = input_geometry(doc, settings)
    if geom.kind not in ("Polygon", "MultiPolygon"):
        raise InvalidParameter(f"A permit's geometry must be a Polygon or MultiPolygon, not {geom.kind}.",
                               parameter="geometry")
    ds = settings.domains

    def run(conn: psycopg.Connection) -> str:
        valid, reason, area, wkb = conn.execute(
            psycopg.sql.SQL("SELECT ST_IsValid(g), ST_IsValidReason(g), ST_Area(g::geography), "
                            "ST_AsBinary(g) FROM (SELECT {} AS g) s").format(geom.frag.sql),
            geom.frag.params).fetchone()
        if not valid:
            raise Unprocessable(f"The permit area is not a valid polygon ({reason}).",
                                parameter="geometry")
        if not area or area > ds.digcheck_max_area_m2:
            raise Unprocessable(f"The permit area is {area or 0:,.0f} m²; it must be > 0 and at most "
                                f"{ds.digcheck_max_area_m2:,.0f} m².", parameter="geometry")
        permits.ensure_active_works_layer(conn)
        try:
            return permits.insert_permit(conn, p, bytes(wkb), actor=principal.id,
                                         roles=sorted(principal.roles))
        except psycopg.errors.UniqueViolation:
            raise permits.Conflict(f"A permit {p['permit_no']} already exists.") from None

    permit_no = await db.run_sync(run, transaction=True)
    await registry.load()
    return FastJSONResponse(await permits.get_permit(db, permit_no, principal), status_code=201,
                            headers={"Location": f"/permits/{permit_no}"})


@router.get("/permits/{permit_no}", summary="One permit with its full public timeline")
async def get_permit(permit_no: PermitNo, request: Request, db: Db, principal: PrincipalDep,
                     f: str | None = Query(None, description="json | html"),
                     lang: str | None = Query(None, max_length=8, description="HTML page: ko | en")):
    fmt = _format(request, f, ("json", "html"))
    doc = await permits.get_permit(db, permit_no, principal)
    if fmt == "html":
        lang = _page_lang(request, lang)
        t = PAGE_TEXTS[lang]
        sn, kinds = await _names(db, lang)
        p = {**doc, "timeline": [{k: v for k, v in h.items() if k != "actor"} for h in doc["timeline"]]}
        info = [(t["permit"], p["permit_no"]), (t["type"], t["types"].get(p["permit_type"], p["permit_type"])),
                (t["purpose"], p["purpose"]), (t["kind"], kinds.get(p["facility_kind"], p["facility_kind"])),
                (t["depth"], p["planned_depth_m"]), (t["period"], f'{p["starts_on"]} – {p["ends_on"]}'),
                (t["office"], p["office"]), (t["district"], p["district_code"])]
        return _permit_page("domains/permit.html", request, lang, t["permit_title"] % p["permit_no"], p=p,
                            sn=sn, info=info, next_labels=[sn.get(c, c) for c in p["next_statuses"]],
                            map_json=_map_json([p], sn))
    return doc


@router.post("/permits/{permit_no}/status", summary="Move a permit to its next status (planner)",
             responses={400: {}, 401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def change_status(permit_no: PermitNo, request: Request, registry: RegistryDep,
                        principal: PrincipalDep, db: Db, settings: SettingsDep):
    """Body: ``{"status": "reviewed", "note": "...", "office": "..."}``."""
    decision = access.authorize(principal, "write_rows", PERMITS)
    doc = await read_json_body(request, settings)
    unknown = sorted(set(doc) - {"status", "note", "office"})
    if unknown:
        raise InvalidParameter(f"Unknown fields {unknown}; expected status, note, office.", parameter="body")
    status = doc.get("status")
    if not isinstance(status, str) or not status:
        raise InvalidParameter("status is required, e.g. {\"status\": \"reviewed\"}.", parameter="status")
    note, office = doc.get("note"), doc.get("office")
    for key, value in (("note", note), ("office", office)):
        if value is not None and (not isinstance(value, str) or len(value) > 1000):
            raise InvalidParameter(f"{key} must be text (at most 1000 characters).", parameter=key)

    await db.run_sync(permits.transition, permit_no, status, actor=principal.id,
                      roles=sorted(principal.roles), office=office, note=note, rows=decision.rows)
    await registry.load()
    return await permits.get_permit(db, permit_no, principal)


@router.get("/permits/{permit_no}/applicant", summary="The applicant's personal data (planner)",
            responses={401: {}, 403: {}, 404: {}})
async def applicant(permit_no: PermitNo, principal: PrincipalDep, db: Db):
    decision = access.authorize(principal, "read", APPLICANTS)
    return FastJSONResponse(await permits.get_applicant(db, permit_no, decision.rows),
                            headers=NO_STORE)
