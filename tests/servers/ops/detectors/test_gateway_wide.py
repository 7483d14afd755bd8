"""get-gateway-health names every failure kind of the fault gateway at once, within its 2,000-token budget: each
fault sent through the real Envoy first (or, for the config faults, present in its config), then one call."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.servers.ops.detectors.conftest import TOKEN
from tests.support.fault_envoy import EMPTY, EXPIRING_DAYS, NOPODS, ORDERS_80, ORDERS_8080, FaultGateway, rds_config
from tests.support.istiod import endpoint, istiod_double, shards
from tests.support.procs import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def break_everything(fgw: FaultGateway) -> None:
    """Every fault that needs traffic (or a rejected update), each checked against what Envoy answered."""
    assert fgw.send("/tls-to-plain") == (503, "UF") and fgw.send("/plain-to-tls") == (503, "UC")
    assert fgw.send("/h2") == (502, "UPE")
    assert fgw.send("/eject")[0] == 503  # the backend's 503 ejects its only host
    wait_until(lambda: fgw.stat("cluster.outlier.outlier_detection.ejections_active") == 1, 10, "the host ejected")
    assert fgw.send("/orders") == (503, "NC") and fgw.send("/empty") == (503, "UH")
    slow = threading.Thread(target=lambda: fgw.send("/cb?n=1"))
    slow.start()
    wait_until(lambda: fgw.stat("cluster.cb.upstream_rq_active") >= 1, 10, "a request holds the only slot")
    assert fgw.send("/cb?n=2") == (503, "UO")
    slow.join()
    assert fgw.served_certificate("unknown.example.com") is None  # reset: no_filter_chain_match
    bad = rds_config("api-v2")
    bad["virtual_hosts"].append(dict(bad["virtual_hosts"][0]))  # a duplicate virtual host: Envoy rejects it
    fgw.publish_rds(bad)
    wait_until(lambda: fgw.stat("http.rds.rds.rds-routes.update_rejected") >= 1, 10, "Envoy rejected the update")


def lines_of(structured: dict[str, Any], detector: str) -> list[str]:
    [sec] = [s for s in structured["sections"] if s.get("detector") == detector]
    assert sec["total"] == len(sec["shown"]), sec  # everything on the first page
    return list(sec["shown"])


async def test_every_failure_kind_is_listed_gateway_wide_within_2000_tokens(fgw: FaultGateway, make_server):
    break_everything(fgw)
    try:
        with istiod_double() as istiod:
            istiod.state["/debug/endpointz"][EMPTY.split("|")[3]] = shards("shop", "empty", [
                endpoint("10.1.0.4", "shop", "empty", "http", 80)])
            server = make_server(fgw.admin_url, istiod.url)
            result = await server.call_tool("get-gateway-health", {}, TOKEN)
    finally:
        fgw.publish_rds(rds_config())
    assert not result.is_error, result.content
    text, structured = result.content[0]["text"], result.structured
    assert len(text.encode()) <= 6000 and structured["limit"] == 10, text  # no list had to be shortened

    def one(detector: str, *parts: str) -> None:
        assert any(all(p in line for p in parts) for line in lines_of(structured, detector)), (detector, parts,
                                                                                                 text)

    one("missing-cluster", f"cluster {ORDERS_80}: no such cluster", f"same host here: {ORDERS_8080}")
    one("shadowed-route", "route #5 api/v2", "route #4 (/api*) shadows route #5 (/api/v2*)")
    one("circuit-breaker", "cluster cb: the circuit breaker turned 1 request(s) away")
    one("outlier-ejection", "cluster outlier: outlier detection ejected 1/1 host(s)")
    one("upstream-tls", "cluster tls-to-plain: the cluster speaks TLS")
    one("upstream-tls", "cluster plain-to-tls:", "speaks plaintext")
    one("upstream-protocol", "cluster h2-to-h1:", "HTTP/2")
    one("redirect-loop", "route #8 self", "/self redirects to itself")
    one("rejected-config", "rds-routes")
    one("certificates", "secret kubernetes://pay-tls: EXPIRING", f"expires in {EXPIRING_DAYS - 1} days",
        "serves SNI pay.example.com (listener tls, filter chain #2)")
    one("tls-listener", "listener tls: ", "matched no filter chain")
    one("empty-cluster", f"cluster {EMPTY}: istiod knows 1 endpoint(s)", "not delivered to this proxy")
    one("empty-cluster", f"cluster {NOPODS}: istiod knows no endpoints", "selects no ready pods")
    assert "BlackHole" not in text and "Passthrough" not in text
