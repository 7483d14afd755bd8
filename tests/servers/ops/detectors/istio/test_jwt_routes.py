"""istio-jwt-claim-routes: a route on a JWT claim with no RequestAuthentication for the gateway pods (IST0149)."""

from __future__ import annotations

import copy

import pytest

from tests.support.istio_objects import GATEWAY_SELECTOR, config
from tests.support.lint_world import POD, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_claim_routes_need_request_authentication(findings) -> None:
    found = await findings("istio-jwt-claim-routes")
    [f] = about(found, "VirtualService shop/vip", "IST0149")
    assert f["severity"] == "error"
    assert f["message"].startswith(f"The virtual service uses the JWT claim based routing (key: "
                                   f"@request.auth.claims.group) but found no request authentication for the gateway "
                                   f"(shop/public-gw) pod ({POD}).")
    assert "higress=higress-system-higress-gateway" in f["fix"]


async def test_a_request_authentication_in_higress_s_namespace_covers_the_gateway(findings, world) -> None:
    saved = copy.deepcopy(world.istiod.state["/debug/configz"])
    world.istiod.state["/debug/configz"].append(config("RequestAuthentication", "jwt", "higress-system", {
        "selector": {"matchLabels": GATEWAY_SELECTOR},
        "jwtRules": [{"issuer": "https://issuer.example.com", "jwksUri": "https://issuer.example.com/jwks"}]}))
    try:
        assert await findings("istio-jwt-claim-routes") == []
    finally:
        world.istiod.state["/debug/configz"] = saved
