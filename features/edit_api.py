"""OGC API Features Part 4 (create, replace, update, delete) and Part 5 (schemas) on layers
marked editable, with optimistic concurrency and every version kept (:mod:`layers.edit`).

* ``POST /collections/{id}/items`` - a Feature (201, ``Location``, ``ETag``) or a
  FeatureCollection (201, the new ids), all or nothing;
* ``PUT`` / ``PATCH`` (JSON merge patch) / ``DELETE`` ``/collections/{id}/items/{fid}`` -
  ``If-Match`` required (428 without, 412 with a stale ETag and the current one in the body);
* ``GET /collections/{id}/items/{fid}/versions`` - the feature's history, newest first;
  ``POST .../items/{fid}/restore?version=v...`` brings one back (itself a new version);
  ``asOf=<RFC 3339>`` on items, one item, stats and exports reads the layer as it was;
* ``GET /collections/{id}/history`` - the layer's change sets, newest first: each ingest
  (create, replace, append) and each edit, who, when, why, how many features, with the
  ``asOf`` links to the layer just before and just after;
* ``GET /collections/{id}/schema`` - the layer's schema (JSON Schema, Part 5);
* ``GET /collections/{id}/changes`` - the change feed: Server-Sent Events, or a JSON page of
  the changes since a version.

The geometry of a body is in ``Content-Crs`` (default CRS84).  An optional ``reason`` query
parameter goes into the history.  Writers need a writing role, or an operator key limited
to some rows (which may only write inside them); every attempt is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse

from features.cql import queryables_schema
from features.http import base_url, only_params, vector_layer
from gis_platform import access, limits
from gis_platform.deps import Db, SettingsDep
from gis_platform.errors import InvalidParameter, NotFound, PayloadTooLarge
from gis_platform.principal import Principal
from gis_platform.responses import FastJSONResponse
from gis_platform.security import PrincipalDep
from layers import edit
from layers.catalog import Layer
from layers.registry import Registry, RegistryDep
from layers.relation import id_in_path
from layers.spatial import parse_crs

router = APIRouter(tags=["editing"])
CollectionId = Annotated[str, Path(alias="collectionId", max_length=200)]
FeatureId = Annotated[str, Path(alias="featureId", max_length=400)]
MAX_FEATURES_PER_REQUEST = 10_000
ITEMS_ALLOW = "GET, HEAD, POST, OPTIONS"
ITEM_ALLOW = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
_WRITE_RESPONSES = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}, 412: {}, 413: {}, 422: {}, 428: {}}


def _writable(registry: Registry, layer_id: str, principal: Principal, settings) -> tuple[Layer, Any]:
    """The editable layer and the rows this caller may write (None: all)."""
    layer = registry.writable(layer_id, principal, action="write_rows",
                              anonymous_writes=settings.security.allow_anonymous_writes)
    edit.check_editable(layer)
    return layer, access.decide(principal, "write_rows", layer.resource).rows


def _if_match(request: Request, settings) -> str | None:
    """The version the writer read (If-Match); without one, where the deployment allows it
    (``GIS_FEATURES_EDIT_REQUIRE_IF_MATCH=false``), any version."""
    got = request.headers.get("if-match")
    if got is None and not settings.features.edit_require_if_match:
        return "*"
    return got


def _crs(request: Request, settings):
    value = request.headers.get("content-crs")
    if value:
        value = value.strip().strip("<>")
    return parse_crs(value, settings.features, param="Content-Crs")


def _reason(request: Request) -> str | None:
    only_params(request, {"reason"})
    reason = request.query_params.get("reason")
    if reason is not None and len(reason) > 500:
        raise InvalidParameter("reason is longer than 500 characters.", parameter="reason")
    return reason


async def _body(request: Request, settings) -> Any:
    limit = int(settings.http.max_request_body_kb) * 1024 * 16
    try:
        return await limits.read_json_body(request, limit, what="a GeoJSON Feature")
    except PayloadTooLarge:
        raise PayloadTooLarge(f"The body is larger than {limit // 1024} KB: send the features in "
                              "several requests.") from None


async def _reload(request: Request) -> None:
    """This worker sees its own write at once (the others within milliseconds, by NOTIFY)."""
    await request.app.state.registry.load_changes()


def _feature_url(request: Request, layer: Layer, fid: str) -> str:
    return f"{base_url(request)}/collections/{layer.id}/items/{id_in_path(fid)}"


@router.post("/collections/{collectionId}/items", status_code=201, responses=_WRITE_RESPONSES,
             summary="Add features (a Feature or a FeatureCollection; all or nothing)")
async def create_items(collection_id: CollectionId, request: Request, registry: RegistryDep,
                       principal: PrincipalDep, db: Db, settings: SettingsDep):
    layer, rows = _writable(registry, collection_id, principal, settings)
    reason = _reason(request)
    crs = _crs(request, settings)
    doc = await _body(request, settings)
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        items = doc.get("features")
        if not isinstance(items, list) or not items:
            raise InvalidParameter("The FeatureCollection has no features.", parameter="features")
        if len(items) > MAX_FEATURES_PER_REQUEST:
            raise InvalidParameter(f"At most {MAX_FEATURES_PER_REQUEST:,} features per request.",
                                   parameter="features")
    else:
        items = [doc]
    feats = []
    for i, item in enumerate(items):
        try:
            feats.append(edit.parse_feature(layer, item, crs))
        except InvalidParameter as exc:
            if len(items) > 1:
                raise InvalidParameter(f"Feature {i + 1}: {exc.detail}", **exc.extra) from None
            raise
    written = await db.run_sync(edit.create, layer, feats, actor=principal.id, reason=reason,
                                rows=rows, transaction=True)
    await _reload(request)
    if len(items) == 1 and doc.get("type") != "FeatureCollection":
        w = written[0]
        return Response(status_code=201, headers={"Location": _feature_url(request, layer, w.fid),
                                                  "ETag": f'"{w.etag}"'})
    return FastJSONResponse({"created": [{"id": int(w.fid) if layer.rows.id_kind == "int" else w.fid,
                                          "etag": w.etag,
                                          "href": _feature_url(request, layer, w.fid)} for w in written],
                             "changeSet": written[0].change_set}, status_code=201)


async def _replace(collection_id: str, feature_id: str, request: Request, registry: Registry,
                   principal: Principal, db, settings, patch: bool) -> Response:
    layer, rows = _writable(registry, collection_id, principal, settings)
    reason = _reason(request)
    crs = _crs(request, settings)
    doc = await _body(request, settings)
    feat = edit.parse_feature(layer, doc, crs, partial=patch)
    w = await db.run_sync(edit.replace, layer, feature_id, feat, expect=_if_match(request, settings),
                          actor=principal.id, reason=reason, rows=rows, patch=patch, transaction=True)
    await _reload(request)
    return Response(status_code=204, headers={"ETag": f'"{w.etag}"'})


@router.put("/collections/{collectionId}/items/{featureId}", status_code=204,
            responses=_WRITE_RESPONSES, summary="Replace a feature (If-Match required)")
async def replace_item(collection_id: CollectionId, feature_id: FeatureId, request: Request,
                       registry: RegistryDep, principal: PrincipalDep, db: Db, settings: SettingsDep):
    return await _replace(collection_id, feature_id, request, registry, principal, db, settings, False)


@router.patch("/collections/{collectionId}/items/{featureId}", status_code=204,
              responses=_WRITE_RESPONSES,
              summary="Change some of a feature's attributes or its geometry (JSON merge patch; If-Match required)")
async def update_item(collection_id: CollectionId, feature_id: FeatureId, request: Request,
                      registry: RegistryDep, principal: PrincipalDep, db: Db, settings: SettingsDep):
    return await _replace(collection_id, feature_id, request, registry, principal, db, settings, True)


@router.delete("/collections/{collectionId}/items/{featureId}", status_code=204,
               responses=_WRITE_RESPONSES, summary="Delete a feature (If-Match required; history keeps it)")
async def delete_item(collection_id: CollectionId, feature_id: FeatureId, request: Request,
                      registry: RegistryDep, principal: PrincipalDep, db: Db, settings: SettingsDep):
    layer, rows = _writable(registry, collection_id, principal, settings)
    reason = _reason(request)
    await db.run_sync(edit.delete, layer, feature_id, expect=_if_match(request, settings),
                      actor=principal.id, reason=reason, rows=rows, transaction=True)
    await _reload(request)
    return Response(status_code=204)


@router.post("/collections/{collectionId}/items/{featureId}/restore", status_code=204,
             responses=_WRITE_RESPONSES,
             summary="Bring back a recorded version of a feature, a deleted one too (?version=v...; "
                     "If-Match: the current ETag, or * for a deleted feature)")
async def restore_item(collection_id: CollectionId, feature_id: FeatureId, request: Request,
                       registry: RegistryDep, principal: PrincipalDep, db: Db, settings: SettingsDep):
    layer, rows = _writable(registry, collection_id, principal, settings)
    only_params(request, {"version", "reason"})
    version = request.query_params.get("version")
    if not version:
        raise InvalidParameter("version is required: a version from /versions, e.g. v1234.",
                               parameter="version")
    reason = request.query_params.get("reason")
    w = await db.run_sync(edit.restore, layer, feature_id, version, expect=_if_match(request, settings),
                          actor=principal.id, reason=reason[:500] if reason else None, rows=rows,
                          transaction=True)
    await _reload(request)
    return Response(status_code=204, headers={"ETag": f'"{w.etag}"',
                                              "Location": _feature_url(request, layer, w.fid)})


@router.options("/collections/{collectionId}/items", include_in_schema=False)
async def items_options(collection_id: CollectionId, registry: RegistryDep, principal: PrincipalDep):
    layer = vector_layer(registry, collection_id, principal)
    allow = ITEMS_ALLOW if edit.writable(layer) else "GET, HEAD, OPTIONS"
    return Response(status_code=204, headers={"Allow": allow})


@router.options("/collections/{collectionId}/items/{featureId}", include_in_schema=False)
async def item_options(collection_id: CollectionId, feature_id: FeatureId, registry: RegistryDep,
                       principal: PrincipalDep):
    layer = vector_layer(registry, collection_id, principal)
    allow = ITEM_ALLOW if edit.writable(layer) else "GET, HEAD, OPTIONS"
    return Response(status_code=204, headers={"Allow": allow})


@router.get("/collections/{collectionId}/items/{featureId}/versions",
            summary="Every version of a feature, newest first (who, when, why, what)")
async def item_versions(collection_id: CollectionId, feature_id: FeatureId, request: Request,
                        registry: RegistryDep, principal: PrincipalDep, db: Db):
    layer = vector_layer(registry, collection_id, principal)
    rows = Registry.rows_of(principal, layer)
    if rows is not None:
        # A caller limited to some rows sees the history of features it may read now.
        cond = layer.rows.id_where(feature_id)
        frag = rows.frag()
        visible = cond is not None and await db.fetchval(
            f"SELECT 1 FROM {layer.table().as_string(None)} WHERE {cond.sql.as_string(None)} "
            f"AND {frag.sql.as_string(None)}", [*cond.params, *frag.params])
        if not visible:
            raise NotFound(f"No feature {feature_id[:40]!r} in collection '{layer.id}'.")
    found = await db.run_sync(edit.versions, layer, feature_id)
    if not found:
        raise NotFound(f"Feature {feature_id[:40]!r} of '{layer.id}' has no recorded versions "
                       "(it was never edited, or does not exist).")
    return FastJSONResponse({"collection": layer.id, "id": feature_id, "versions": found})


_HISTORY = (
    "SELECT change_set, at, 'ingest', mode, actor, reason, source, features "
    "FROM gis_meta.layer_loads WHERE layer_id = %(l)s AND (%(before)s::bigint IS NULL "
    "OR change_set < %(before)s) "
    "UNION ALL SELECT change_set, min(at), 'edit', min(op), min(actor), min(reason), NULL, count(*) "
    "FROM gis_meta.feature_versions WHERE layer_id = %(l)s AND op <> 'loaded' "
    "AND (%(before)s::bigint IS NULL OR change_set < %(before)s) AND change_set NOT IN "
    "(SELECT change_set FROM gis_meta.layer_loads WHERE layer_id = %(l)s) GROUP BY change_set "
    "ORDER BY 1 DESC LIMIT %(n)s")


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@router.get("/collections/{collectionId}/history",
            summary="The layer's change sets, newest first: ingests and edits, who, when, why, "
                    "with asOf links to the layer just before and after each")
async def history(collection_id: CollectionId, request: Request, registry: RegistryDep,
                  principal: PrincipalDep, db: Db):
    """One entry per change set: an ingest (``kind: ingest``, ``mode`` create, replace or
    append, the file it read) or an edit request (``kind: edit``, ``mode`` the operation).
    ``before`` and ``after`` are the layer's items as of just before and just after it
    (an editable layer keeps its history; on others they are absent).  Page with
    ``before=<changeSet>``.  Callers limited to some rows are refused (the history tells
    about the others' rows)."""
    only_params(request, {"limit", "before", "f"})
    layer = registry.readable(collection_id, principal)      # not filtered, as /changes
    if not layer.has_rows:
        raise NotFound(f"No layer '{collection_id}'.")
    q = request.query_params
    try:
        n = int(q.get("limit") or 50)
        before = int(q["before"]) if q.get("before") else None
    except ValueError:
        raise InvalidParameter("limit and before must be whole numbers.", parameter="limit") from None
    if not 1 <= n <= 1000:
        raise InvalidParameter("limit must be between 1 and 1000.", parameter="limit")
    async with db.connection() as conn:
        rows = await (await conn.execute(_HISTORY, {"l": layer.id, "before": before, "n": n})).fetchall()
    items_url = f"{base_url(request)}/collections/{layer.id}/items"
    keeps = layer.editable and not layer.published
    first = edit.earliest(layer) if keeps else None
    out = []
    for cs, at, kind, mode, actor, reason, source, count in rows:
        doc = {"changeSet": cs, "at": _iso(at), "kind": kind, "mode": mode, "actor": actor,
               "reason": reason, "features": count}
        if source:
            doc["source"] = source
        if keeps:
            just_before = at - dt.timedelta(microseconds=1)
            if first is not None and just_before >= first:
                doc["before"] = f"{items_url}?asOf={_iso(just_before)}"
            doc["after"] = f"{items_url}?asOf={_iso(at)}"
        out.append(doc)
    links = []
    if len(rows) == n:
        links.append({"rel": "next", "type": "application/json",
                      "href": f"{base_url(request)}/collections/{layer.id}/history?limit={n}"
                              f"&before={rows[-1][0]}"})
    return FastJSONResponse({"collection": layer.id, "keepsHistory": keeps, "changeSets": out,
                             "links": links})


@router.get("/collections/{collectionId}/schema", summary="The collection's schema (JSON Schema, Part 5)")
async def collection_schema(collection_id: CollectionId, request: Request, registry: RegistryDep,
                            principal: PrincipalDep):
    layer = registry.readable(collection_id, principal, filtered=True, action="describe")
    if not layer.has_rows:
        raise NotFound(f"No layer '{collection_id}'.")
    doc = queryables_schema(layer, f"{base_url(request)}/collections/{layer.id}/schema")
    doc["title"] = layer.title
    doc["x-editable"] = edit.writable(layer)
    for name, prop in doc["properties"].items():
        if name == "geometry":
            prop["x-ogc-role"] = "primary-geometry"
        elif layer.time_column == name:
            prop["x-ogc-role"] = "primary-instant"
    return Response(orjson.dumps(doc), media_type="application/schema+json")


# --- the change feed ----------------------------------------------------------------------------
def _change_doc(c) -> dict:
    return {"version": c.version, "extent": list(c.box) if c.box is not None else None,
            "at": dt.datetime.fromtimestamp(c.at, dt.UTC).isoformat().replace("+00:00", "Z")}


@router.get("/collections/{collectionId}/changes",
            summary="What changed where: Server-Sent Events (Accept: text/event-stream), or a "
                    "JSON page of the changes since a version (?since=)")
async def changes(collection_id: CollectionId, request: Request, registry: RegistryDep,
                  principal: PrincipalDep):
    """Each committed change of the layer's rows (an edit, a published relation's statement)
    with its version and lon/lat extent (null: anywhere).  ``dataVersion`` changes when the
    layer changed as a whole (an ingest, a compaction of its log): a client then reloads
    everything.  Callers limited to some rows are refused (extents would tell where the
    others' rows changed)."""
    only_params(request, {"since", "f"})
    layer = registry.readable(collection_id, principal)      # not filtered: see the docstring
    since = request.query_params.get("since")
    try:
        since_v = int(since) if since not in (None, "") else None
    except ValueError:
        raise InvalidParameter("since must be a change version (a whole number).", parameter="since") from None
    sse = request.query_params.get("f") == "sse" or \
        "text/event-stream" in request.headers.get("accept", "")
    if not sse:
        seen = [c for c in layer.changes.changes if since_v is None or c.version > since_v]
        return FastJSONResponse({"collection": layer.id, "dataVersion": layer.data_version,
                                 "changes": [_change_doc(c) for c in seen],
                                 "latest": max((c.version for c in layer.changes.changes), default=None)})

    async def events():
        base = layer.data_version
        sent = {c.version for c in layer.changes.changes if since_v is None or c.version <= since_v}
        yield b"retry: 3000\n\n"
        while True:
            current = registry.get(layer.id)
            if current is None:
                yield b"event: gone\ndata: {}\n\n"
                return
            if current.data_version != base:
                base = current.data_version
                sent = {c.version for c in current.changes.changes}
                yield b"event: reset\ndata: " + orjson.dumps({"dataVersion": base}) + b"\n\n"
            for c in current.changes.changes:
                if c.version not in sent:
                    sent.add(c.version)
                    yield (f"id: {c.version}\nevent: change\ndata: ".encode()
                           + orjson.dumps(_change_doc(c)) + b"\n\n")
            if await request.is_disconnected():
                return
            if not await registry.wait_updated(15.0):
                yield b": keep-alive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
