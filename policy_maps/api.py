"""HTTP routes of policy maps: the public gallery, map pages, renderings and the JSON API.

Public: ``GET /maps`` (gallery HTML, or JSON with ``f=json``/``Accept``), ``GET /maps/{id}``
(live MapLibre page, or JSON), ``/maps/{id}/v/{version}`` (permalink of a published
version), ``/maps/{id}/embed``, ``/maps/{id}/data.json``, ``/maps/{id}/map.html`` (offline
folium), ``/maps/{id}/map.png``, ``/maps/{id}/thumbnail.png`` (the gallery's picture, stored
when the map is published).  Planners: ``POST /maps`` (a spec, JSON or YAML: a new
version), ``POST /maps/{id}/publish``, ``GET /maps?drafts=true``.  A draft is a 404 to the
public, like a map that does not exist.  Every layer goes through ``Registry.readable``.
"""

from __future__ import annotations

import asyncio
import html
from email.utils import formatdate
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from gis_platform import access
from gis_platform.access import Resource
from gis_platform.assets import vendor_dir
from gis_platform.deps import SettingsDep, run_sync
from gis_platform.errors import InvalidParameter, UnsupportedMediaType
from gis_platform.principal import Principal
from gis_platform.responses import FastJSONResponse
from gis_platform.security import PrincipalDep
from gis_platform.web import render
from indicators.store import check_indicator, get_area_unit
from layers.registry import Registry, RegistryDep
from policy_maps.build import MapAccess, MapData
from policy_maps.i18n import TEXTS, choose_lang
from policy_maps.render_folium import render_folium
from policy_maps.render_png import render_png
from policy_maps.service import cache_key, cached, load_map, publish_with_thumbnail, save_spec
from policy_maps.spec import SpecError
from policy_maps.store import can_edit, get_version, list_maps
from policy_maps.thumbnails import folder as thumbnail_folder
from policy_maps.thumbnails import thumbnail_file

router = APIRouter(tags=["policy maps"])
def _lang(request: Request, lang: str | None, settings) -> str:
    return choose_lang(lang, request.headers.get("accept-language"),
                       settings.maps.default_lang)


def _wants_json(request: Request, f: str | None) -> bool:
    if f is not None:
        if f not in ("json", "html"):
            raise InvalidParameter("f must be json or html.")
        return f == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _lookup(registry: Registry, principal: Principal) -> MapAccess:
    """The map's parts as this caller may read them (the one access decision, audited)."""
    return MapAccess(lambda layer_id: registry.readable(layer_id, principal),
                     lambda ind: check_indicator(ind, principal))


def _require_editor(principal: Principal, settings) -> None:
    """Before the body is read: only a writing role saves or publishes maps."""
    access.require_writer(principal, anonymous_writes=settings.security.allow_anonymous_writes, what="map")


def map_resource(data: MapData) -> Resource:
    """A map as the access decision sees it: public, built from its layers and indicator."""
    sources = [*data.data_versions.get("layers", {}), *data.indicator.sources]
    return Resource("map", data.spec.id, "public", has_rows=False,
                    sources=tuple(dict.fromkeys(sources)), hidden_when_denied=False)


def _actor(principal: Principal, settings) -> Principal:
    """Development instances with anonymous writes act as a planner."""
    if settings.security.allow_anonymous_writes and not can_edit(principal):
        return Principal(id="anonymous-dev", roles=frozenset({"planner"}))
    return principal


# --- gallery -----------------------------------------------------------------------------
@router.get("/maps", summary="The public gallery of published maps (HTML or JSON)")
async def gallery(request: Request, principal: PrincipalDep, settings: SettingsDep,
                  q: str | None = Query(None, max_length=100), lang: str | None = None,
                  f: str | None = None, drafts: bool = False):
    lang = _lang(request, lang, settings)

    def do(conn):
        found = list_maps(conn, principal, (q or "").strip() or None, drafts)
        return found, {u: get_area_unit(conn, u) for u in {m.spec.area_unit for m in found}}

    found, units = await run_sync(request, do)
    if _wants_json(request, f):
        return FastJSONResponse({"maps": [m.summary() for m in found]})
    items = [{"id": m.id, "version": m.version, "title": m.spec.title.get(lang),
              "description": m.spec.description.get(lang) if m.spec.description else "",
              "unit": units[m.spec.area_unit].title_ko if lang == "ko" else units[m.spec.area_unit].title,
              "status": "published" if m.is_published_version else "draft"}
             for m in found]
    page = render("maps/gallery.html", 
        lang=lang, t=TEXTS[lang], maps=items, q=q, qq=f"&q={quote(q)}" if q else "")
    return HTMLResponse(page, headers={"Vary": "Accept, Accept-Language"})


@router.post("/maps", status_code=201, summary="Save a map spec (JSON or YAML) as a new version",
             responses={400: {}, 403: {}, 415: {}, 422: {}})
async def create_map(request: Request, registry: RegistryDep, principal: PrincipalDep,
                     settings: SettingsDep, publish_now: bool = Query(False, alias="publish")):
    _require_editor(principal, settings)
    principal = _actor(principal, settings)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if ctype in ("application/json", ""):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SpecError(f"The body is not valid JSON: {exc}", errors=[]) from None
    elif ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        import yaml

        try:
            data = yaml.safe_load(body.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SpecError(f"The body is not valid YAML: {exc}", errors=[]) from None
    else:
        raise UnsupportedMediaType("Send the spec as application/json or application/yaml.")

    def authorize_write(mapdata: MapData) -> None:
        access.authorize(principal, "write", map_resource(mapdata),
                         anonymous_writes=settings.security.allow_anonymous_writes)

    def do(conn):
        version, mapdata = save_spec(conn, data, principal.id, _lookup(registry, principal),
                                     authorize_write)
        status = "draft"
        if publish_now:
            publish_with_thumbnail(conn, mapdata, principal, thumbnail_folder(settings.resolved_data_dir()))
            status = "published"
        return mapdata.spec.id, version, status, mapdata.data_versions

    map_id, version, status, dv = await run_sync(request, do)
    return {"id": map_id, "version": version, "status": status, "data_versions": dv,
            "links": {"page": f"/maps/{map_id}/v/{version}", "data": f"/maps/{map_id}/data.json?version={version}"}}


@router.post("/maps/{map_id}/publish", summary="Publish a version (default: the latest)",
             responses={403: {}, 404: {}, 422: {}})
async def publish_map(request: Request, map_id: str, registry: RegistryDep, principal: PrincipalDep,
                      settings: SettingsDep, version: int | None = Query(None, ge=1)):
    _require_editor(principal, settings)
    caller = principal
    principal = _actor(principal, settings)

    def do(conn):
        data, _ = load_map(conn, map_id, version, principal, _lookup(registry, caller))
        access.authorize(caller, "write", map_resource(data),
                         anonymous_writes=settings.security.allow_anonymous_writes)
        return publish_with_thumbnail(conn, data, principal, thumbnail_folder(settings.resolved_data_dir()))

    mv = await run_sync(request, do)
    return {"id": mv.id, "version": mv.version, "status": "published",
            "links": {"page": f"/maps/{mv.id}", "permalink": f"/maps/{mv.id}/v/{mv.version}"}}


# --- one map -------------------------------------------------------------------------------
async def _load(request: Request, map_id: str, version: int | None, registry: Registry,
                principal: Principal):
    return await run_sync(request, load_map, map_id, version, principal, _lookup(registry, principal))


def _page(request: Request, data, status: str, lang: str, embed: bool, settings) -> HTMLResponse:
    doc = data.document(lang)
    base = (settings.http.public_url or str(request.base_url)).rstrip("/")
    permalink = f"{base}/maps/{data.spec.id}/v/{data.version}?lang={lang}"
    # The snippet is pasted into other sites' pages: every value is escaped for its attribute.
    src = f"{base}/maps/{quote(data.spec.id)}/embed?lang={quote(lang)}&version={int(data.version)}"
    snippet = (f'<iframe src="{html.escape(src, quote=True)}" title="{html.escape(doc["title"], quote=True)}" '
               'width="100%" height="480" style="border:0" loading="lazy"></iframe>')
    version_q = f"&version={data.version}" if request.query_params.get("version") else ""
    page = render("maps/map.html", 
        lang=lang, t=TEXTS[lang], doc=doc, table=data.table(), embed=embed, status=status,
        permalink=permalink, embed_snippet=snippet, base=f"/maps/{data.spec.id}", vq=version_q,
        doc_json=orjson.dumps(doc).decode().replace("</", "<\\/"))
    cache = "no-cache" if status != "published" else "public, max-age=60"
    return HTMLResponse(page, headers={"Cache-Control": cache, "Vary": "Accept, Accept-Language"})


@router.get("/maps/{map_id}", summary="A map: live page (HTML) or its document (JSON)")
async def map_page(request: Request, map_id: str, registry: RegistryDep, principal: PrincipalDep,
                   settings: SettingsDep, version: int | None = Query(None, ge=1),
                   lang: str | None = None, f: str | None = None):
    lang = _lang(request, lang, settings)
    data, status = await _load(request, map_id, version, registry, principal)
    if _wants_json(request, f):
        return FastJSONResponse({**data.document(lang), "status": status,
                                 "spec": data.spec.model_dump(mode="json", exclude_none=True)})
    return _page(request, data, status, lang, False, settings)


@router.get("/maps/{map_id}/v/{version}", summary="Permalink of one version of a map")
async def map_version_page(request: Request, map_id: str, version: int, registry: RegistryDep,
                           principal: PrincipalDep, settings: SettingsDep, lang: str | None = None,
                           f: str | None = None):
    return await map_page(request, map_id, registry, principal, settings, version, lang, f)


@router.get("/maps/{map_id}/embed", summary="A compact page for <iframe> embedding")
async def map_embed(request: Request, map_id: str, registry: RegistryDep, principal: PrincipalDep,
                    settings: SettingsDep, version: int | None = Query(None, ge=1), lang: str | None = None):
    lang = _lang(request, lang, settings)
    data, status = await _load(request, map_id, version, registry, principal)
    return _page(request, data, status, lang, True, settings)


@router.get("/maps/{map_id}/data.json", summary="The numbers, classes and colours of a map")
async def map_data(request: Request, map_id: str, registry: RegistryDep, principal: PrincipalDep,
                   settings: SettingsDep, version: int | None = Query(None, ge=1), lang: str | None = None):
    lang = _lang(request, lang, settings)
    data, status = await _load(request, map_id, version, registry, principal)
    return FastJSONResponse({**data.document(lang), "status": status, "table": data.table()})


@router.get("/maps/{map_id}/map.html", summary="Standalone offline HTML (folium/Leaflet, no CDN)")
async def map_html(request: Request, map_id: str, registry: RegistryDep, principal: PrincipalDep,
                   settings: SettingsDep, version: int | None = Query(None, ge=1),
                   lang: str | None = None, download: bool = False):

    lang = _lang(request, lang, settings)

    def do(conn):

        data, _ = load_map(conn, map_id, version, principal, _lookup(registry, principal))
        return data.version, render_folium(data, conn, lang,
                                           vendor_dir=vendor_dir(settings)).encode()

    ver, body = await run_sync(request, do)
    headers = {"Cache-Control": "no-cache"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{map_id}-v{ver}-{lang}.html"'
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/maps/{map_id}/thumbnail.png", summary="The gallery's picture of a map (no text)",
            responses={304: {}, 404: {}})
async def map_thumbnail(request: Request, map_id: str, registry: RegistryDep, principal: PrincipalDep,
                        settings: SettingsDep, version: int | None = Query(None, ge=1)):
    root = thumbnail_folder(settings.resolved_data_dir())

    def do(conn):
        mv = get_version(conn, map_id, version, principal)
        path = thumbnail_file(conn, root, mv, _lookup(registry, principal))
        return mv.is_published_version, path, path.read_bytes(), path.stat().st_mtime

    published, path, body, mtime = await run_sync(request, do)
    headers = {"ETag": f'"{path.stem}"', "Last-Modified": formatdate(mtime, usegmt=True),
               "Cache-Control": "public, max-age=300" if published else "private, no-cache"}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="image/png", headers=headers)


@router.get("/maps/{map_id}/map.png", summary="The map as a PNG (title, legend, source, date)")
async def map_png(request: Request, map_id: str, registry: RegistryDep, principal: PrincipalDep,
                  settings: SettingsDep, version: int | None = Query(None, ge=1), lang: str | None = None,
                  year: int | None = Query(None, ge=1900, le=2200),
                  w: int = Query(1200, ge=200, le=3000, description="width in pixels")):

    lang = _lang(request, lang, settings)
    data, status = await _load(request, map_id, version, registry, principal)
    if year is not None and year not in data.years:
        raise InvalidParameter(f"year {year} is not in this map; it has {data.years}.")
    cache_dir = settings.resolved_data_dir() / "maps" / "png"
    name = cache_key(data, lang, year, w) + ".png"
    body = await asyncio.to_thread(cached, cache_dir, name, lambda: render_png(data, lang, year, width_px=w),
                                   settings.maps.png_cache_mb * 1024 * 1024)
    cache = "no-cache" if status != "published" else "public, max-age=300"
    return Response(body, media_type="image/png", headers={"Cache-Control": cache})
