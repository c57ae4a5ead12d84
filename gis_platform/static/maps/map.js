// Live policy map: MapLibre GL JS over the platform's own vector tiles (no external URL).
// The numbers, classes and colours come inline from the server (#pm-data); the geometry
// comes from the area unit's vector tiles, joined on the MVT feature id (the layer's fid).
import * as maplibregl from '/static/vendor/maplibre-gl/maplibre-gl.mjs';
import { followChanges } from '/static/tiles/live.js';

const D = JSON.parse(document.getElementById('pm-data').textContent);
const state = window.__policyMap = { ready: false, errors: [], year: String(D.year), t0: performance.now() };
// Tests (and monitoring) wait on <html data-map-state>: no script evaluation needed under the CSP.
const mark = (s) => { document.documentElement.dataset.mapState = s; };
const fail = (m) => { state.errors.push(String(m)); mark('error'); };

function colorExpr(year) {
  const cls = D.classes[year];
  const expr = ['match', ['id']];
  D.areas.forEach((a, i) => {
    expr.push(a.fid, cls[i] >= 0 ? D.colors[cls[i]] : D.no_data_color);
  });
  expr.push(D.no_data_color);
  return expr;
}

function fmt(v) {
  return v === null ? '–' : v.toLocaleString(D.lang === 'ko' ? 'ko-KR' : 'en-GB',
    { maximumFractionDigits: 2 });
}

function legendRow(r) {
  // Built node by node: a label is text, never markup.
  const li = document.createElement('li');
  const sw = document.createElement('span');
  sw.className = 'sw';
  sw.style.background = r.color;
  const count = document.createElement('small');
  count.textContent = `(${r.count})`;
  li.append(sw, `${r.label} `, count);
  return li;
}

function showYear(year) {
  state.year = year;
  document.getElementById('pm-legend-rows').replaceChildren(...D.legend[year].map(legendRow));
  document.getElementById('pm-summary').textContent = D.summary[year];
  const out = document.getElementById('pm-year-out');
  if (out) out.textContent = year;
  if (window.__map && window.__map.getLayer('pm-fill')) {
    window.__map.setPaintProperty('pm-fill', 'fill-color', colorExpr(year));
  }
}

async function main() {
  const ids = [D.layer, ...D.overlays.map((o) => o.layer)].join(',');
  const res = await fetch('/tiles/style.json?layers=' + encodeURIComponent(ids));
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    fail(detail);
    return;
  }
  const style = await res.json();
  // Our choropleth replaces the generic fill of the area layer.
  style.layers = style.layers.filter((l) => l.id !== `${D.layer}-fill` && l.id !== `${D.layer}-outline`);
  const firstOverlay = style.layers.findIndex((l) => l.id !== 'background');
  const area = { source: 'vector', 'source-layer': D.layer };
  const mine = [
    { id: 'pm-fill', type: 'fill', ...area, paint: { 'fill-color': colorExpr(state.year), 'fill-opacity': 0.85 } },
    { id: 'pm-outline', type: 'line', ...area,
      paint: { 'line-color': D.basemap === 'none' ? 'rgba(0,0,0,0)' : '#ffffff', 'line-width': 0.6 } },
  ];
  style.layers.splice(firstOverlay < 0 ? style.layers.length : firstOverlay, 0, ...mine);
  for (const o of D.overlays) {
    for (const l of style.layers) {
      if (l['source-layer'] === o.layer && l.paint) {
        if (l.type === 'circle') l.paint['circle-color'] = o.color;
        if (l.type === 'line') l.paint['line-color'] = o.color;
        if (l.type === 'fill') l.paint['fill-opacity'] = 0;
      }
    }
  }
  const b = D.bounds;
  const map = window.__map = new maplibregl.Map({
    container: 'map', style, bounds: [[b[0], b[1]], [b[2], b[3]]],
    fitBoundsOptions: { padding: 10 }, attributionControl: false,
    localIdeographFontFamily: "'Noto Sans CJK KR', sans-serif",
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.AttributionControl({ compact: true, customAttribution: D.source_line }));
  map.on('error', (e) => fail(e.error ? e.error.message : 'map error'));
  const byFid = new Map(D.areas.map((a, i) => [a.fid, i]));
  map.on('click', 'pm-fill', (e) => {
    const f = e.features && e.features[0];
    const i = f ? byFid.get(f.id) : undefined;
    if (i === undefined) return;
    const v = D.values[state.year][i];
    const el = document.createElement('div');
    const b = document.createElement('b');
    b.textContent = D.areas[i].name;
    el.append(b, document.createElement('br'), `${D.legend_title} (${state.year}): ${fmt(v)}`);
    new maplibregl.Popup().setLngLat(e.lngLat).setDOMContent(el).addTo(map);
  });
  map.on('mouseenter', 'pm-fill', () => { map.getCanvas().style.cursor = 'pointer'; });
  map.on('mouseleave', 'pm-fill', () => { map.getCanvas().style.cursor = ''; });
  map.once('load', () => {
    // The areas and overlays refresh where their rows change, without a reload (the
    // numbers are the map version's: a new version is a new page).
    followChanges(map, 'vector', ids.split(','), state);
    map.once('idle', () => {
      state.ready = true;
      state.renderMs = performance.now() - state.t0;
      if (!state.errors.length) mark('ready');
    });
  });
}

// Two years side by side: a second map of the same style over the first, coloured for the
// other year, clipped to the right of a divider the reader moves (#pm-swipe); it follows the
// first map's camera and takes no input of its own.
let compareMap = null;
function clipCompare() {
  const pct = Number(document.getElementById('pm-swipe').value);
  document.getElementById('map-compare').style.clipPath = `inset(0 0 0 ${pct}%)`;
  const divider = document.getElementById('map-divider');
  divider.style.left = `${pct}%`;
}
function compareWith(year) {
  const overlay = document.getElementById('map-compare');
  const divider = document.getElementById('map-divider');
  const swipe = document.getElementById('pm-swipe');
  state.compare = year || null;
  if (!year) {
    if (compareMap) { compareMap.remove(); compareMap = window.__compareMap = null; }
    overlay.hidden = divider.hidden = swipe.hidden = true;
    return;
  }
  overlay.hidden = divider.hidden = swipe.hidden = false;
  divider.firstElementChild.textContent = year;
  clipCompare();
  if (compareMap) {
    compareMap.setPaintProperty('pm-fill', 'fill-color', colorExpr(year));
    return;
  }
  const main = window.__map;
  const style = JSON.parse(JSON.stringify(main.getStyle()));
  for (const l of style.layers) {
    if (l.id === 'pm-fill') l.paint['fill-color'] = colorExpr(year);
  }
  compareMap = window.__compareMap = new maplibregl.Map({
    container: overlay, style, center: main.getCenter(), zoom: main.getZoom(),
    bearing: main.getBearing(), pitch: main.getPitch(), interactive: false,
    attributionControl: false, localIdeographFontFamily: "'Noto Sans CJK KR', sans-serif",
  });
  compareMap.on('error', (e) => fail(e.error ? e.error.message : 'map error'));
  const follow = () => {
    if (compareMap) compareMap.jumpTo({ center: main.getCenter(), zoom: main.getZoom(),
                                        bearing: main.getBearing(), pitch: main.getPitch() });
  };
  main.on('move', follow);
}

const slider = document.getElementById('pm-year');
if (slider) slider.addEventListener('input', () => showYear(String(D.years[Number(slider.value)])));
const compareSel = document.getElementById('pm-compare');
if (compareSel) {
  compareSel.addEventListener('change', () => {
    if (window.__map && window.__map.loaded()) compareWith(compareSel.value);
  });
  document.getElementById('pm-swipe').addEventListener('input', clipCompare);
}
main().catch((e) => fail(e.message || e));
