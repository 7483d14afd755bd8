"""ingress-tls on the shop scenario: an Ingress TLS host the gateway has no filter chain for, which the real
Envoy resets; and an expiring certificate's finding names the Ingress whose TLS holds that secret."""

from __future__ import annotations

import socket
import ssl

import pytest

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.detectors import Facts, Finding, Ref, Severity
from higress_ops.servers.ops.views import edits
from tests.support import shop as s
from tests.support.shop_envoy import SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def handshake(port: int, sni: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as tls:
            return f"ok {tls.version()}"
    except (ssl.SSLError, ConnectionError) as exc:
        return f"reset ({type(exc).__name__})"


async def test_a_tls_host_without_a_filter_chain(shop, lint) -> None:
    [cart] = [o for o in shop.api.store.items("Ingress", s.NS) if o["metadata"]["name"] == "cart"]
    cart["spec"]["tls"] = [{"hosts": [s.HOST, "pay.example.com"], "secretName": "shop-tls"}]
    cart["spec"]["rules"].append({"host": "pay.example.com", "http": cart["spec"]["rules"][0]["http"]})
    shop.api.store.add(cart)
    assert handshake(shop.gateway.https_port, s.HOST).startswith("ok")
    assert handshake(shop.gateway.https_port, "pay.example.com").startswith("reset")  # what Envoy does
    [f] = await lint("ingress-tls")
    assert f["object"] == "Ingress shop/cart" and f["severity"] == "error"
    assert f["message"] == ("TLS host pay.example.com has no filter chain on this gateway: Envoy resets every TLS "
                            "connection for it")
    assert "Secret shop/shop-tls" in f["fix"]
    assert f["evidence"] == ["TLS listeners and their server names: 0.0.0.0_443: shop.example.com"]


async def test_the_scenario_s_tls_host_is_served(lint) -> None:
    assert await lint("ingress-tls") == []


async def test_a_certificate_finding_names_the_ingress_of_its_secret(shop, shop_ops) -> None:
    """certificates (issue 21) names the SDS secret; its object to edit is the Ingress whose TLS names it."""
    facts = Facts(shop_ops.upstreams, CallContext())
    expiring = Finding("certificates", Severity.WARNING, Ref("secret", SECRET), "EXPIRING CN=shop.example.com")
    assert await edits.edits([expiring], facts) == [["Ingress shop/cart (its TLS secret shop/shop-tls)"]]
