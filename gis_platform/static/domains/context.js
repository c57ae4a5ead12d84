// Shared by the dig-check report and the permit pages (gis_platform/templates/domains/).
// txt(): text for a tooltip, never markup.  contextLayer(): features of one of the platform's
// public layers for the map's background; asks the catalog first, so a platform without
// that layer shows no context rather than a 404 in the console.
function txt(s){var e=document.createElement('span');e.textContent=s;return e}
function contextLayer(id,query){
 return fetch('/collections?f=json').then(function(r){return r.ok?r.json():{collections:[]}})
  .then(function(c){if(!c.collections.some(function(x){return x.id===id}))return null;
   return fetch('/collections/'+id+'/items?f=json&'+query).then(function(r){return r.ok?r.json():null})})}
