"""direct-response-elsewhere on the lint world's real Envoy: port 8080 answers 404 for /orders, port 80 routes it."""

from __future__ import annotations

import pytest
import requests

from higress_ops.servers.base import CallContext
from tests.support.lint_world import CLUSTERS, HOST, World

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_a_404_on_one_port_for_a_path_another_port_routes(world: World, make_server) -> None:
    gw = world.gateway
    assert requests.get(f"http://127.0.0.1:{gw.alt_port}/orders", headers={"host": HOST}, timeout=5).status_code == 404
    server = make_server(gw.admin_url, "http://127.0.0.1:9")  # Envoy alone tells it
    result = await server.call_tool("analyze", {"detectors": ["direct-response-elsewhere"]}, CallContext())
    [f] = result.structured["findings"]
    assert f["object"] == (f"route #0 orders-maintenance (route config http.8080, virtual host {HOST}:8080)")
    assert f["severity"] == "warning"
    assert f["message"] == (f"answers 404 itself for /orders*, while route configuration http.80 routes the same "
                            f"host and path to cluster {CLUSTERS['orders']}")
    [where] = f["evidence"]
    assert where.startswith("http.80 route #") and where.endswith(f" ({HOST}:80) -> {CLUSTERS['orders']}")
