"""istio-virtualservice-hosts: a host two VirtualServices define on this gateway (istiod merges their routes, the
older one's first), and on the mesh gateway (IST0109)."""

from __future__ import annotations

import pytest
import requests

from tests.support.lint_world import HIGRESS_VS, HOST, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_a_host_merged_after_higress_s_routes(findings, world) -> None:
    found = await findings("istio-virtualservice-hosts")
    [f] = about(found, "VirtualService shop/cart-override")
    assert f["severity"] == "warning" and "code" not in f
    assert f["message"] == (f"host {HOST} is also defined by VirtualService higress-system/{HIGRESS_VS}, bound to the "
                            f"same gateway: istiod merges both into one virtual host of route configuration http.80, "
                            f"higress-system/{HIGRESS_VS}'s routes first")
    assert f["evidence"] == [f"Gateway shop/public-gw; first: higress-system/{HIGRESS_VS} (created by Higress)"]
    # What Envoy holds agrees: one virtual host, Higress's routes then the override's.
    dump = requests.get(f"{world.gateway.admin_url}/config_dump?resource=static_route_configs", timeout=5).json()
    [http80] = [c["route_config"] for c in dump["configs"] if c["route_config"]["name"] == "http.80"]
    [vhost] = http80["virtual_hosts"]
    names = [r["name"] for r in vhost["routes"]]
    assert names.index("shop/cart") < names.index("override")


async def test_mesh_virtual_services_with_one_host(findings) -> None:
    found = await findings("istio-virtualservice-hosts")
    twins = [f for f in found if f.get("code") == "IST0109"]
    assert {f["object"] for f in twins} == {"VirtualService shop/twin-a", "VirtualService shop/twin-b"}
    assert twins[0]["severity"] == "error" and twins[0]["message"].startswith(
        "The VirtualServices shop/twin-a,shop/twin-b associated with mesh gateway define the same host "
        "*/twin.shop.svc.cluster.local")
