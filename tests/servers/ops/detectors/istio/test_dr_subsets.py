"""istio-destinationrule-subsets: a rule for a host no service has (IST0174), a subset that selects no pod
(IST0173), from the labels of istiod's endpoints."""

from __future__ import annotations

import pytest

from tests.support.lint_world import about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_subsets_and_hosts(findings) -> None:
    found = await findings("istio-destinationrule-subsets")
    [ghost] = about(found, "DestinationRule shop/ghost", "IST0174")
    assert ghost["message"] == ("The host ghost.shop.svc.cluster.local defined in the DestinationRule does not match "
                                "any services in the mesh.")
    [v3] = about(found, "DestinationRule shop/cart", "IST0173")
    assert v3["message"] == ("The Subset v3 defined in the DestinationRule does not select any pods. Which may lead to "
                             "503 UH (NoHealthyUpstream).")
    assert v3["evidence"] == ["2 endpoint(s) of cart.shop.svc.cluster.local; their values of these labels: "
                              "version=v1"]
    assert len(found) == 2  # subset v1 selects cart's pods; edge.example.com is a ServiceEntry's host
