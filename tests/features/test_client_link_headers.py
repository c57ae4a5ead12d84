"""HTTP ``Link`` headers (RFC 8288) mirror the JSON links of the landing page, the collections,
a collection, an items page and a feature, as httpx's Link-header parser reads them; hidden
layers leak through none of them."""

from __future__ import annotations

import pytest

from features.http import MAX_LINK_HEADER


def _by_rel(links: list[dict], key: str) -> dict[str, str]:
    """rel -> href, the last link of each rel winning (as ``httpx.Response.links`` keys them)."""
    return {l["rel"]: l[key] for l in links}


@pytest.mark.parametrize("path", ["/", "/collections", "/collections/bike_stations",
                                  "/collections/bike_stations/items?limit=7&offset=14",
                                  "/collections/bike_stations/items/5"])
def test_link_header_mirrors_the_json_links(anon, path):
    r = anon.get(path)
    assert r.status_code == 200 and r.headers["link"].isascii()
    body = r.json()["links"]
    assert _by_rel(list(r.links.values()), "url") == _by_rel(body, "href")
    assert r.headers["link"].count("<") == len(body)          # every link, duplicates of a rel too


def test_items_link_header_has_next_prev_and_collection_with_types(anon):
    r = anon.get("/collections/bike_stations/items", params={"limit": 7, "offset": 14})
    links = r.links
    assert links["next"]["type"] == links["prev"]["type"] == "application/geo+json"
    assert "offset=21" in links["next"]["url"] and "offset=7" in links["prev"]["url"]
    assert links["collection"]["url"].endswith("/collections/bike_stations")
    assert anon.get(links["next"]["url"]).json()["features"][0]["id"] != r.json()["features"][0]["id"]


def test_a_filtered_page_links_the_filter_and_a_huge_one_leaves_the_header_out(anon):
    r = anon.get("/collections/bike_stations/items", params={"filter": "numofunits > 20", "limit": 5})
    assert r.status_code == 200 and "filter=numofunits" in r.links["next"]["url"]
    # A filter so long that the links would pass a proxy's header buffer: no header, the
    # same page, the links in the body.
    long_filter = " OR ".join(f"name = 'station {i:04d}'" for i in range(60)) + " OR numofunits > 20"
    r = anon.get("/collections/bike_stations/items", params={"filter": long_filter, "limit": 5})
    assert r.status_code == 200 and "link" not in r.headers
    links = r.json()["links"]
    assert any(l["rel"] == "next" for l in links)
    assert sum(len(l["href"]) for l in links) > MAX_LINK_HEADER


def test_link_headers_name_no_hidden_layer(anon, planner):
    for path in ("/", "/collections", "/collections/bike_stations/items"):
        assert "gas_mains" not in anon.get(path).headers["link"]
    r = anon.get("/collections/gas_mains/items")
    assert r.status_code == 404 and "link" not in r.headers
    assert "gas_mains" in planner.get("/collections/gas_mains/items", params={"limit": 1}).links["next"]["url"]
