"""istio-destinationrule-ca (IST0128, IST0129) and destinationrule-tls-port: TLS settings that skip server
verification, and TLS modes that disagree with the port or the backend, with the real Envoy's TLS counters."""

from __future__ import annotations

import pytest

from tests.support.lint_world import CLUSTERS, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_tls_without_ca_certificates(findings) -> None:
    found = await findings("istio-destinationrule-ca")
    assert {(f["object"], f["code"]) for f in found} == {("DestinationRule shop/edge", "IST0128"),
                                                          ("DestinationRule shop/orders", "IST0129")}
    [edge] = about(found, "DestinationRule shop/edge")
    assert edge["message"] == ("DestinationRule edge in namespace shop has TLS mode set to SIMPLE but no "
                               "caCertificates are set to validate server identity for host: edge.example.com")
    [orders] = about(found, "DestinationRule shop/orders")
    assert orders["message"].endswith("for host: orders.shop.svc.cluster.local at port number:80")


async def test_tls_towards_a_plaintext_port_fails_in_envoy(findings) -> None:
    """The rule says SIMPLE on a port named `http`: Envoy's handshakes with the HTTP backend fail (503)."""
    [f] = about(await findings("destinationrule-tls-port"), "DestinationRule shop/orders")
    assert f["severity"] == "error"
    assert f["message"] == ("tls.mode SIMPLE originates TLS towards a port declared HTTP (plaintext) (port 80 'http' "
                            "of orders.shop.svc.cluster.local)")
    assert f"cluster {CLUSTERS['orders']} ssl.connection_error 1" in f["evidence"]
    assert f["fix"].startswith("set trafficPolicy.portLevelSettings[port 80].tls.mode to DISABLE")


async def test_istio_mtls_towards_backends_without_a_sidecar(findings) -> None:
    [f] = about(await findings("destinationrule-tls-port"), "DestinationRule shop/catalog")
    assert f["severity"] == "error" and "ISTIO_MUTUAL towards 1 endpoint(s) without a sidecar" in f["message"]
    assert any(e.startswith(f"cluster {CLUSTERS['catalog']} ssl.connection_error ") for e in f["evidence"])


async def test_plaintext_towards_a_tls_port_before_any_error(findings) -> None:
    [f] = about(await findings("destinationrule-tls-port"), "DestinationRule shop/pay")
    assert f["severity"] == "warning"  # nothing has failed yet: the counters say so
    assert f["message"].startswith("tls.mode DISABLE sends plaintext towards a port declared HTTPS")
    assert f["evidence"] == [f"cluster {CLUSTERS['pay']}: no TLS or connect errors counted yet"]
    assert f["related"] == [f"cluster {CLUSTERS['pay']}"]
