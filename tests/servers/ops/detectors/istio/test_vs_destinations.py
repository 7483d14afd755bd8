"""istio-virtualservice-destinations: destinations no service has (IST0101 host, mirror host, host:port,
host+subset), a multi-port service without a port (IST0112), and mesh subsets that gateway routes skip (IST0140).
A destination this gateway routes to and whose cluster is missing is reported once, by missing-cluster."""

from __future__ import annotations

import pytest

from tests.support.lint_world import CART_81, HIGRESS_VS, HOST, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
SEARCH = "VirtualService shop/search"


async def test_each_missing_destination(findings) -> None:
    found = about(await findings("istio-virtualservice-destinations"), SEARCH)
    assert {f["message"]: f["evidence"] for f in found} == {
        'Referenced host not found: "search.shop.svc.cluster.local"':
            ["spec.http[0].route[0]: search.shop.svc.cluster.local:80"],
        'Referenced mirror host not found: "audit.shop.svc.cluster.local"':
            ["spec.http[0].mirror: audit.shop.svc.cluster.local:80"],
        'This VirtualService routes to a service "cart.shop.svc.cluster.local" that exposes multiple ports '
        '[80 9090]. Specifying a port in the destination is required to disambiguate.':
            ["spec.http[1].route[0]: cart.shop.svc.cluster.local"],
        'Referenced host:port not found: "catalog.shop.svc.cluster.local:9999"':
            ["spec.http[2].route[0]: catalog.shop.svc.cluster.local:9999"],
        'Referenced host+subset in destinationrule not found: "cart.shop.svc.cluster.local+v9"':
            ["spec.http[3].route[0]: cart.shop.svc.cluster.local:80 subset v9"]}
    assert {f["code"] for f in found} == {"IST0101", "IST0112"}
    assert all(f["severity"] == "error" for f in found)
    port = next(f for f in found if "9999" in f["message"])
    assert port["fix"] == "use a port the service has (8080), or add port 9999 to it"


async def test_a_missing_cluster_of_this_gateway_is_reported_once(findings) -> None:
    """Ingress shop/cart-old says port 81: Envoy has a route to outbound|81||cart... and no such cluster."""
    found = await findings("istio-virtualservice-destinations", "missing-cluster")
    assert not about(found, f"VirtualService higress-system/{HIGRESS_VS}", "IST0101")
    [missing] = about(found, f"cluster {CART_81}")
    assert missing["detector"] == "missing-cluster" and missing["code"] == "IST0101"
    assert "istiod's registry has cart.shop.svc.cluster.local with ports: http 80/HTTP, grpc-api 9090/HTTP2" in \
        missing["evidence"]


async def test_mesh_subsets_do_not_apply_to_gateway_routes(findings) -> None:
    found = await findings("istio-virtualservice-destinations")
    [f] = about(found, f"VirtualService higress-system/{HIGRESS_VS}", "IST0140")
    assert f["severity"] == "warning"
    assert f["message"] == (f"Subset in virtual service shop/cart-canary has no effect on ingress gateway "
                            f"higress-system/{HIGRESS_VS} requests")
    assert HOST not in f["evidence"][0] and "cart.shop.svc.cluster.local" in f["evidence"][0]
