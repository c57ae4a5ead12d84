// The dig-check report's map (data in #dig-data).
(function(){
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
 .then(function(){window.__reportReady=true});})();
