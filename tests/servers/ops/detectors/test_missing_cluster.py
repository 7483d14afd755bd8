"""missing-cluster on a real Envoy: a route to Istio's port-80 cluster of a service that has only port 8080."""

from __future__ import annotations

import pytest

from higress_ops.servers.base import CallContext
from tests.support.istiod import istiod_double, service
from tests.support.verdict_envoy import CART_80, CART_8080, VerdictGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
TOKEN = CallContext(headers={"x-istiod-token": "good-token"})
CART = service("cart.shop.svc.cluster.local", "cart", "shop", [("http", 8080, "HTTP")], {"app": "cart"})


async def test_find_route_names_the_cluster_and_what_exists_instead(vgw: VerdictGateway, make_server) -> None:
    assert vgw.send("plain", "app.example.com", "/missing-port") == 503
    with istiod_double() as istiod:
        istiod.state["/debug/registryz"] = [CART]
        server = make_server(vgw.admin_url, istiod.url)
        result = await server.call_tool("find-route", {"host": "app.example.com", "path": "/missing-port",
                                                       "port": vgw.ports["plain"]}, TOKEN)
    text = result.content[0]["text"]
    assert text.rstrip().endswith("verdict: 503 cluster_not_found")
    [finding] = result.structured["matches"][0]["findings"]
    assert finding["object"] == f"cluster {CART_80}" and finding["detector"] == "missing-cluster"
    assert f"clusters of the same host on this proxy: {CART_8080}" in finding["evidence"]
    assert "istiod's registry has cart.shop.svc.cluster.local with ports: http 8080/HTTP" in finding["evidence"]
    assert CART_8080 in finding["fix"] and CART_8080 in text


async def test_gateway_health_lists_every_route_to_a_missing_cluster(vgw: VerdictGateway, make_server) -> None:
    server = make_server(vgw.admin_url, "http://127.0.0.1:9")  # istiod down: the names still tell it
    result = await server.call_tool("get-gateway-health", {}, CallContext())
    [sec] = [s for s in result.structured["sections"] if s["title"] == "Routes to clusters that do not exist"]
    assert sec["total"] == 2  # `missing` and the port-80 cluster of cart
    start = (f"[error IST0101] cluster {CART_80}: no such cluster (503 NC), used by 1 route(s); same host here: "
             f"{CART_8080}")
    assert any(line.startswith(start) for line in sec["shown"]), sec
    assert any(line.startswith("[error] cluster missing: ") for line in sec["shown"])
