"""Small HTTP helpers shared by the feature routes: negotiation, links, layer lookup.

Every route of the feature API resolves its layer with :func:`vector_layer`, which goes
through ``registry.readable(id, principal)``: a layer the caller may not read is the same
404 as a missing one, and raster layers are not feature collections.

A JSON document's links are also sent as an HTTP ``Link`` header (:func:`link_header`,
RFC 8288), as OGC API Features recommends: a client can page (``rel=next``) or find the
collection without parsing the body, and the OGC conformance suite's filtering tests read
them there.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from fastapi import Request
from fastapi.responses import Response

from features.query import ItemsQuery
from gis_platform.errors import InvalidParameter, LayerNotFound
from gis_platform.principal import Principal
from layers.catalog import Layer
from layers.registry import Registry

GEOJSON = "application/geo+json"


def wants_html(request: Request) -> bool:
    """Content negotiation: ``f`` wins; otherwise ``Accept`` preferring text/html over JSON."""
    f = (request.query_params.get("f") or "").strip().lower()
    if f:
        if f == "html":
            return True
        if f in ("json", "geojson", "application/json", "application/geo+json"):
            return False
        raise InvalidParameter(f"Unsupported format f={f[:20]!r}: use json or html.", parameter="f")
    accept = request.headers.get("accept", "").lower()
    if "text/html" not in accept:
        return False
    json_at = accept.find("json") if "json" in accept else len(accept) + 1
    return accept.find("text/html") < json_at


def base_url(request: Request) -> str:
    """The external base URL: ``settings.http.public_url`` if set, else what the client used."""
    public = request.app.state.settings.http.public_url
    return (public or str(request.base_url)).rstrip("/")


def url_with(request: Request, path: str, **changes) -> str:
    """``base + path`` with the request's query string, some parameters replaced or removed."""
    return _QueryUrls(request).url(path, **changes)


class _QueryUrls:
    """:func:`url_with` for several links of one request: the base URL and the encoded query
    parameters are worked out once (``urlencode`` of every parameter for every link was a
    good part of a small page's cost); the output is the same as ``urlencode``'s."""

    def __init__(self, request: Request) -> None:
        self.base = base_url(request)
        self.pairs = [(k, f"{quote_plus(k)}={quote_plus(v)}") for k, v in request.query_params.multi_items()]

    def url(self, path: str, **changes) -> str:
        parts = [enc for k, enc in self.pairs if k not in changes]
        parts += [f"{quote_plus(k)}={quote_plus(str(v))}" for k, v in changes.items() if v is not None]
        return f"{self.base}{path}" + ("?" + "&".join(parts) if parts else "")


def vector_layer(registry: Registry, layer_id: str, principal: Principal) -> Layer:
    """The readable *vector* layer ``layer_id``, or the same 404 as for a missing layer.

    Feature routes apply ``security.row_filter`` (through ``parse_items_query``), hence
    ``filtered=True``.
    """
    layer = registry.readable(layer_id, principal, filtered=True)
    if not layer.has_rows:
        raise LayerNotFound(f"No layer '{layer_id}'.")
    return layer


def only_params(request: Request, allowed: set[str]) -> None:
    """Reject query parameters a route does not define (400, as OGC API Features asks)."""
    for key in request.query_params:
        if key not in allowed:
            raise InvalidParameter(f"Unknown query parameter {key[:60]!r}.", parameter=key[:60])


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def items_links(request: Request, layer: Layer, q: ItemsQuery, matched: int, returned: int,
                path: str) -> list[dict]:
    """self/alternate/next/prev/collection links; next/prev keep every other parameter."""
    urls = _QueryUrls(request)
    links = [link(urls.url(path, f="json"), "self", GEOJSON, "This page"),
             link(urls.url(path, f="html"), "alternate", "text/html", "This page as HTML"),
             link(f"{urls.base}/collections/{layer.id}", "collection", "application/json", layer.title)]
    fmt = request.query_params.get("f")
    if q.offset + returned < matched:
        links.append(link(urls.url(path, offset=q.offset + returned, limit=q.limit, f=fmt),
                           "next", GEOJSON if fmt != "html" else "text/html", "Next page"))
    if q.offset > 0:
        links.append(link(urls.url(path, offset=max(0, q.offset - q.limit), limit=q.limit, f=fmt),
                           "prev", GEOJSON if fmt != "html" else "text/html", "Previous page"))
    return links


#: Longer than this (a long CQL2 filter repeated in every link), the ``Link`` header is left
#: out - the body has the same links: a reverse proxy answers 502 to a response whose headers
#: pass its buffer (nginx's default ``proxy_buffer_size`` is 4 KB, headers all included).
MAX_LINK_HEADER = 2048
# Characters kept as they are in a URI reference: the hrefs are already percent-encoded.
_URI_CHARS = "/:?#[]@!$&'()*+,;=%~"


def link_header(links: list[dict]) -> dict[str, str]:
    """``{"Link": ...}``: ``links`` as an RFC 8288 header (empty if it would be too long).

    Header values are Latin-1 on the wire: a non-ASCII title (a Korean layer title) goes as
    ``title*=UTF-8''...`` (RFC 8187), and any non-ASCII character left in an href is
    percent-encoded, so no caller-supplied text can break the header or the response.
    """
    value = ", ".join(_link_value(l) for l in links)
    return {"Link": value} if value and len(value) <= MAX_LINK_HEADER else {}


def _link_value(l: dict) -> str:
    parts = [f"<{quote(l['href'], safe=_URI_CHARS)}>", f'rel="{l["rel"]}"']
    if l.get("type"):
        parts.append(f'type="{l["type"]}"')
    title = l.get("title")
    if title and title.isascii() and title.isprintable():
        parts.append('title="{}"'.format(title.replace("\\", "\\\\").replace('"', '\\"')))
    elif title:
        parts.append("title*=UTF-8''" + quote(title, safe=""))
    return "; ".join(parts)


def geojson_response(body: bytes, q: ItemsQuery, headers: dict | None = None,
                     links: list[dict] | None = None) -> Response:
    """A GeoJSON response with ``Content-Crs`` and, given ``links``, their ``Link`` header."""
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": q.crs.header,
                                                       **link_header(links or []), **(headers or {})})
