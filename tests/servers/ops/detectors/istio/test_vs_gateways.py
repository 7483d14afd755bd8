"""istio-virtualservice-gateways: VirtualServices bound to a Gateway that does not exist (IST0101) or that does not
serve their hosts (IST0132); Higress's own second gateway name is not one of them."""

from __future__ import annotations

import pytest

from tests.support.lint_world import HIGRESS_VS, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_a_missing_gateway(findings) -> None:
    found = await findings("istio-virtualservice-gateways")
    [missing] = about(found, "VirtualService shop/reviews", "IST0101")
    assert missing["message"] == 'Referenced gateway not found: "missing-gw"'
    assert missing["evidence"] == ["spec.gateways[0]: missing-gw"] and "shop/missing-gw" in missing["fix"]
    [hosts] = about(found, "VirtualService shop/reviews", "IST0132")  # istioctl reports both
    assert hosts["message"] == ("one or more host [reviews.example.com] defined in VirtualService shop/reviews not "
                                "found in Gateway shop/missing-gw.")


async def test_a_host_the_gateway_does_not_serve(findings) -> None:
    found = await findings("istio-virtualservice-gateways")
    [f] = about(found, "VirtualService shop/promo", "IST0132")
    assert f["severity"] == "warning"
    assert f["evidence"] == ["Gateway shop/public-gw hosts: shop.example.com, www.example.com"]
    assert f["related"] == ["Gateway shop/public-gw"]


async def test_higress_s_generated_virtual_service_is_not_reported(findings) -> None:
    """It names `higress-system/Kubernetes-<h>`, which no Gateway carries; its real Gateway serves its host."""
    found = await findings("istio-virtualservice-gateways")
    assert not about(found, f"VirtualService higress-system/{HIGRESS_VS}")
    assert not about(found, "VirtualService shop/cart-override")  # bound to public-gw, which serves its host
    assert len(found) == 3
