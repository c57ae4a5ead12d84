"""A runaway query hits the statement timeout and becomes a 503 problem, not a hung worker."""

from __future__ import annotations

import numpy as np

from tests.conftest import start_server

from .conftest import assert_problem


def test_runaway_stats_query_is_a_503_and_the_server_keeps_serving(make_settings, feature_world):
    srv = start_server(make_settings(database_url=feature_world.db_url, statement_timeout_ms=50,
                                     max_request_body_kb=20_000))
    try:
        with srv.client(headers={"Authorization": f"Bearer {feature_world.planner_token}"}) as c:
            # Clipping 1,500 lines against a 9,999-vertex polygon (just under the request limit)
            # takes far longer than 50 ms.
            t = np.linspace(0, 2 * np.pi, 9_999)
            ring = np.column_stack([126.98 + 0.12 * np.cos(t) * (1 + 0.05 * np.sin(200 * t)),
                                    37.56 + 0.09 * np.sin(t)]).tolist()
            ring.append(ring[0])
            r = c.post("/collections/gas_mains/stats", params={"group-by": "material"},
                       json={"type": "Polygon", "coordinates": [ring]})
            body = assert_problem(r, 503)
            assert "50 ms" in body["detail"]
            assert c.get("/collections/bike_stations/items", params={"limit": 1}).status_code == 200
    finally:
        srv.stop()
