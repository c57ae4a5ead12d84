// Starts Swagger UI on /docs (gis_platform/docs.py).  A script file rather than the inline
// one FastAPI writes: the platform's CSP runs only the scripts it serves.  The server's part
// of the configuration (the OpenAPI document's URL, the options) is the JSON block
// #docs-config; presets and callbacks are functions, so they are added here.
// window.__docs.ready tells a test (or a curious visitor) that the document was rendered.
(function () {
  'use strict';
  var state = window.__docs = { ready: false };
  var config = JSON.parse(document.getElementById('docs-config').textContent);
  config.dom_id = '#swagger-ui';
  config.presets = [SwaggerUIBundle.presets.apis];
  config.onComplete = function () { state.ready = true; };
  window.ui = SwaggerUIBundle(config);
}());
