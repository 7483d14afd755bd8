"""istio-destinationrule-subsets: a rule for a host no service has (IST0174), a subset that selects no pod
(IST0173), from the labels of istiod's endpoints."""

from __future__ import annotations

import pytest
import requests

from tests.support.lint_world import CART_V3, HOST, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_subsets_and_hosts(findings) -> None:
    found = await findings("istio-destinationrule-subsets")
    [ghost] = about(found, "DestinationRule shop/ghost", "IST0174")
    assert ghost["message"] == ("The host ghost.shop.svc.cluster.local defined in the DestinationRule does not match "
                                "any services in the mesh.")
    [v4] = about(found, "DestinationRule shop/cart", "IST0173")
    assert v4["message"] == ("The Subset v4 defined in the DestinationRule does not select any pods. Which may lead to "
                             "503 UH (NoHealthyUpstream).")
    assert v4["evidence"] == ["2 endpoint(s) of cart.shop.svc.cluster.local; their values of these labels: "
                              "version=v1"]
    # v1 selects cart's pods, edge.example.com is a ServiceEntry's host, and v3, which this gateway routes to,
    # is empty-cluster's (next test)
    assert len(found) == 2


async def test_a_routed_subset_without_pods_is_the_503_s_cause(findings, world) -> None:
    answer = requests.get(f"http://127.0.0.1:{world.gateway.http_port}/canary", headers={"host": HOST}, timeout=5)
    assert answer.status_code == 503 and "no healthy upstream" in answer.text
    found = await findings("istio-destinationrule-subsets", "empty-cluster")
    assert ["v4" in f["message"] for f in about(found, "DestinationRule shop/cart", "IST0173")] == [True]
    [empty] = about(found, f"cluster {CART_V3}")
    assert empty["detector"] == "empty-cluster" and empty["verdict"] == {"status": 503, "reason": "no_endpoints"}
    assert empty["message"] == ("subset v3 of DestinationRule shop/cart (version=v3) selects none of the 2 endpoint(s) "
                                "istiod knows of cart.shop.svc.cluster.local; Envoy answers 503 (UH)")
    assert empty["related"][0] == "DestinationRule shop/cart"
