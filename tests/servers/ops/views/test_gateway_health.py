"""get-gateway-health on real Envoys: what is broken, why, and which tool to call next."""

from __future__ import annotations

import pytest

from higress_ops.servers.base import CallContext
from tests.support.istio_envoy import IstioGateway
from tests.support.istiod import CDS, istiod_double
from tests.support.verdict_envoy import VerdictGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def health(make_server, admin_url: str, istiod_url: str = "http://127.0.0.1:9", **args):
    server = make_server(admin_url, istiod_url)
    result = await server.call_tool("get-gateway-health", args, CallContext())
    assert not result.is_error, result.content
    return result.content[0]["text"], result.structured


def section(structured, title_start: str) -> dict:
    [sec] = [s for s in structured["sections"] if s["title"].startswith(title_start)]
    return sec


async def test_broken_clusters_errors_and_extensions_with_the_next_tool(vgw: VerdictGateway, make_server):
    for path in ("/closed", "/slow", "/nopanic"):
        vgw.send("plain", "app.example.com", path)
    vgw.send("ecds", "app.example.com", "/ok")
    text, structured = await health(make_server, vgw.admin_url)
    assert text.startswith("Gateway health: Envoy LIVE, up ")
    unhealthy = section(structured, "Clusters with unhealthy")
    named = {line.split(":")[0] for line in unhealthy["shown"]}
    assert {"nopanic", "panic", "half", "closed-hc", "eds-unhealthy", "closed"} <= named
    assert "ok" not in named
    assert any(line.startswith("nopanic: 0/2 healthy (failed_active_hc 2)") for line in unhealthy["shown"])
    assert any(line.startswith("closed: 1/1 healthy (connect_failure 1)") for line in unhealthy["shown"])
    flags = section(structured, "Clusters by 5xx")["shown"]
    assert any(line.startswith("cluster closed: ") and "UF " in line for line in flags)
    assert any(line.startswith("cluster slow: ") and "UT 1" in line for line in flags)
    assert any(line.startswith("cluster nopanic: ") and "UH 1" in line for line in flags)
    [ext] = section(structured, "Extension configs")["shown"]
    assert ext.startswith("[error] extension_config higress-system.key-auth: higress-system.key-auth "
                          "(envoy.extensions.filters.http.wasm.v3.Wasm): FAILED")
    assert "istiod did not answer syncz" in text
    for title in ("Clusters with unhealthy", "Clusters by 5xx", "Extension configs"):
        assert any(line.startswith(title) and " -> " in line for line in text.splitlines()), title


async def test_paging_walks_the_lists(vgw: VerdictGateway, make_server):
    _, first = await health(make_server, vgw.admin_url, limit=2)
    _, second = await health(make_server, vgw.admin_url, limit=2, offset=2)
    a, b = section(first, "Clusters with unhealthy"), section(second, "Clusters with unhealthy")
    assert len(a["shown"]) == 2 and a["total"] > 2 and not set(a["shown"]) & set(b["shown"])


async def test_expiring_certificate_names_the_listener_and_sni(gateway: IstioGateway, make_server, istiod):
    text, structured = await health(make_server, gateway.admin_url, istiod.url)
    certs = section(structured, "Certificates")["shown"]
    served = "serves SNI httpbin.example.com (listener 0.0.0.0_443, filter chain #0)"
    assert any("expiring.example.com" in line and served in line for line in certs), certs
    assert "check-certs" in text


async def test_istiods_nacks_for_this_proxy(vgw: VerdictGateway, make_server) -> None:
    with istiod_double() as istiod:
        istiod.state["/debug/syncz"].append(
            {"cluster_id": "Kubernetes", "proxy": "verdicts", "proxy_type": "router", "istio_version": "1.27.0",
             "resources": {CDS: {"sent": "n5", "acked": "n4", "lastError": "cluster x: unknown field"}}})
        server = make_server(vgw.admin_url, istiod.url)
        result = await server.call_tool("get-gateway-health", {}, CallContext(headers={"x-istiod-token": "good-token"}))
        rejected = section(result.structured, "xDS updates rejected")["shown"]
        assert any("CDS: istiod recorded a NACK: cluster x: unknown field" in line for line in rejected), rejected
        assert not any("other-gw" in line for line in rejected)  # another proxy's NACK is not this gateway's
