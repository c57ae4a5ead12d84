"""HTML pages and SVG charts of the domain routes.

Every value goes through :func:`esc` (HTML) or :func:`xesc` (SVG/XML); data for the maps is
embedded as ``<script type="application/json">`` with ``<`` escaped, so attribute values
cannot inject markup.  Maps use the vendored Leaflet with no basemap (works offline).
Nothing here ever receives applicant data: the permit pages are rendered from the public
permit documents only.
"""

from __future__ import annotations

import html
from typing import Any
from xml.sax.saxutils import escape as _xml_escape

import orjson

LEAFLET_CSS = "/static/vendor/leaflet/leaflet.css"
LEAFLET_JS = "/static/vendor/leaflet/leaflet.js"
RISK_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#27ae60"}
STATUS_COLOURS = {"received": "#7f8c8d", "reviewed": "#2980b9", "approved": "#8e44ad",
                  "rejected": "#c0392b", "works": "#e67e22", "completed": "#27ae60"}

_STYLE = """
body{font-family:system-ui,'Noto Sans CJK KR',sans-serif;margin:0;color:#222}
header{background:#1f4e79;color:#fff;padding:.6rem 1rem}header a{color:#fff}
main{padding:1rem;max-width:1100px}table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f3f7}#map{height:420px;border:1px solid #999;margin:.5rem 0;background:#eef2f5}
.chip{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;color:#fff;font-size:.8rem}
.verdict{padding:.6rem 1rem;color:#fff;font-size:1.2rem;margin:.5rem 0}.muted{color:#666}
ol.timeline{list-style:none;padding-left:0}ol.timeline li{border-left:3px solid #1f4e79;margin:0;
padding:.2rem .8rem}nav a{margin-right:1rem}
@media print{header,.noprint{display:none}#map{height:300px}main{max-width:none}}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def xesc(value: Any) -> str:
    return _xml_escape("" if value is None else str(value), {'"': "&quot;"})


def _json_script(element_id: str, data: Any) -> str:
    text = orjson.dumps(data).decode().replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def page(title: str, body: str, *, map_script: str = "", crumbs: str = "") -> str:
    head_map = f'<link rel="stylesheet" href="{LEAFLET_CSS}">' if map_script else ""
    crumbs = crumbs or '<a href="/">Home</a>'
    tail = f'<script src="{LEAFLET_JS}"></script><script>{map_script}</script>' if map_script else ""
    return (f'<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">{head_map}'
            f"<style>{_STYLE}</style></head><body><header>{crumbs}</header>"
            f"<main><h1>{esc(title)}</h1>{body}</main>{tail}</body></html>")


def _chip(label: str, colour: str) -> str:
    return f'<span class="chip" style="background:{esc(colour)}">{esc(label)}</span>'


# --- dig-safety report -------------------------------------------------------------------------
# Context under the map from the platform's own public layers: asks the catalog first, so a
# platform without that layer shows no context rather than a 404 in the console.
_CONTEXT_JS = """function txt(s){var e=document.createElement('span');e.textContent=s;return e}
function contextLayer(id,query){
 return fetch('/collections?f=json').then(function(r){return r.ok?r.json():{collections:[]}})
  .then(function(c){if(!c.collections.some(function(x){return x.id===id}))return null;
   return fetch('/collections/'+id+'/items?f=json&'+query).then(function(r){return r.ok?r.json():null})})}
"""
_DIG_MAP_JS = _CONTEXT_JS + """(function(){
var d=JSON.parse(document.getElementById('dig-data').textContent);
var map=L.map('map',{attributionControl:false});
var area=L.geoJSON(d.excavation,{style:{color:'#000',weight:2,dashArray:'4 3',fillColor:'#f1c40f',fillOpacity:.35}}).addTo(map);
var colours=d.colours;
L.geoJSON(d.features,{style:function(f){return {color:colours[f.properties.risk],weight:4,opacity:.9}},
 pointToLayer:function(f,ll){return L.circleMarker(ll,{radius:6,color:colours[f.properties.risk]})},
 onEachFeature:function(f,l){var p=f.properties;l.bindTooltip(txt(p.kind_ko+' / '+(p.owner||'')+' / '+p.horizontal_distance_m+' m / '+p.risk))}}).addTo(map);
map.fitBounds(area.getBounds().pad(0.6),{maxZoom:20});
// context: road centrelines around the excavation, from the platform's own public layer
var bb=area.getBounds().pad(2),q=[bb.getWest(),bb.getSouth(),bb.getEast(),bb.getNorth()].map(function(v){return v.toFixed(6)}).join(',');
contextLayer('roads','limit=500&bbox='+q).then(function(g){if(g){var rl=L.geoJSON(g,{interactive:false,
  style:{color:'#95a5a6',weight:6,opacity:.5,className:'context'}}).addTo(map);rl.bringToBack()}}).catch(function(){})
 .then(function(){window.__reportReady=true});})();"""


def digcheck_html(result: dict, geojson: dict) -> str:
    """A printable report: verdict, owners to notify, facilities table and a map."""
    s, req = result["summary"], result["request"]
    verdict_colour = {"conflict": RISK_COLOURS["high"], "caution": RISK_COLOURS["medium"],
                      "clear": RISK_COLOURS["low"]}[s["verdict"]]
    verdict_text = {"conflict": "CONFLICT — strike risk: do not dig before the owners have located their facilities",
                    "caution": "CAUTION — facilities within clearance: coordinate with the owners",
                    "clear": "CLEAR — no facility within the clearance distances"}[s["verdict"]]
    req_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in [
        ("planned depth (m)", req["depth_m"]), ("notification buffer (m)", req["buffer_m"]),
        ("trench / pit width (m)", req["width_m"] or "—"), ("area (m²)", req["area_m2"]),
        ("input geometry", f"{req['geometry_type']} in {req['geometry_crs']}"),
        ("facility layer", result["layer"]), ("generated", result["generated_at"])])
    notify = "".join(
        f"<tr><td>{esc(o['owner'])}</td><td>{esc(', '.join(o['kinds']))}</td><td>{o['facilities']}</td>"
        f"<td>{esc(o['min_distance_m'])}</td><td>{_chip(o['max_risk'], RISK_COLOURS[o['max_risk']])}</td></tr>"
        for o in result["notify"]) or '<tr><td colspan="5" class="muted">nobody</td></tr>'
    facs = "".join(
        f"<tr><td>{esc(e['fid'])}</td><td>{esc(e['kind_ko'])} ({esc(e['kind'])})</td><td>{esc(e['owner'])}</td>"
        f"<td>{esc(e['diameter_mm'])}</td><td>{esc(e['depth_min_m'])}–{esc(e['depth_max_m'])}</td>"
        f"<td>{esc(e['horizontal_distance_m'])}</td><td>{esc(e['vertical_clearance_m'])}</td>"
        f"<td>{_chip(e['risk'], RISK_COLOURS[e['risk']])}</td><td>{esc('; '.join(e['reasons']))}</td></tr>"
        for e in result["facilities"])
    trunc = ('<p><strong>The list is truncated</strong>: narrow the area.</p>' if result["truncated"] else "")
    body = (
        f'<div class="verdict" style="background:{verdict_colour}">{esc(verdict_text)}</div>'
        f'<p>{s["facilities"]} facilities: {s["high"]} high, {s["medium"]} medium, {s["low"]} low risk. '
        '<button class="noprint" onclick="window.print()">Print</button></p>'
        f'<div id="map"></div>{_json_script("dig-data", {"excavation": result["excavation"], "features": geojson["features"], "colours": RISK_COLOURS})}'
        f"<h2>Request</h2><table>{req_rows}</table>"
        "<h2>Owners to notify</h2><table><tr><th>owner</th><th>kinds</th><th>facilities</th>"
        f"<th>nearest (m)</th><th>worst risk</th></tr>{notify}</table>"
        "<h2>Facilities</h2><table><tr><th>id</th><th>kind</th><th>owner</th><th>Ø mm</th>"
        "<th>cover (m)</th><th>horizontal distance (m)</th><th>vertical clearance (m)</th><th>risk</th>"
        f"<th>why</th></tr>{facs}</table>{trunc}"
        '<p class="muted">Positions and depths are as recorded by the owners; always locate '
        "facilities on site (hand-dig trial holes) before mechanical excavation.</p>")
    return page("Dig-safety check · 굴착 안전 확인", body, map_script=_DIG_MAP_JS)


# --- cross-section chart -------------------------------------------------------------------------
def section_svg(result: dict, *, width: int = 960, height: int = 420) -> str:
    """The cross-section as a standalone SVG: depth (down) against station along the line."""
    left, right, top, bottom = 64, 24, 40, 56
    crossings = result["crossings"]
    length = max(float(result["length_m"]), 1e-6)
    deepest = max([((c["depth_max_m"] or c["depth_min_m"] or 0) + (c["diameter_mm"] or 0) / 1000)
                   for c in crossings] + [result["depth_m"] or 0, 2.5]) + 0.5
    pw, ph = width - left - right, height - top - bottom

    def x(st: float) -> float:
        return left + pw * st / length

    def y(depth: float) -> float:
        return top + ph * depth / deepest

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="Noto Sans CJK KR, sans-serif" font-size="11">'),
           f'<title>Cross-section ({xesc(result["layer"])}, {length:.1f} m)</title>',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#efe3cf"/>',
           f'<line x1="{left}" y1="{top}" x2="{left + pw}" y2="{top}" stroke="#333" stroke-width="2"/>',
           (f'<text x="{left}" y="{top - 8}" font-size="13">Cross-section · 횡단면 — {length:.1f} m, '
            f'{len(crossings)} facilities</text>')]
    step = 0.5 if deepest <= 4 else 1.0 if deepest <= 10 else 2.0
    d = 0.0
    while d <= deepest + 1e-9:
        out.append(f'<line x1="{left}" y1="{y(d):.1f}" x2="{left + pw}" y2="{y(d):.1f}" stroke="#d5c4a8" '
                   f'stroke-width="0.5"/><text x="{left - 6}" y="{y(d) + 4:.1f}" text-anchor="end">{d:g} m</text>')
        d += step
    for i in range(6):
        st = length * i / 5
        out.append(f'<text x="{x(st):.1f}" y="{top + ph + 16}" text-anchor="middle">{st:.0f} m</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle">station along the line (m) · '
               'depth below surface (m)</text>')
    if result.get("depth_m") is not None:
        yd = y(result["depth_m"])
        out.append(f'<line class="planned-depth" x1="{left}" y1="{yd:.1f}" x2="{left + pw}" y2="{yd:.1f}" '
                   f'stroke="#c0392b" stroke-width="1.5" stroke-dasharray="6 4"/>'
                   f'<text x="{left + pw - 4}" y="{yd - 4:.1f}" text-anchor="end" fill="#c0392b">planned depth '
                   f'{result["depth_m"]:g} m</text>')
    for i, c in enumerate(crossings):
        dia = (c["diameter_mm"] or 100) / 1000
        top_d = c["depth_min_m"] if c["depth_min_m"] is not None else 0.0
        cy = y(top_d + dia / 2)
        r = max(4.0, ph * dia / deepest / 2)
        cx = x(c["station_m"])
        label = f'{c["kind_ko"] or c["kind"]} Ø{c["diameter_mm"] or "?"} · {top_d:g} m'
        ty = cy - r - 6 - (i % 3) * 13
        out.append(f'<g class="facility" data-fid="{xesc(c["fid"])}"><circle cx="{cx:.1f}" cy="{cy:.1f}" '
                   f'r="{r:.1f}" fill="{xesc(c["colour"])}" stroke="#222" stroke-width="1"><title>'
                   f'{xesc(label)} · {xesc(c["owner"])}</title></circle><text x="{cx:.1f}" y="{ty:.1f}" '
                   f'text-anchor="middle">{xesc(label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


# --- permits (OPEN) -------------------------------------------------------------------------------
_PERMITS_MAP_JS = _CONTEXT_JS + """(function(){
var d=JSON.parse(document.getElementById('permit-data').textContent);
var map=L.map('map',{attributionControl:false});
var ctx=L.layerGroup().addTo(map);
var lyr=L.geoJSON(d.features,{style:function(f){return {color:d.colours[f.properties.status]||'#333',weight:2,fillOpacity:.35}},
 onEachFeature:function(f,l){l.bindTooltip(txt(f.properties.permit_no+' · '+f.properties.status_ko));
  // a dot at the centre, so a 20 m trench is visible at city scale
  if(l.getBounds){L.circleMarker(l.getBounds().getCenter(),{radius:4,weight:1,color:'#fff',fillOpacity:.9,
   fillColor:d.colours[f.properties.status]||'#333'}).bindTooltip(txt(f.properties.permit_no+' · '+f.properties.status_ko)).addTo(map)}}}).addTo(map);
var b=lyr.getBounds();if(b.isValid()){map.fitBounds(b,{maxZoom:18})}else{map.setView([37.55,126.98],11)}
// context: the district outlines from the platform's own public layer (if it has one)
contextLayer('districts','limit=100').then(function(g){if(g){L.geoJSON(g,{interactive:false,
  style:{color:'#7f8c8d',weight:1,fill:false,className:'context'}}).addTo(ctx)}}).catch(function(){})
 .then(function(){window.__mapReady=true});})();"""


def _permit_row(p: dict) -> str:
    return (f'<tr><td><a href="/permits/{esc(p["permit_no"])}?f=html">{esc(p["permit_no"])}</a></td>'
            f'<td>{esc(p["permit_type"])}</td><td>{esc(p["purpose"])}</td>'
            f'<td>{esc(p["starts_on"])} – {esc(p["ends_on"])}</td>'
            f'<td>{_chip(p["status_ko"] + " · " + p["status"], STATUS_COLOURS.get(p["status"], "#333"))}</td>'
            f'<td>{esc(p["office"])}</td><td>{esc(p["planned_depth_m"])}</td></tr>')


def permits_html(doc: dict, *, links: dict[str, str]) -> str:
    """The OPEN list: where every application stands (public data only)."""
    feats = [{"type": "Feature", "geometry": p["geometry"], "properties": {
        "permit_no": p["permit_no"], "status": p["status"], "status_ko": p["status_ko"]}}
        for p in doc["permits"]]
    rows = "".join(_permit_row(p) for p in doc["permits"])
    nav = " ".join(f'<a href="{esc(h)}">{esc(t)}</a>' for t, h in links.items())
    counts = " ".join(_chip(f"{k} {v}", STATUS_COLOURS.get(k, "#333")) for k, v in doc["status_counts"].items())
    body = (f"<p>Road-works permits and where each application stands. {doc['numberMatched']} permits "
            f"match; showing {len(doc['permits'])}.</p><p>{counts}</p>"
            f'<div id="map"></div>{_json_script("permit-data", {"features": feats, "colours": STATUS_COLOURS})}'
            "<table><tr><th>permit</th><th>type</th><th>purpose</th><th>period</th><th>status</th>"
            f"<th>office</th><th>depth (m)</th></tr>{rows}</table><nav>{nav}</nav>")
    return page("Road-works permits · 도로굴착 인허가 현황", body, map_script=_PERMITS_MAP_JS,
                crumbs='<a href="/">Home</a> / <a href="/permits?f=html">Permits</a>')


def permit_html(p: dict) -> str:
    """One permit with its full public timeline."""
    feats = [{"type": "Feature", "geometry": p["geometry"], "properties": {
        "permit_no": p["permit_no"], "status": p["status"], "status_ko": p["status_ko"]}}]
    info = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in [
        ("permit", p["permit_no"]), ("type", p["permit_type"]), ("purpose", p["purpose"]),
        ("facility kind", p["facility_kind"]), ("planned depth (m)", p["planned_depth_m"]),
        ("period", f'{p["starts_on"]} – {p["ends_on"]}'), ("responsible office", p["office"]),
        ("district", p["district_code"])])
    steps = "".join(
        f'<li>{_chip(h["status_ko"] + " · " + h["status"], STATUS_COLOURS.get(h["status"], "#333"))} '
        f'<time datetime="{esc(h["at"])}">{esc(h["at"][:16].replace("T", " "))}</time> · {esc(h["office"])}'
        + (f' — {esc(h["note"])}' if h.get("note") else "") + "</li>" for h in p["timeline"])
    nxt = ", ".join(p["next_statuses"]) or "none (final)"
    body = (f'<p>Current status: {_chip(p["status_ko"] + " · " + p["status"], STATUS_COLOURS.get(p["status"], "#333"))}'
            f' <span class="muted">next possible: {esc(nxt)}</span></p>'
            f'<div id="map"></div>{_json_script("permit-data", {"features": feats, "colours": STATUS_COLOURS})}'
            f'<table>{info}</table><h2>Timeline · 처리 경과</h2><ol class="timeline">{steps}</ol>')
    return page(f"Permit {p['permit_no']}", body, map_script=_PERMITS_MAP_JS,
                crumbs='<a href="/">Home</a> / <a href="/permits?f=html">Permits</a>')
