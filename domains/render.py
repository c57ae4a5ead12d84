"""HTML pages and SVG charts of the domain routes.

The pages are templates of ``gis_platform/templates/domains/`` (the platform's one Jinja
environment: every value escaped; data for the maps in a ``<script type="application/json">``
block with ``<`` escaped; the map scripts are static files under ``/static/domains/``).
The cross-section chart is SVG built here, every value through :func:`xesc`.  Nothing here
ever receives applicant data: the permit pages are rendered from the public permit
documents only.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape as _xml_escape

from gis_platform.web import render

RISK_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#27ae60"}
STATUS_COLOURS = {"received": "#7f8c8d", "reviewed": "#2980b9", "approved": "#8e44ad",
                  "rejected": "#c0392b", "works": "#e67e22", "completed": "#27ae60"}


def xesc(value: Any) -> str:
    return _xml_escape("" if value is None else str(value), {'"': "&quot;"})


VERDICTS = {"conflict": "CONFLICT — strike risk: do not dig before the owners have located their facilities",
            "caution": "CAUTION — facilities within clearance: coordinate with the owners",
            "clear": "CLEAR — no facility within the clearance distances"}


def digcheck_html(result: dict, geojson: dict) -> str:
    """A printable report: verdict, owners to notify, facilities table and a map."""
    s, req = result["summary"], result["request"]
    verdict_colour = {"conflict": RISK_COLOURS["high"], "caution": RISK_COLOURS["medium"],
                      "clear": RISK_COLOURS["low"]}[s["verdict"]]
    request_rows = [
        ("planned depth (m)", req["depth_m"]), ("notification buffer (m)", req["buffer_m"]),
        ("trench / pit width (m)", req["width_m"] or "—"), ("area (m²)", req["area_m2"]),
        ("input geometry", f"{req['geometry_type']} in {req['geometry_crs']}"),
        ("facility layer", result["layer"]), ("generated", result["generated_at"])]
    return render("domains/digcheck.html", lang="ko", title="Dig-safety check · 굴착 안전 확인",
                  result=result, s=s, request_rows=request_rows, verdict_colour=verdict_colour,
                  verdict_text=VERDICTS[s["verdict"]], colours=RISK_COLOURS, leaflet=True,
                  data_id="dig-data", script="digcheck.js",
                  map_json={"excavation": result["excavation"], "features": geojson["features"],
                            "colours": RISK_COLOURS})


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

