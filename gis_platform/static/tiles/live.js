// Live refresh of a MapLibre map over the platform's vector tiles: each layer's change feed
// (Server-Sent Events, /collections/{id}/changes); on a change of its rows (an edit, another
// system's statement) or of the layer as a whole, the vector source asks for its tiles again.
// The server answers the tiles away from the change from its cache (same key, same ETag);
// only those over it are rendered anew.  A layer the visitor may not read has no feed (404):
// nothing to follow, nothing shown.
export function followChanges(map, sourceId, layerIds, state) {
  const style = map.getStyle();
  const src = style && style.sources && style.sources[sourceId];
  if (!src || !src.tiles || !window.EventSource) return [];
  const base = src.tiles[0];
  const sep = base.includes('?') ? '&' : '?';
  const feeds = [];
  for (const raw of layerIds) {
    const id = String(raw).trim();
    if (!id) continue;
    const feed = new EventSource('/collections/' + encodeURIComponent(id) + '/changes?f=sse');
    const refresh = (e) => {
      state.refreshes = (state.refreshes || 0) + 1;
      map.getSource(sourceId).setTiles([base + sep + 'r=' + encodeURIComponent(e.lastEventId || Date.now())]);
    };
    feed.addEventListener('change', refresh);
    feed.addEventListener('reset', refresh);
    feed.onerror = () => { /* the browser reconnects by itself; a 404 ends the feed */ };
    feeds.push(feed);
    state.feeds = (state.feeds || 0) + 1;
  }
  return feeds;
}
