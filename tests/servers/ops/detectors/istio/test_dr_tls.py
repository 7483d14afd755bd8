"""istio-destinationrule-ca (IST0128, IST0129) and destinationrule-tls-port: TLS settings that skip server
verification, and TLS modes that disagree with the port or the backend, with the real Envoy's TLS counters."""

from __future__ import annotations

import pytest

from higress_ops.servers.ops.detectors.istio import dr_tls
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


async def test_tls_towards_a_plaintext_port_once_it_failed_is_upstream_tls_s(findings) -> None:
    """The rules say SIMPLE on a port named `http` and ISTIO_MUTUAL towards pods without a sidecar: Envoy's
    handshakes with the plain-HTTP backends failed (503), so upstream-tls reports it on the clusters, once."""
    found = await findings("destinationrule-tls-port", "upstream-tls")
    assert not about(found, "DestinationRule shop/orders") and not about(found, "DestinationRule shop/catalog")
    for name in ("orders", "catalog"):
        [f] = about(found, f"cluster {CLUSTERS[name]}")
        assert f["detector"] == "upstream-tls" and f["verdict"]["reason"] == "upstream_tls_error"
        assert "ssl.connection_error 1" in f["evidence"]


async def test_plaintext_towards_a_tls_port_before_any_error(findings) -> None:
    [f] = about(await findings("destinationrule-tls-port"), "DestinationRule shop/pay")
    assert f["severity"] == "warning"  # nothing has failed yet: the counters say so
    assert f["message"].startswith("tls.mode DISABLE sends plaintext towards a port declared HTTPS")
    assert f["evidence"] == [f"cluster {CLUSTERS['pay']}: no TLS or connect errors counted yet"]
    assert f["related"] == [f"cluster {CLUSTERS['pay']}"]


@pytest.mark.parametrize(("mode", "protocol", "sidecars", "says"), [
    ("SIMPLE", "HTTP2", (0, 1), "originates TLS towards a port declared HTTP2"),
    ("MUTUAL", "GRPC", (0, 1), "originates TLS towards a port declared GRPC"),
    ("DISABLE", "TLS", (0, 1), "sends plaintext towards a port declared TLS"),
    ("ISTIO_MUTUAL", "HTTP", (0, 3), "ISTIO_MUTUAL towards 3 endpoint(s) without a sidecar"),
    ("ISTIO_MUTUAL", "HTTP", (1, 3), ""),  # a sidecar answers mTLS
    ("SIMPLE", "HTTPS", (0, 1), ""), ("DISABLE", "HTTP", (0, 1), ""), ("", "HTTPS", (0, 1), ""),
])
def test_which_modes_disagree_with_which_ports(mode: str, protocol: str, sidecars: tuple[int, int],
                                               says: str) -> None:
    why = dr_tls.disagreement(mode, protocol, sidecars)
    assert (says in why) if says else why == ""
