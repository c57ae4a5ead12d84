"""HTML views of the OGC API Features documents, for people in a browser.

Each view renders a template of ``gis_platform/templates/features/`` through the platform's
one Jinja environment (:mod:`gis_platform.web`): every value is escaped, and GeoJSON for the
map goes into a ``<script type="application/json">`` block with ``<`` escaped, so feature
attributes cannot inject markup.  The map is the vendored Leaflet with no tile basemap: the
page works offline and on an intranet.
"""

from __future__ import annotations

from gis_platform.web import render

HOME = ("Home", "/")
COLLECTIONS = ("Collections", "/collections?f=html")


def landing_html(doc: dict) -> str:
    return render("features/landing.html", title=doc["title"], doc=doc)


def conformance_html(classes: list[str]) -> str:
    return render("features/conformance.html", title="Conformance", classes=classes,
                  breadcrumbs=[HOME])


def collections_html(doc: dict) -> str:
    return render("features/collections.html", title="Collections", doc=doc,
                  breadcrumbs=[HOME, COLLECTIONS], json_href="/collections?f=json")


def collection_html(doc: dict) -> str:
    cid = doc["id"]
    extent = doc.get("extent", {}).get("spatial", {}).get("bbox", [[None]])[0]
    meta = [("description", doc.get("description")), ("licence", doc.get("license")),
            ("attribution", doc.get("attribution")), ("extent (CRS84)", extent),
            ("features", doc.get("numberOfFeatures")), ("storage CRS", doc.get("storageCrs"))]
    return render("features/collection.html", title=doc["title"], doc=doc, meta=meta,
                  breadcrumbs=[HOME, COLLECTIONS, (cid, f"/collections/{cid}?f=html")],
                  json_href=f"/collections/{cid}?f=json")


def queryables_html(doc: dict, cid: str, title: str) -> str:
    rows = [(k, v.get("type") or v.get("format")) for k, v in doc["properties"].items()]
    return render("features/queryables.html", title=f"{title}: queryables", rows=rows,
                  breadcrumbs=[HOME, (cid, f"/collections/{cid}?f=html")])


def items_html(doc: dict, cid: str, title: str, columns: list[str], offset: int,
               downloads: list[tuple[str, str]]) -> str:
    """One page of features.  It says which part of the result it shows ("1-100 of 5,840")
    and offers the whole result as ``downloads`` (format name, export URL): a reader who
    took the items URL for the layer must see that it is one page, not the layer."""
    json_href = next((l["href"] for l in doc.get("links", []) if l["rel"] == "alternate"), None)
    return render("features/items.html", title=f"{title}: features", doc=doc, cid=cid,
                  columns=columns, map_data=doc, json_href=json_href,
                  page=page_summary(offset, doc.get("numberReturned", 0), doc.get("numberMatched")),
                  downloads=downloads,
                  breadcrumbs=[HOME, COLLECTIONS, (cid, f"/collections/{cid}?f=html"),
                               ("items", f"/collections/{cid}/items?f=html")])


def page_summary(offset: int, returned: int, matched: int | None) -> dict:
    """What an items page shows of the result, with numbers as people read them (5,840)."""
    return {"first": f"{offset + 1:,}", "last": f"{offset + returned:,}", "returned": returned,
            "matched": None if matched is None else f"{matched:,}",
            "whole": matched is not None and offset == 0 and returned == matched}


def feature_html(feature: dict, cid: str, title: str) -> str:
    return render("features/feature.html", title=f"{title}: feature {feature['id']}",
                  feature=feature, map_data=feature,
                  breadcrumbs=[HOME, COLLECTIONS, (cid, f"/collections/{cid}?f=html"),
                               ("items", f"/collections/{cid}/items?f=html")],
                  json_href=f"/collections/{cid}/items/{feature['id']}?f=json")
