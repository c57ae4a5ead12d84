"""Standalone HTML (folium / Leaflet) that works offline.

folium's pages load Leaflet, jQuery, Bootstrap and Font Awesome from CDNs by default; offline
(an intranet, a file opened from disk) they die with ``L is not defined``.  Here the map's
``default_js``/``default_css`` are emptied and the vendored Leaflet (the copy the platform
serves under /static/vendor/leaflet) is inlined, so the file has no external URL at all.
The choropleth, legend, title, source line, year selector, area names and data table are
drawn by one small script over the same classes and colours as the other renderers; the
panels are Leaflet controls (each corner stacks its own) and the city is fitted into what
they leave free.
"""

from __future__ import annotations

import html
from pathlib import Path

import orjson
import psycopg
from psycopg import sql

from gis_platform.assets import VENDOR_DIR, require_vendor_assets
from policy_maps.build import MapData

MAX_OVERLAY_FEATURES = 20_000
# Above this many areas their names wait for a closer zoom (Seoul's 25 districts show at
# once; its 424 dongs from zoom 13, where a dong is wider than its name).
CROWDED = 60
LABEL_ZOOM_CROWDED = 13

_SCRIPT = """
(function () {
  var D = %(data)s;
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  var map = %(map)s;
  var yearSel = document.getElementById('pm-year');
  function styleOf(i, year) {
    var c = D.classes[year][i];
    return {fillColor: c >= 0 ? D.colors[c] : D.no_data_color, fillOpacity: 0.8,
            color: D.basemap === 'none' ? 'transparent' : '#ffffff', weight: 0.7};
  }
  var year = String(D.year);
  var layer = L.geoJSON(D.geojson, {
    style: function (f) { return styleOf(f.properties.i, year); },
    onEachFeature: function (f, l) {
      l.bindPopup(function () {
        var v = D.values[year][f.properties.i];
        return '<b>' + esc(f.properties.name) + '</b><br>' + esc(D.legend_title) + ' (' + year + '): ' +
               (v === null ? '–' : v.toLocaleString(undefined, {maximumFractionDigits: D.decimals}));
      });
    }
  }).addTo(map);
  D.overlays.forEach(function (o) {
    L.geoJSON(o.geojson, {
      pointToLayer: function (f, ll) {
        return L.circleMarker(ll, {radius: 2.5, color: o.color, weight: 1, fillOpacity: 0.8});
      },
      style: function () { return {color: o.color, weight: 1.2}; }
    }).addTo(map);
  });
  // The panels are Leaflet controls: each corner stacks its own, so the zoom buttons never
  // cover the title nor the scale bar the source line.
  function place(id, position) {
    var el = document.getElementById(id);
    var Panel = L.Control.extend({onAdd: function () {
      L.DomEvent.disableClickPropagation(el);
      L.DomEvent.disableScrollPropagation(el);
      return el;
    }});
    new Panel({position: position}).addTo(map);
  }
  place('pm-head', 'topleft');
  place('pm-legend', 'bottomright');
  place('pm-source', 'bottomleft');
  // Fit the city into what the panels leave free: beside the legend or above it, whichever
  // shows it larger (a wide frame puts the legend beside, a phone below).
  function fit() {
    var corner = function (where) {
      var el = map.getContainer().querySelector('.leaflet-' + where);
      return L.point(el.offsetWidth, el.offsetHeight);
    };
    var bounds = L.latLngBounds([[D.bounds[1], D.bounds[0]], [D.bounds[3], D.bounds[2]]]);
    var gap = 8, bl = corner('bottom.leaflet-left'), br = corner('bottom.leaflet-right');
    var topLeft = L.point(gap, Math.max(corner('top.leaflet-left').y, corner('top.leaflet-right').y) + gap);
    var options = [L.point(br.x + gap, bl.y + gap), L.point(gap, Math.max(bl.y, br.y) + gap)];
    var zooms = options.map(function (p) { return map.getBoundsZoom(bounds, false, topLeft.add(p)); });
    map.fitBounds(bounds, {paddingTopLeft: topLeft,
                           paddingBottomRight: options[zooms[0] >= zooms[1] ? 0 : 1]});
  }
  fit();
  // Area names at the centre of each area: the city's districts at once, a dong map's 424
  // names once zoomed in far enough to read them.  Text, never markup (esc).
  var labels = L.layerGroup();
  D.labels.forEach(function (p, i) {
    if (!p) return;
    L.marker([p[1], p[0]], {interactive: false, keyboard: false, icon: L.divIcon({
      className: 'pm-label', iconSize: null, html: '<span>' + esc(D.areas[i].name) + '</span>'})}).addTo(labels);
  });
  function showLabels() {
    if (map.getZoom() >= D.label_zoom) labels.addTo(map); else labels.remove();
  }
  map.on('zoomend', showLabels);
  showLabels();
  function legend() {
    var rows = D.legend[year].map(function (r) {
      return '<li><span class="sw" style="background:' + esc(r.color) + '"></span>' + esc(r.label) +
             ' <small>(' + esc(r.count) + ')</small></li>';
    }).join('');
    document.getElementById('pm-legend-rows').innerHTML = rows;
    document.getElementById('pm-summary').textContent = D.summary[year];
  }
  // Two years as a swipe: the chosen year left of the divider, the other right of it (in a
  // pane of its own, clipped at the divider).  Offered when the years share their classes,
  // so one legend reads both sides.
  var compareSel = document.getElementById('pm-compare'), swipe = document.getElementById('pm-swipe');
  var other = null, divider = null;
  function clip() {
    if (!other) return;
    var size = map.getSize(), x = Math.round(size.x * swipe.value / 100);
    var nw = map.containerPointToLayerPoint([0, 0]), se = map.containerPointToLayerPoint(size);
    map.getPane('pm-other').style.clip = 'rect(' + [nw.y, se.x, se.y, nw.x + x].join('px,') + 'px)';
    divider.style.left = x + 'px';
    divider.firstChild.textContent = year;
    divider.lastChild.textContent = compareSel.value;
  }
  function compare() {
    if (other) { map.removeLayer(other); other = null; }
    document.body.classList.toggle('pm-comparing', !!compareSel.value);
    if (!compareSel.value) return;
    other = L.geoJSON(D.geojson, {pane: 'pm-other', renderer: L.canvas({pane: 'pm-other'}), interactive: false,
                                  style: function (f) { return styleOf(f.properties.i, compareSel.value); }})
      .addTo(map);
    clip();
  }
  if (compareSel) {
    map.createPane('pm-other').style.zIndex = 450;            // over the areas, under the names
    divider = L.DomUtil.create('div', 'pm-divider', map.getContainer());
    divider.append(document.createElement('span'), document.createElement('span'));
    compareSel.addEventListener('change', compare);
    swipe.addEventListener('input', clip);
    map.on('move zoom viewreset resize', clip);
  }
  if (yearSel) yearSel.addEventListener('change', function () {
    year = yearSel.value;
    layer.eachLayer(function (l) { l.setStyle(styleOf(l.feature.properties.i, year)); });
    legend();
    clip();
  });
  legend();
  window.__policyMap = {ready: true, map: map, areas: layer.getLayers().length,
                        year: function () { return year; }};
})();
"""

_CSS = """
.pm-panel{background:rgba(255,255,255,.94);border-radius:6px;box-shadow:0 1px 5px rgba(0,0,0,.3);
  padding:8px 10px;font:13px/1.4 "Noto Sans CJK KR",sans-serif;}
#pm-head{max-width:min(30em,calc(100vw - 70px))}
#pm-head h1{font-size:16px;margin:0 0 2px}
#pm-legend{max-width:14em}
#pm-legend ul{list-style:none;margin:4px 0 0;padding:0}
#pm-legend .sw{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:-2px;
  border:1px solid #999}
#pm-source{font-size:11px;padding:2px 6px;max-width:calc(100vw - 14em - 70px)}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.pm-swipe{display:none}.pm-comparing .pm-swipe{display:block}
.pm-divider{display:none;position:absolute;top:0;bottom:0;width:0;border-left:3px solid #fff;z-index:650;
  box-shadow:0 0 4px rgba(0,0,0,.5);pointer-events:none}
.pm-comparing .pm-divider{display:block}
.pm-divider span{position:absolute;bottom:50%;padding:1px 6px;background:#12355b;color:#fff;border-radius:3px;
  font:600 12px/1.4 sans-serif}
.pm-divider span:first-child{right:6px}.pm-divider span:last-child{left:6px}
.pm-label{width:0;height:0}
.pm-label span{position:absolute;transform:translate(-50%,-50%);white-space:nowrap;color:#1d1d1f;
  font:600 11px/1.2 "Noto Sans CJK KR",sans-serif;text-shadow:0 0 2px #fff,0 0 2px #fff,0 0 3px #fff}
"""


def overlay_geojson(conn: psycopg.Connection, data: MapData) -> list[dict]:
    """Overlay layers as GeoJSON (capped) for the standalone page."""
    out = []
    for layer, spec in zip(data.overlays, data.spec.overlays):
        rows = conn.execute(sql.SQL("SELECT ST_AsGeoJSON({}, 5) FROM {} LIMIT %s").format(
            layer.rows.geom_in(4326), layer.table()),
                            (MAX_OVERLAY_FEATURES,)).fetchall()
        feats = b",".join(b'{"type":"Feature","properties":{},"geometry":' + r[0].encode() + b"}"
                          for r in rows)
        out.append({"layer": layer.id, "color": spec.color,
                    "geojson": orjson.Fragment(b'{"type":"FeatureCollection","features":[' + feats + b"]}")})
    return out


def area_labels(conn: psycopg.Connection, data: MapData) -> list[list[float] | None]:
    """Per area (in ``data``'s order), where its name goes: the centre of the largest circle
    inside it (in a crescent-shaped dong, unlike the centroid, that is inside), or None for
    areas without a name of their own (hexagon cells are named by their code)."""
    if not data.unit.name_column:
        return [None] * len(data.fids)
    lr = data.layer.rows
    rows = conn.execute(sql.SQL(
        "SELECT {f}, ST_X(c), ST_Y(c) FROM (SELECT {f}, ST_Transform((ST_MaximumInscribedCircle({g})).center, "
        "4326) AS c FROM {t}) s").format(f=lr.fid(), g=lr.geom_in(3857), t=lr.table())).fetchall()
    where = {int(fid): [round(x, 5), round(y, 5)] for fid, x, y in rows}
    return [where.get(fid) for fid in data.fids]


def render_folium(data: MapData, conn: psycopg.Connection, lang: str = "ko", *,
                  vendor_dir: Path = VENDOR_DIR) -> str:
    """The map as one self-contained HTML document (no external URL).

    The vendored Leaflet in ``vendor_dir`` (``make assets``) is inlined; when it is missing
    this raises :class:`ConfigurationError` naming the command, not a bare file error.
    """
    require_vendor_assets(vendor_dir)
    import folium
    from branca.element import Element, MacroElement
    from jinja2 import Template

    doc = data.document(lang)
    doc["decimals"] = data.decimals
    doc["geojson"] = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": g, "properties": {"i": i, "name": n}}
        for i, (g, n) in enumerate(zip(data.geometries, data.names))]}
    doc["overlays"] = overlay_geojson(conn, data)
    doc["labels"] = area_labels(conn, data)
    doc["label_zoom"] = LABEL_ZOOM_CROWDED if len(data.fids) > CROWDED else 0
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=True, zoom_snap=0.25, zoom_control="topright")
    m.default_js = []
    m.default_css = []
    leaflet_css = (vendor_dir / "leaflet" / "leaflet.css").read_text("utf-8")
    leaflet_js = (vendor_dir / "leaflet" / "leaflet.js").read_text("utf-8")
    root = m.get_root()
    root.header.add_child(Element(f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                                  f"<title>{html.escape(data.title(lang))}</title>"
                                  f"<style>{leaflet_css}</style><style>{_CSS}</style>"
                                  f"<script>{leaflet_js}</script>"), name="leaflet_inline")
    root.html.add_child(Element(_panels(data, lang)))
    script = _SCRIPT % {"data": orjson.dumps(doc, default=str).decode().replace("</", "<\\/"),
                        "map": "{{ this._parent.get_name() }}"}
    macro = MacroElement()
    macro._template = Template("{% macro script(this, kwargs) %}" + script + "{% endmacro %}")
    m.add_child(macro)
    out = root.render()
    return out.replace("<html>", f'<html lang="{lang}">', 1)


def _compare_controls(data: MapData, lang: str) -> str:
    """A second year to compare with, and the swipe that moves the divider between them."""
    ko = lang == "ko"
    opts = "".join(f'<option value="{y}">{y}</option>' for y in data.years)
    return (f' <label>{"비교" if ko else "Compare with"} <select id="pm-compare"><option value="">'
            f'{"없음" if ko else "none"}</option>{opts}</select></label>'
            f'<label class="pm-swipe">{"나누는 선 위치" if ko else "Divider"} <input id="pm-swipe" '
            'type="range" min="0" max="100" value="50"></label>')


def _panels(data: MapData, lang: str) -> str:
    e = html.escape
    years = ""
    if len(data.years) > 1:
        opts = "".join(f'<option value="{y}"{" selected" if y == data.year else ""}>{y}</option>'
                       for y in data.years)
        label = "연도" if lang == "ko" else "Year"
        years = f'<label>{label} <select id="pm-year">{opts}</select></label>'
        if data.spec.classification.scope == "all_years":
            years += _compare_controls(data, lang)
    t = data.table()
    head = "".join(f"<th>{y}</th>" for y in t["years"])
    body = "".join(f"<tr><th scope=row>{e(r['name'] or r['code'])}</th>"
                   + "".join(f"<td>{v}</td>" for v in r["values"]) + "</tr>" for r in t["rows"])
    area = "지역" if lang == "ko" else "Area"
    return (f'<div id="pm-head" class="pm-panel"><h1>{e(data.title(lang))}</h1>'
            f'<div>{e(data.description(lang))}</div>{years}'
            f'<p id="pm-summary" class="sr-only" aria-live="polite"></p></div>'
            f'<div id="pm-legend" class="pm-panel legend" role="img" aria-label="{e(data.legend_title(lang))}">'
            f'<b>{e(data.legend_title(lang))}</b><ul id="pm-legend-rows"></ul></div>'
            f'<div id="pm-source" class="pm-panel">{e(data.source_line(lang))}</div>'
            f'<table class="sr-only"><caption>{e(data.legend_title(lang))}</caption>'
            f'<tr><th>{area}</th>{head}</tr>{body}</table>')
