"""istio-gateway-conflicts (IST0145) and istio-gateway-certificates (IST0138): a hand-written Gateway that claims an
Ingress host, and its certificate, on Higress's gateway."""

from __future__ import annotations

import pytest

from tests.support.istio_objects import GEN, clean_host
from tests.support.lint_world import HIGRESS, HOST, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
HIGRESS_GW = f"{HIGRESS}/{GEN}-{clean_host(HOST)}"


async def test_a_gateway_claiming_an_ingress_host_conflicts_with_higress_s(findings) -> None:
    found = await findings("istio-gateway-conflicts")
    mine = about(found, "Gateway shop/public-gw", "IST0145")
    assert [f["message"] for f in mine] == [
        f"Conflict with gateways {HIGRESS_GW} (workload selector higress=higress-system-higress-gateway, port 80, "
        f"hosts {HOST},www.example.com).",
        f"Conflict with gateways {HIGRESS_GW} (workload selector higress=higress-system-higress-gateway, port 443, "
        f"hosts {HOST})."]
    assert all(f["severity"] == "error" and f["related"] == [f"Gateway {HIGRESS_GW}"] for f in mine)
    theirs = about(found, f"Gateway {HIGRESS_GW}", "IST0145")
    assert len(theirs) == 2 and "Ingresses of that host" in theirs[0]["fix"]
    assert not about(found, "Gateway shop/extra-port")  # port 8443, no other Gateway there


async def test_two_gateways_serving_one_certificate(findings) -> None:
    found = await findings("istio-gateway-certificates")
    assert {f["object"] for f in found} == {"Gateway shop/public-gw", f"Gateway {HIGRESS_GW}"}
    [f] = about(found, "Gateway shop/public-gw", "IST0138")
    assert f["message"] == (f"Duplicate certificate in multiple gateways [shop/public-gw {HIGRESS_GW}] may cause 404s "
                            "if clients re-use HTTP2 connections.")
    assert f["evidence"] == ["shared: credential kubernetes-ingress://Kubernetes/shop/shop-tls"]
