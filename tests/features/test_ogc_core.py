"""OGC API Features Part 1 documents: landing page, conformance, API, collections, items, HTML."""

from __future__ import annotations

import re

from .conftest import assert_problem


def test_landing_page_links_collections_conformance_api_and_docs(anon):
    r = anon.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    rels = {link["rel"]: link["href"] for link in r.json()["links"]}
    assert rels["data"].endswith("/collections") and rels["conformance"].endswith("/conformance")
    assert rels["service-desc"].endswith("/api") and rels["service-doc"].endswith("/docs")


def test_conformance_declares_core_geojson_crs_and_cql2(anon):
    classes = anon.get("/conformance").json()["conformsTo"]
    for needle in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                   "ogcapi-features-2/1.0/conf/crs", "ogcapi-features-3/1.0/conf/filter",
                   "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/cql2-json"):
        assert any(c.endswith(needle) for c in classes), needle


def test_openapi_document_is_served_at_api_and_double_slash_api(anon):
    base = str(anon.base_url).rstrip("/")
    for path in ("/api", "//api"):
        r = anon.get(base + path)     # a full URL: httpx would read "//api" as a host
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
        doc = r.json()
        assert doc["openapi"].startswith("3.") and "/collections/{collectionId}/items" in doc["paths"]


def test_api_document_lists_queryables_per_readable_collection(anon):
    doc = anon.get("/api").json()
    paths, shared = doc["paths"], doc["components"]["parameters"]
    params = {shared[p["$ref"].rsplit("/", 1)[1]]["name"] if "$ref" in p else p["name"]
              for p in paths["/collections/bike_stations/items"]["get"]["parameters"]}
    assert {"bbox", "limit", "filter", "filter-lang", "numofunits", "place"} <= params
    assert "/collections/gas_mains/items" not in paths


def test_collections_lists_public_vector_layers_with_crs_and_extent(anon):
    r = anon.get("/collections")
    assert r.status_code == 200
    cols = {c["id"]: c for c in r.json()["collections"]}
    assert {"bike_stations", "districts"} <= set(cols)
    bikes = cols["bike_stations"]
    assert bikes["itemType"] == "feature"
    assert "http://www.opengis.net/def/crs/EPSG/0/5186" in bikes["crs"]
    assert bikes["storageCrs"].endswith("CRS84")
    minx, miny, maxx, maxy = bikes["extent"]["spatial"]["bbox"][0]
    assert 126.7 < minx < maxx < 127.3 and 37.4 < miny < maxy < 37.8
    assert bikes["license"] == "Seoul Open Data test licence"
    assert any(link["rel"] == "items" and link["type"] == "application/geo+json" for link in bikes["links"])


def test_items_are_geojson_with_counts_links_and_content_crs(anon):
    r = anon.get("/collections/bike_stations/items", params={"limit": 5})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["numberMatched"] == 1540 and doc["numberReturned"] == 5 == len(doc["features"])
    f = doc["features"][0]
    assert f["type"] == "Feature" and isinstance(f["id"], int) and f["geometry"]["type"] == "Point"
    assert set(f["properties"]) == {"place", "id", "name", "address", "startdate", "numofunits"}
    rels = [link["rel"] for link in doc["links"]]
    assert "self" in rels and "next" in rels and "prev" not in rels


def test_item_by_id_matches_the_feature_in_the_collection(anon):
    first = anon.get("/collections/bike_stations/items", params={"limit": 1}).json()["features"][0]
    r = anon.get(f"/collections/bike_stations/items/{first['id']}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    one = r.json()
    assert one["id"] == first["id"] and one["properties"] == first["properties"]
    assert one["geometry"] == first["geometry"]


def test_unknown_or_malformed_feature_id_is_404(anon):
    assert_problem(anon.get("/collections/bike_stations/items/999999"), 404)
    assert_problem(anon.get("/collections/bike_stations/items/abc"), 404)
    assert_problem(anon.get("/collections/bike_stations/items/1;DROP"), 404)


def test_unknown_collection_is_404_problem(anon):
    body = assert_problem(anon.get("/collections/nope/items"), 404)
    assert "nope" in body["detail"]


def test_queryables_are_a_json_schema_of_the_attributes(anon):
    r = anon.get("/collections/bike_stations/queryables")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    doc = r.json()
    assert doc["type"] == "object" and doc["$schema"].startswith("https://json-schema.org/")
    props = doc["properties"]
    assert props["numofunits"]["type"] == "integer" and props["place"]["type"] == "string"
    assert props["geometry"]["format"] == "geometry-point"


def test_browser_gets_html_table_and_offline_leaflet_map(anon):
    r = anon.get("/collections/bike_stations/items", params={"limit": 3},
                 headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<table>" in html and html.count("<tr>") == 4          # header + 3 features
    assert "/static/vendor/leaflet/leaflet.js" in html and "/static/vendor/leaflet/leaflet.css" in html
    external = [u for u in re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
                if not u.startswith(str(anon.base_url))]
    assert external == []
    assert anon.get("/static/vendor/leaflet/leaflet.js").status_code == 200


def test_f_html_renders_every_document_and_f_json_overrides_accept(anon):
    for path in ("/", "/collections", "/collections/districts", "/collections/districts/items",
                 "/collections/districts/items/1", "/collections/districts/queryables", "/conformance"):
        r = anon.get(path, params={"f": "html"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
    r = anon.get("/collections", params={"f": "json"}, headers={"Accept": "text/html"})
    assert r.headers["content-type"].startswith("application/json")


def test_html_escapes_feature_attributes(anon):
    # Station names are user data: whatever they hold must come out escaped.
    r = anon.get("/collections/bike_stations/items", params={"f": "html", "limit": 50})
    assert "<script>alert" not in r.text
    assert r.text.count("<script") == 3   # map data, leaflet.js, the map code


def test_unknown_query_parameter_is_400(anon):
    body = assert_problem(anon.get("/collections/bike_stations/items", params={"colour": "red"}), 400)
    assert "colour" in body["detail"]


def test_unsupported_f_is_400(anon):
    assert_problem(anon.get("/collections", params={"f": "xml"}), 400)


def test_collection_links_a_licence_url_and_states_attribution(anon):
    doc = anon.get("/collections/districts").json()
    assert doc["license"] == "https://www.apache.org/licenses/LICENSE-2.0"
    assert doc["attribution"] == "JUSO 2015 via southkorea/seoul-maps"
    assert [l["href"] for l in doc["links"] if l["rel"] == "license"] == [doc["license"]]
    bikes = anon.get("/collections/bike_stations").json()     # a licence that is not a URL: text only
    assert bikes["license"] == "Seoul Open Data test licence"
    assert not [l for l in bikes["links"] if l["rel"] == "license"]
