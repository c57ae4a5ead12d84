"""A restricted layer's generalized public view: public, aggregated, no cell below k."""

from __future__ import annotations

import pytest

from gis_platform.errors import InvalidParameter
from layers.public_views import publish_aggregate


@pytest.mark.parametrize("by,k", [("hex500", 3), ("district", 5)])
def test_public_aggregate_is_readable_by_anyone_and_no_cell_has_fewer_than_k(world, by, k):
    rep = publish_aggregate(world.db_url, "facilities", by=by, min_count=k, target=f"fac_public_{by}")
    assert rep.cells > 0
    # the registry refreshes on NOTIFY; give it a moment
    import time

    with world.client() as c:
        for _ in range(50):
            r = c.get(f"/collections/fac_public_{by}/items", params={"limit": "1000"})
            if r.status_code == 200:
                break
            time.sleep(0.1)
        assert r.status_code == 200, r.text
        feats = r.json()["features"]
        assert len(feats) == rep.cells
        counts = [f["properties"]["asset_count"] for f in feats]
        assert min(counts) >= k
        assert all(f["properties"]["length_m"] > 0 for f in feats)
        meta = c.get(f"/layers/fac_public_{by}").json()
        assert meta["access_level"] == "public" and "facilities" not in str(meta)
        t = c.get(f"/collections/fac_public_{by}/tiles/WebMercatorQuad/12/3492/1586.mvt")
        assert t.status_code in (200, 204)
    total = sum(counts)
    assert total <= len(world.facilities) * (4 if by == "hex500" else 3)


def test_hex_cells_below_k_are_suppressed(world):
    small = publish_aggregate(world.db_url, "facilities", by="hex250", min_count=2, target="fac_hex_k2")
    strict = publish_aggregate(world.db_url, "facilities", by="hex250", min_count=8, target="fac_hex_k8")
    assert strict.suppressed > small.suppressed and strict.cells < small.cells
    assert strict.cells + strict.suppressed == small.cells + small.suppressed


def test_publish_refuses_k_below_2_and_unknown_sources(world):
    with pytest.raises(InvalidParameter):
        publish_aggregate(world.db_url, "facilities", by="hex500", min_count=1)
    with pytest.raises(InvalidParameter):
        publish_aggregate(world.db_url, "facilities", by="octagons")
    from gis_platform.errors import LayerNotFound

    with pytest.raises(LayerNotFound):
        publish_aggregate(world.db_url, "nope", by="hex500")
