"""get-gateway-health stays within 2,000 tokens on the 6,000-cluster bench gateway with every cluster broken,
and pages through the rest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.views.gateway_health import BUDGET_BYTES
from tests.support.envoy import Envoy
from tests.support.gateway import big_gateway
from tests.support.procs import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]
CLUSTERS = 6000


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    with big_gateway(tmp_path_factory.mktemp("big"), CLUSTERS, broken=True) as envoy:
        wait_until(lambda: requests.get(f"{envoy.admin_url}/clusters?format=json", timeout=30).text.count(
            "failed_active_health_check") >= CLUSTERS, 60, "every health check failed")
        port = envoy.bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
        for i in range(40):  # 503s with connect failures for 40 clusters: the 5xx lists fill up too
            requests.get(f"http://127.0.0.1:{port}/svc-{i:05d}/", timeout=10)
        yield envoy


async def test_answer_fits_2000_tokens_and_pages(broken: Envoy, make_server) -> None:
    server = make_server(broken.admin_url, "http://127.0.0.1:9", maxResponseBytes=1 << 20)
    first = await server.call_tool("get-gateway-health", {}, CallContext())
    text = first.content[0]["text"]
    assert len(text.encode()) <= BUDGET_BYTES  # 6,000 bytes: 2,000 tokens at 3 bytes per token
    clusters, by_flag = first.structured["sections"][0], first.structured["sections"][1]
    assert clusters["total"] == CLUSTERS and by_flag["total"] == 40
    assert all("failed_active_hc" in line for line in clusters["shown"])
    assert any("UF " in line and "5xx " in line for line in by_flag["shown"])
    n = first.structured["limit"]
    second = await server.call_tool("get-gateway-health", {"offset": n, "limit": n}, CallContext())
    page2 = second.structured["sections"][0]["shown"]
    assert len(page2) == n and not set(page2) & set(clusters["shown"])
    assert len(second.content[0]["text"].encode()) <= BUDGET_BYTES
