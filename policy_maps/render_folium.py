"""Standalone HTML (folium / Leaflet) that works offline.

folium's pages load Leaflet, jQuery, Bootstrap and Font Awesome from CDNs by default; offline
(an intranet, a file opened from disk) they die with ``L is not defined``.  Here the map's
``default_js``/``default_css`` are emptied and the vendored Leaflet (the copy the platform
serves under /static/vendor/leaflet) is inlined, so the file has no external URL at all.
The choropleth, legend, title, source line, year selector and data table are drawn by one
small script over the same classes and colours as the other renderers.
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
  map.fitBounds([[D.bounds[1], D.bounds[0]], [D.bounds[3], D.bounds[2]]]);
  function legend() {
    var rows = D.legend[year].map(function (r) {
      return '<li><span class="sw" style="background:' + esc(r.color) + '"></span>' + esc(r.label) +
             ' <small>(' + esc(r.count) + ')</small></li>';
    }).join('');
    document.getElementById('pm-legend-rows').innerHTML = rows;
    document.getElementById('pm-summary').textContent = D.summary[year];
  }
  if (yearSel) yearSel.addEventListener('change', function () {
    year = yearSel.value;
    layer.eachLayer(function (l) { l.setStyle(styleOf(l.feature.properties.i, year)); });
    legend();
  });
  legend();
  window.__policyMap = {ready: true, map: map, areas: layer.getLayers().length,
                        year: function () { return year; }};
})();
"""

_CSS = """
.pm-panel{position:absolute;z-index:1000;background:rgba(255,255,255,.94);border-radius:6px;
  box-shadow:0 1px 5px rgba(0,0,0,.3);padding:8px 10px;font:13px/1.4 "Noto Sans CJK KR",sans-serif;}
#pm-head{top:8px;left:8px;right:8px;max-width:30em}
#pm-head h1{font-size:16px;margin:0 0 2px}
#pm-legend{bottom:24px;right:8px;max-width:16em}
#pm-legend ul{list-style:none;margin:4px 0 0;padding:0}
#pm-legend .sw{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:-2px;
  border:1px solid #999}
#pm-source{bottom:4px;left:8px;right:8px;font-size:11px;padding:2px 6px}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
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
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=True, zoom_snap=0.25)
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


def _panels(data: MapData, lang: str) -> str:
    e = html.escape
    years = ""
    if len(data.years) > 1:
        opts = "".join(f'<option value="{y}"{" selected" if y == data.year else ""}>{y}</option>'
                       for y in data.years)
        label = "연도" if lang == "ko" else "Year"
        years = f'<label>{label} <select id="pm-year">{opts}</select></label>'
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
