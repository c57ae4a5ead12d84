"""The API definition at /api is what the landing page and /conformance say it is: OpenAPI
3.0, checked by openapi-spec-validator (the validator GDAL-, QGIS- and OWSLib-era tooling
is built against), with the items parameters typed as OGC API Features defines them."""

from __future__ import annotations

from openapi_spec_validator import OpenAPIV30SpecValidator

OAS30_CLASS = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30"


def test_api_is_a_valid_openapi_3_0_document_as_declared(anon):
    landing = anon.get("/").json()
    desc = next(l for l in landing["links"] if l["rel"] == "service-desc")
    assert desc["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert OAS30_CLASS in anon.get("/conformance").json()["conformsTo"]
    r = anon.get(desc["href"])
    assert r.status_code == 200 and r.headers["content-type"] == desc["type"]
    doc = r.json()
    assert doc["openapi"] == "3.0.3"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:300]
              for e in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []


def test_items_parameters_are_typed_with_this_servers_limits(anon, feature_world):
    features = feature_world.server.settings.features
    doc = anon.get("/api").json()
    params = doc["components"]["parameters"]
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1,
                                         "maximum": features.max_limit,
                                         "default": min(features.default_limit, features.max_limit)}
    assert "clamped" in params["limit"]["description"]
    assert params["offset"]["schema"] == {"type": "integer", "minimum": 0, "default": 0}
    bbox = params["bbox"]
    assert (bbox["style"], bbox["explode"]) == ("form", False)
    assert bbox["schema"]["type"] == "array" and bbox["schema"]["items"] == {"type": "number"}
    assert sorted((o["minItems"], o["maxItems"]) for o in bbox["schema"]["oneOf"]) == [(4, 4), (6, 6)]
    assert params["datetime"]["schema"] == {"type": "string"}
    assert all(p["in"] == "query" and p["description"] for p in params.values())
    # Every items path refers to them, as GDAL 3.8+ looks the limit up (by $ref).
    for path in ("/collections/{collectionId}/items", "/collections/bike_stations/items"):
        refs = {p.get("$ref") for p in doc["paths"][path]["get"]["parameters"]}
        assert {f"#/components/parameters/{n}" for n in ("limit", "offset", "bbox", "datetime")} <= refs
