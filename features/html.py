"""HTML views of the OGC API Features documents, for people in a browser.

Every value is escaped with :func:`html.escape`; GeoJSON embedded for the map goes into a
``<script type="application/json">`` block with ``<`` escaped, so feature attributes cannot
inject markup.  The map is the vendored Leaflet (``/static/vendor/leaflet``) with no tile
basemap: the page works offline and on an intranet.
"""

from __future__ import annotations

import html
from typing import Any

import orjson

LEAFLET_CSS = "/static/vendor/leaflet/leaflet.css"
LEAFLET_JS = "/static/vendor/leaflet/leaflet.js"

_STYLE = """
body{font-family:system-ui,'Noto Sans CJK KR',sans-serif;margin:0;color:#222}
header{background:#1f4e79;color:#fff;padding:.6rem 1rem}header a{color:#fff}
main{padding:1rem}table{border-collapse:collapse;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f3f7}#map{height:380px;border:1px solid #999;margin:.5rem 0;background:#eef2f5}
nav.paging a{margin-right:1rem}.muted{color:#666}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, breadcrumbs: list[tuple[str, str]] = (), map_data: Any = None,
         json_href: str | None = None) -> str:
    """A complete page; ``map_data`` (GeoJSON) adds a Leaflet map of it."""
    crumbs = " / ".join(f'<a href="{esc(h)}">{esc(t)}</a>' for t, h in breadcrumbs)
    head_map = map_js = ""
    if map_data is not None:
        head_map = f'<link rel="stylesheet" href="{LEAFLET_CSS}">'
        data = orjson.dumps(map_data).decode().replace("<", "\\u003c")
        map_js = (
            '<div id="map"></div>'
            f'<script type="application/json" id="map-data">{data}</script>'
            f'<script src="{LEAFLET_JS}"></script>'
            "<script>(function(){var data=JSON.parse(document.getElementById('map-data').textContent);"
            "var map=L.map('map',{attributionControl:false});"
            "var lyr=L.geoJSON(data,{pointToLayer:function(f,ll){return L.circleMarker(ll,{radius:5,"
            "color:'#1f4e79',weight:1,fillOpacity:.7})},style:{color:'#c0392b',weight:2,fillOpacity:.2},"
            "onEachFeature:function(f,l){l.bindTooltip(String(f.id))}}).addTo(map);"
            "var b=lyr.getBounds();if(b.isValid()){map.fitBounds(b,{maxZoom:17})}else{map.setView([37.55,126.98],11)}"
            "window.__mapReady=true;})();</script>")
    alt = f' <a class="muted" href="{esc(json_href)}">JSON</a>' if json_href else ""
    crumbs = crumbs or '<a href="/">Home</a>'
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head_map}"
            f"<style>{_STYLE}</style></head><body><header>{crumbs}</header>"
            f"<main><h1>{esc(title)}</h1>{alt}{map_js}{body}</main></body></html>")


def links_list(links: list[dict]) -> str:
    items = "".join(f'<li><a href="{esc(l["href"])}">{esc(l.get("title") or l["rel"])}</a> '
                    f'<span class="muted">({esc(l["rel"])}, {esc(l.get("type", ""))})</span></li>'
                    for l in links)
    return f"<ul>{items}</ul>"


def landing_html(doc: dict) -> str:
    return page(doc["title"], f"<p>{esc(doc.get('description'))}</p>" + links_list(doc["links"]))


def collections_html(doc: dict) -> str:
    rows = "".join(
        f'<tr><td><a href="/collections/{esc(c["id"])}?f=html">{esc(c["id"])}</a></td><td>{esc(c["title"])}</td>'
        f'<td>{esc(c.get("description"))}</td><td>{esc(c.get("itemType"))}</td></tr>'
        for c in doc["collections"])
    body = f"<table><tr><th>id</th><th>title</th><th>description</th><th>type</th></tr>{rows}</table>"
    return page("Collections", body, breadcrumbs=[("Home", "/"), ("Collections", "/collections?f=html")],
                json_href="/collections?f=json")


def collection_html(doc: dict) -> str:
    cid = doc["id"]
    extent = doc.get("extent", {}).get("spatial", {}).get("bbox", [[None]])[0]
    meta = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in (
        ("description", doc.get("description")), ("licence", doc.get("license")),
        ("attribution", doc.get("attribution")), ("extent (CRS84)", extent),
        ("features", doc.get("numberOfFeatures")), ("storage CRS", doc.get("storageCrs"))))
    body = (f"<table>{meta}</table><p><a href=\"/collections/{esc(cid)}/items?f=html\">Browse the features</a> · "
            f"<a href=\"/collections/{esc(cid)}/queryables\">Queryables</a></p>" + links_list(doc["links"]))
    return page(doc["title"], body, breadcrumbs=[("Home", "/"), ("Collections", "/collections?f=html"),
                                                 (cid, f"/collections/{cid}?f=html")],
                json_href=f"/collections/{cid}?f=json")


def _table(features: list[dict], columns: list[str], cid: str) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in ["id", *columns])
    rows = []
    for f in features:
        cells = "".join(f"<td>{esc(f['properties'].get(c))}</td>" for c in columns)
        rows.append(f'<tr><td><a href="/collections/{esc(cid)}/items/{esc(f["id"])}?f=html">{esc(f["id"])}</a>'
                    f"</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def items_html(doc: dict, cid: str, title: str, columns: list[str]) -> str:
    nav = " ".join(f'<a rel="{esc(l["rel"])}" href="{esc(l["href"])}">{esc(l["rel"])}</a>'
                   for l in doc.get("links", []) if l["rel"] in ("prev", "next"))
    count = (f"<p class=\"muted\">{doc.get('numberReturned')} of {doc.get('numberMatched')} "
             "features</p>")
    body = count + f'<nav class="paging">{nav}</nav>' + _table(doc["features"], columns, cid)
    json_href = next((l["href"] for l in doc.get("links", []) if l["rel"] == "alternate"), None)
    return page(f"{title}: features", body, map_data=doc,
                breadcrumbs=[("Home", "/"), ("Collections", "/collections?f=html"),
                             (cid, f"/collections/{cid}?f=html"), ("items", f"/collections/{cid}/items?f=html")],
                json_href=json_href)


def feature_html(feature: dict, cid: str, title: str) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in feature["properties"].items())
    return page(f"{title}: feature {feature['id']}", f"<table>{rows}</table>", map_data=feature,
                breadcrumbs=[("Home", "/"), ("Collections", "/collections?f=html"),
                             (cid, f"/collections/{cid}?f=html"), ("items", f"/collections/{cid}/items?f=html")],
                json_href=f"/collections/{cid}/items/{feature['id']}?f=json")
