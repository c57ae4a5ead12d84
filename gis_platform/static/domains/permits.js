// The permit pages' map (data in #permit-data).
(function(){
var d=JSON.parse(document.getElementById('permit-data').textContent);
var map=L.map('map',{attributionControl:false});
var ctx=L.layerGroup().addTo(map);
var lyr=L.geoJSON(d.features,{style:function(f){return {color:d.colours[f.properties.status]||'#333',weight:2,fillOpacity:.35}},
 onEachFeature:function(f,l){l.bindTooltip(txt(f.properties.permit_no+' · '+f.properties.status_label));
  // a dot at the centre, so a 20 m trench is visible at city scale
  if(l.getBounds){L.circleMarker(l.getBounds().getCenter(),{radius:4,weight:1,color:'#fff',fillOpacity:.9,
   fillColor:d.colours[f.properties.status]||'#333'}).bindTooltip(txt(f.properties.permit_no+' · '+f.properties.status_label)).addTo(map)}}}).addTo(map);
var b=lyr.getBounds();if(b.isValid()){map.fitBounds(b,{maxZoom:18})}else{map.setView([37.55,126.98],11)}
// context: the district outlines from the platform's own public layer (if it has one)
contextLayer('districts','limit=100').then(function(g){if(g){L.geoJSON(g,{interactive:false,
  style:{color:'#7f8c8d',weight:1,fill:false,className:'context'}}).addTo(ctx)}}).catch(function(){})
 .then(function(){window.__mapReady=true});})();
